package tensor

// The fixtures under testdata/ are written by NumPy (tools/torchref/npy.py).

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// arangeF32 is the recipe of the float32 fixtures: (arange(n) - 7.5) / 3.
func arangeF32(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = (float32(i) - 7.5) / 3
	}
	return out
}

func TestReadNPY(t *testing.T) {
	tests := []struct {
		file  string
		dtype DType
		shape []int
		want  []float32
	}{
		{"f32_2x3x4.npy", Float32, []int{2, 3, 4}, arangeF32(24)},
		{"f32_v2.npy", Float32, []int{4, 6}, arangeF32(24)},
		{"f64_3x2.npy", Float64, []int{3, 2}, []float32{1, -2.5, 1e-3, math.Pi, 1e30, float32(math.Copysign(0, -1))}},
		{"i64_labels.npy", Int64, []int{5}, []float32{0, 9, 3, 7, 1}},
		{"u8_2x2.npy", Uint8, []int{2, 2}, []float32{0, 255, 17, 128}},
		{"f32_scalar.npy", Float32, []int{}, []float32{2.5}},
		{"f32_empty.npy", Float32, []int{0, 3}, []float32{}},
		{"f32_big_endian.npy", Float32, []int{4}, []float32{0, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			a, err := ReadNPYArray(path)
			if err != nil {
				t.Fatal(err)
			}
			if a.DType != tt.dtype {
				t.Errorf("dtype %s, want %s", a.DType, tt.dtype)
			}
			x, err := ReadNPY(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(x.Shape, tt.shape) {
				t.Errorf("shape %v, want %v", x.Shape, tt.shape)
			}
			if len(x.Data) != len(tt.want) {
				t.Fatalf("%d values, want %d", len(x.Data), len(tt.want))
			}
			for i := range tt.want {
				if math.Float32bits(x.Data[i]) != math.Float32bits(tt.want[i]) {
					t.Errorf("value %d = %v, want %v", i, x.Data[i], tt.want[i])
				}
			}
		})
	}
}

func TestNPYInts(t *testing.T) {
	tests := []struct {
		file    string
		want    []int64
		wantErr bool
	}{
		{"i64_labels.npy", []int64{0, 9, 3, 7, 1}, false},
		{"u8_2x2.npy", []int64{0, 255, 17, 128}, false},
		{"f32_2x3x4.npy", nil, true},
	}
	for _, tt := range tests {
		a, err := ReadNPYArray(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Ints()
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: error %v, want error %v", tt.file, err, tt.wantErr)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.file, got, tt.want)
		}
	}
}

func TestReadNPYErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "f32_2x3x4.npy"))
	if err != nil {
		t.Fatal(err)
	}
	fortran, err := os.ReadFile(filepath.Join("testdata", "f32_fortran.npy"))
	if err != nil {
		t.Fatal(err)
	}
	i32, err := os.ReadFile(filepath.Join("testdata", "i32_unsupported.npy"))
	if err != nil {
		t.Fatal(err)
	}
	header := func(dict string) []byte {
		h := dict + "\n"
		b := append([]byte(npyMagic), 1, 0, byte(len(h)), byte(len(h)>>8))
		return append(b, h...)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "unexpected EOF"},
		{"bad magic", []byte("PK\x03\x04 not npy at all"), "bad magic"},
		{"version 9", append([]byte(npyMagic), 9, 0, 0, 0), "version 9.0"},
		{"truncated header", good[:20], "unexpected EOF"},
		{"truncated data", good[:len(good)-5], "unexpected EOF"},
		{"fortran", fortran, "fortran_order"},
		{"int32", i32, "not supported"},
		{"no shape", header("{'descr': '<f4', 'fortran_order': False}"), "want keys"},
		{"negative dim", header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), "dimension"},
		{"huge shape", header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000, 1000000000), }"), "too large"},
		{"lying shape", header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000,), }"), "unexpected EOF"},
		{"not a dict", header("['descr']"), "want a dict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadNPYFrom(bytes.NewReader(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := ReadNPY(filepath.Join("testdata", "missing.npy")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestWriteNPYMatchesNumPy checks that our writer produces NumPy's file
// byte for byte (same header layout and padding).
func TestWriteNPYMatchesNumPy(t *testing.T) {
	for _, tt := range []struct {
		file  string
		shape []int
	}{
		{"f32_2x3x4.npy", []int{2, 3, 4}},
		{"f32_scalar.npy", []int{}},
		{"f32_empty.npy", []int{0, 3}},
	} {
		want, err := os.ReadFile(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		var data []float32
		switch tt.file {
		case "f32_2x3x4.npy":
			data = arangeF32(24)
		case "f32_scalar.npy":
			data = []float32{2.5}
		default:
			data = []float32{}
		}
		var buf bytes.Buffer
		if err := WriteNPYTo(&buf, FromSlice(data, tt.shape...)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: wrote\n%q\nNumPy wrote\n%q", tt.file, buf.Bytes(), want)
		}
	}
}

func TestNPYRoundTrip(t *testing.T) {
	shapes := [][]int{{1}, {5}, {2, 3}, {3, 1, 4, 2}, {70000}}
	for _, shape := range shapes {
		x := New(shape...)
		for i := range x.Data {
			x.Data[i] = float32(i)*0.25 - 3
		}
		path := filepath.Join(t.TempDir(), "x.npy")
		if err := WriteNPY(path, x); err != nil {
			t.Fatal(err)
		}
		y, err := ReadNPY(path)
		if err != nil {
			t.Fatal(err)
		}
		if !SameShape(x, y) || !slices.Equal(x.Data, y.Data) {
			t.Errorf("shape %v: round trip changed the tensor", shape)
		}
	}
	// Two arrays back to back in one stream.
	var buf bytes.Buffer
	a, b := FromSlice([]float32{1, 2}, 2), FromSlice([]float32{3}, 1, 1)
	if err := WriteNPYTo(&buf, a); err != nil {
		t.Fatal(err)
	}
	if err := WriteNPYTo(&buf, b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*Tensor{a, b} {
		got, err := ReadNPYFrom(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !SameShape(got, want) || !slices.Equal(got.Data, want.Data) {
			t.Errorf("stream: got %v %v, want %v %v", got.Shape, got.Data, want.Shape, want.Data)
		}
	}
	if _, err := ReadNPYFrom(&buf); err == nil || err == io.EOF {
		t.Errorf("reading past the end: %v", err)
	}
}

func TestWriteNPYBadTensor(t *testing.T) {
	bad := &Tensor{Shape: []int{2, 2}, Data: make([]float32, 3)}
	if err := WriteNPYTo(io.Discard, bad); err == nil {
		t.Error("no error for a tensor whose data disagrees with its shape")
	}
}
