package torchload

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// manifest is written by tools/torchref/checkpoints.py next to the fixtures.
type manifest struct {
	Keys     []string          `json:"keys"`
	Expected map[string]string `json:"expected"`
	Skipped  []struct {
		Key   string `json:"key"`
		DType string `json:"dtype"`
		Shape []int  `json:"shape"`
	} `json:"skipped"`
	Good []string          `json:"good"`
	Bad  map[string]string `json:"bad"`
}

func readManifest(t testing.TB) *manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loaders are the three entry points; each must give the same result.
var loaders = []struct {
	name string
	load func(path string) (*StateDict, error)
}{
	{"Load", Load},
	{"LoadBytes", func(path string) (*StateDict, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return LoadBytes(b)
	}},
	{"LoadReader", func(path string) (*StateDict, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return LoadReader(f)
	}},
}

// TestLoadGood loads every good fixture (both formats, protocols 2 and 4,
// every wrapper, the module. prefix, big-endian records) and compares each
// tensor bit for bit with PyTorch's tensor.float().contiguous().
func TestLoadGood(t *testing.T) {
	m := readManifest(t)
	want := make(map[string]*tensor.Tensor)
	for key, file := range m.Expected {
		w, err := tensor.ReadNPY(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		want[key] = w
	}
	if len(m.Good) < 12 {
		t.Fatalf("manifest lists %d good checkpoints", len(m.Good))
	}
	for _, file := range m.Good {
		for _, l := range loaders {
			t.Run(file+"/"+l.name, func(t *testing.T) {
				sd, err := l.load(filepath.Join("testdata", file))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(sd.Keys, m.Keys) {
					t.Fatalf("keys %q, want %q", sd.Keys, m.Keys)
				}
				if len(sd.Tensors) != len(m.Keys) {
					t.Errorf("%d tensors for %d keys", len(sd.Tensors), len(m.Keys))
				}
				for _, key := range m.Keys {
					got, w := sd.Tensors[key], want[key]
					if !slices.Equal(got.Shape, w.Shape) {
						t.Errorf("%s: shape %v, want %v", key, got.Shape, w.Shape)
						continue
					}
					for i := range w.Data {
						if math.Float32bits(got.Data[i]) != math.Float32bits(w.Data[i]) {
							t.Errorf("%s[%d] = %v, want %v", key, i, got.Data[i], w.Data[i])
							break
						}
					}
				}
				if len(sd.Skipped) != len(m.Skipped) {
					t.Fatalf("skipped %+v, want %+v", sd.Skipped, m.Skipped)
				}
				for i, s := range m.Skipped {
					g := sd.Skipped[i]
					if g.Key != s.Key || g.DType != s.DType || !slices.Equal(g.Shape, s.Shape) {
						t.Errorf("skipped[%d] = %+v, want %+v", i, g, s)
					}
				}
			})
		}
	}
}

// TestLoadBad checks that each bad fixture fails with the right kind of
// error, and that the message names what is wrong.
func TestLoadBad(t *testing.T) {
	m := readManifest(t)
	tests := []struct {
		file     string
		sentinel error  // nil: any error
		global   string // for forbidden globals, module.name
		contains string
	}{
		{"evil_os_system_zip.pt", ErrForbiddenGlobal, "posix.system", "posix.system"},
		{"evil_eval_legacy.pt", ErrForbiddenGlobal, "__builtin__.eval", "__builtin__.eval"},
		{"evil_plain_pickle.pkl", ErrForbiddenGlobal, "posix.system", "posix.system"},
		{"whole_module.pt", ErrForbiddenGlobal, "torch.nn.modules.linear.Linear", "Linear"},
		{"evil_metadata_zip.pt", ErrForbiddenGlobal, "posix.system", "posix.system"},
		{"evil_metadata_legacy.pt", ErrForbiddenGlobal, "__builtin__.exec", "__builtin__.exec"},
		{"not_checkpoint.txt", ErrNotCheckpoint, "", "neither a zip archive nor a torch pickle"},
		{"empty.pt", ErrNotCheckpoint, "", "empty"},
		{"plain_pickle_dict.pkl", ErrNotCheckpoint, "", "magic number"},
		{"plain.zip", ErrNotCheckpoint, "", "data.pkl"},
		{"torchscript.pt", ErrNotCheckpoint, "", "TorchScript"},
		{"top_level_list.pt", nil, "", "holds a list, not a state dict"},
		{"unknown_wrapper.pt", nil, "", `key "net" holds a dict, not a tensor (want a state_dict`},
		{"both_wrappers.pt", nil, "", "ambiguous"},
		{"non_tensor_value.pt", nil, "", `key "conv.note" holds an int, not a tensor`},
		{"numpy_in_state_dict.pt", nil, "", `key "bn.momentum" holds a numpy scalar, not a tensor`},
		{"duplicate_after_prefix.pt", nil, "", `key "conv.weight" appears twice`},
	}
	if len(tests) != len(m.Bad) {
		t.Errorf("%d cases for %d bad fixtures in the manifest", len(tests), len(m.Bad))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			if _, ok := m.Bad[tc.file]; !ok {
				t.Fatalf("%s is not in the manifest", tc.file)
			}
			path := filepath.Join("testdata", tc.file)
			sd, err := Load(path)
			if err == nil {
				t.Fatalf("loaded %d tensors, want an error", len(sd.Keys))
			}
			msg := err.Error()
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("error %q is not %v", msg, tc.sentinel)
			}
			for _, s := range []error{ErrForbiddenGlobal, ErrNotCheckpoint, ErrTruncated} {
				if s != tc.sentinel && errors.Is(err, s) {
					t.Errorf("error %q also matches %v", msg, s)
				}
			}
			if !strings.Contains(msg, tc.contains) || !strings.Contains(msg, path) {
				t.Errorf("error %q does not name %q and the file", msg, tc.contains)
			}
			var ge *GlobalError
			if tc.global != "" && (!errors.As(err, &ge) || ge.Module+"."+ge.Name != tc.global) {
				t.Errorf("error %q: GlobalError %+v, want %s", msg, ge, tc.global)
			}
		})
	}
}

