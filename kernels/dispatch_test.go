package kernels

import (
	"os"
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
