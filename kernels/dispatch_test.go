package kernels

import (
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestRequestedPath fails the suite when DGHCORE_KERNELS asks for a path
// this machine cannot run: the package then falls back to the best path,
// and every other test would pass on a path nobody asked for.
func TestRequestedPath(t *testing.T) {
	if os.Getenv(EnvVar) == "" {
		t.Skip(EnvVar + " not set")
	}
	if err := Init(); err != nil {
		t.Fatalf("%v: the tests would run the %s path instead", err, Active())
	}
	if want := Path(strings.ToLower(strings.TrimSpace(os.Getenv(EnvVar)))); Active() != want {
		t.Fatalf("%s=%s, but the %s path is active", EnvVar, want, Active())
	}
}

func TestChoose(t *testing.T) {
	avail := Available()
	if avail[0] != Generic {
		t.Fatalf("Available() = %v, want generic first", avail)
	}
	if p, err := choose(""); err != nil || p != avail[len(avail)-1] {
		t.Errorf(`choose("") = %q, %v; want the best path %q`, p, err, avail[len(avail)-1])
	}
	for _, p := range avail {
		if got, err := choose(" " + strings.ToUpper(string(p)) + " "); err != nil || got != p {
			t.Errorf("choose(%q) = %q, %v", p, got, err)
		}
	}
	names := make([]string, len(avail))
	for i, p := range avail {
		names[i] = string(p)
	}
	list := strings.Join(names, ", ")
	_, err := choose("sse9")
	if err == nil || !strings.Contains(err.Error(), "unknown kernel path") || !strings.Contains(err.Error(), list) {
		t.Errorf(`choose("sse9") error %v, want an unknown path naming %s`, err, list)
	}
	missing := NEON
	if runtime.GOARCH == "arm64" {
		missing = AVX2
	}
	if slices.Contains(avail, missing) {
		t.Fatalf("%s available on %s", missing, runtime.GOARCH)
	}
	_, err = choose(string(missing))
	if err == nil || !strings.Contains(err.Error(), "cannot run it") || !strings.Contains(err.Error(), list) {
		t.Errorf("choose(%q) error %v, want an unavailable path naming %s", missing, err, list)
	}
}

// optionalKernels are the table entries a path may leave nil; the
// comment on each says what runs instead. Every other entry of every
// family's table must be set on every path.
var optionalKernels = map[string]bool{
	"gemmKernels.microSet": true, "gemmKernels.packA6": true, "gemmKernels.packBT16": true, "gemmKernels.gather": true,
	"gemmKernels.packA24": true,
	"convKernels.direct":  true, "convKernels.directMasked": true,
	"poolKernels.maxPool3x3S2": true,
	"quantKernels.lpGrad":      true,
}

// TestKernelTables checks every path's tables the way use will install
// them: each required kernel set, each optional array of kernels all set
// or all nil, and a GEMM tile the drivers can block (gemmMC rows are
// whole mr panels, 48 columns whole nr panels: slabCols relies on it).
func TestKernelTables(t *testing.T) {
	for _, p := range Available() {
		k := kernelsOf(p)
		if k.path != p {
			t.Errorf("kernelsOf(%s).path = %s", p, k.path)
		}
		for _, table := range []any{k.gemm, k.conv, k.pool, k.elementwise, k.quant} {
			v := reflect.ValueOf(table)
			for i := range v.NumField() {
				f, name := v.Field(i), v.Type().Name()+"."+v.Type().Field(i).Name
				var set, funcs int
				switch f.Kind() {
				case reflect.Func:
					funcs = 1
					if !f.IsNil() {
						set = 1
					}
				case reflect.Array:
					for a := range f.Len() {
						for b := range f.Index(a).Len() {
							funcs++
							if !f.Index(a).Index(b).IsNil() {
								set++
							}
						}
					}
				default:
					continue
				}
				if set != funcs && (set > 0 || !optionalKernels[name]) {
					t.Errorf("%s: %s has %d of its %d kernels", p, name, set, funcs)
				}
			}
		}
		if mr, nr := k.gemm.mr, k.gemm.nr; mr < 1 || mr > maxMR || gemmMC%mr != 0 || nr < 1 || 48%nr != 0 {
			t.Errorf("%s: GEMM tile %dx%d", p, mr, nr)
		}
	}
}