// TestTruncated cuts every fixture at every length: each cut must give an
// ErrTruncated error (a one-byte "P" cannot be told from a text file).
func TestTruncated(t *testing.T) {
	m := readManifest(t)
	for _, file := range m.Good {
		data := readFixture(t, file)
		for n := 1; n < len(data); n++ {
			_, err := LoadBytes(data[:n])
			if errors.Is(err, ErrTruncated) || (n == 1 && errors.Is(err, ErrNotCheckpoint)) {
				continue
			}
			t.Errorf("%s cut to %d of %d bytes: error %v, want ErrTruncated", file, n, len(data), err)
			break
		}
	}
}

// TestCorrupt flips bytes all over a fixture of each format: the loader may
// fail or, where the format has no checksum, load other values, but it must
// not panic and what it returns must be well formed.
func TestCorrupt(t *testing.T) {
	for _, file := range []string{"zip_bare.pt", "legacy_model_module.pt"} {
		data := readFixture(t, file)
		loaded, tried := 0, 0
		for i := range data {
			c := bytes.Clone(data)
			c[i] ^= byte(i*37) | 1 // a different non-zero flip mask at each byte
			tried++
			if sd, err := LoadBytes(c); err == nil {
				loaded++
				checkWellFormed(t, sd)
			}
		}
		t.Logf("%s: %d of %d corrupted copies still load", file, loaded, tried)
	}
}

// checkWellFormed checks the invariants every returned StateDict keeps.
func checkWellFormed(t testing.TB, sd *StateDict) {
	t.Helper()
	if len(sd.Keys) != len(sd.Tensors) {
		t.Fatalf("%d keys, %d tensors", len(sd.Keys), len(sd.Tensors))
	}
	for _, k := range sd.Keys {
		x, ok := sd.Tensors[k]
		if !ok {
			t.Fatalf("key %q has no tensor", k)
		}
		if tensor.Numel(x.Shape) != len(x.Data) {
			t.Fatalf("key %q: shape %v with %d values", k, x.Shape, len(x.Data))
		}
	}
}

// TestCheckedNumel covers the view geometry checks on hand-made views.
func TestCheckedNumel(t *testing.T) {
	const big = math.MaxInt / 4
	tests := []struct {
		name          string
		storage       int
		offset        int
		size, stride  []int
		numel         int
		wantErrSubstr string
	}{
		{"contiguous", 6, 0, []int{2, 3}, []int{3, 1}, 6, ""},
		{"transposed", 6, 0, []int{3, 2}, []int{1, 3}, 6, ""},
		{"offset slice", 24, 16, []int{2, 2}, []int{4, 2}, 4, ""},
		{"scalar", 1, 0, nil, nil, 1, ""},
		{"scalar at end", 5, 4, nil, nil, 1, ""},
		{"empty with huge dims", 0, 0, []int{0, big, big}, []int{1, 1, 1}, 0, ""},
		{"scalar past end", 5, 5, nil, nil, 0, "past its storage"},
		{"scalar in empty storage", 0, 0, nil, nil, 0, "past its storage"},
		{"one past the end", 6, 1, []int{2, 3}, []int{3, 1}, 0, "reach past"},
		{"negative stride", 6, 5, []int{6}, []int{-1}, 0, "negative"},
		{"negative size", 6, 0, []int{-1}, []int{1}, 0, "negative"},
		{"negative offset", 6, -1, []int{2}, []int{1}, 0, "negative storage offset"},
		{"expanded", 3, 0, []int{4, 3}, []int{0, 1}, 0, "more elements"},
		{"overflowing shape", 6, 0, []int{big, big, big}, []int{0, 0, 0}, 0, "more elements"},
		{"overflowing stride", 6, 0, []int{2, 3}, []int{big, 1}, 0, "reach past"},
		{"rank mismatch", 6, 0, []int{6}, []int{1, 1}, 0, "strides"},
		{"too many dims", 1, 0, make([]int, 40), make([]int, 40), 0, "dimensions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &storage{key: "0", dtype: storageClasses["torch.FloatStorage"], numel: tc.storage}
			rt := &rawTensor{st: st, offset: tc.offset, size: tc.size, stride: tc.stride}
			n, err := rt.checkedNumel()
			if tc.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErrSubstr)
				}
				return
			}
			if err != nil || n != tc.numel {
				t.Fatalf("numel %d, %v; want %d", n, err, tc.numel)
			}
		})
	}
}

// TestHalfToFloat32 checks every binary16 value against the format's
// definition evaluated in float64: (-1)^s * m * 2^(e-25), with m = 1024+f
// for normal numbers and m = f, e = 1 for subnormal ones.
func TestHalfToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		s, e, f := h>>15, (h>>10)&0x1f, h&0x3ff
		got := halfToFloat32(uint16(h))
		var want float64
		switch {
		case e == 0x1f && f != 0:
			if !math.IsNaN(float64(got)) || math.Signbit(float64(got)) != (s == 1) {
				t.Fatalf("%#04x: %v, want NaN with sign %d", h, got, s)
			}
			continue
		case e == 0x1f:
			want = math.Inf(1)
		case e == 0:
			want = math.Ldexp(float64(f), 1-25)
		default:
			want = math.Ldexp(float64(1024+f), e-25)
		}
		if s == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("%#04x: %v, want %v", h, got, want)
		}
	}
}
