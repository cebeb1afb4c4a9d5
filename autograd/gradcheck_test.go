package autograd

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"testing"

	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// childEnv marks a test process started by TestMain for one kernel path.
const childEnv = "DGHCORE_AUTOGRAD_TEST_CHILD"

// TestMain runs the whole suite once per kernel path. The kernels package
// picks its path at start from DGHCORE_KERNELS, so every path other than
// the default one runs in a child process of this test binary.
func TestMain(m *testing.M) {
	if err := kernels.Init(); err != nil {
		// A path the machine cannot run: the suite would pass on the
		// fallback path, which nobody asked for.
		fmt.Fprintln(os.Stderr, "autograd:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 || os.Getenv(childEnv) != "" || os.Getenv(kernels.EnvVar) != "" {
		os.Exit(code)
	}
	if b := flag.Lookup("test.bench"); b != nil && b.Value.String() != "" {
		os.Exit(code) // benchmarks measure the default path only
	}
	for _, p := range kernels.Available() {
		if p == kernels.Active() {
			continue
		}
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), kernels.EnvVar+"="+string(p), childEnv+"=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			fmt.Fprintf(os.Stderr, "autograd tests on kernel path %s: %v\n", p, err)
			os.Exit(1)
		case err != nil:
			// Under an emulator without binfmt (qemu-user with go test
			// -exec) the binary cannot start itself: run it once per
			// path with DGHCORE_KERNELS set instead.
			fmt.Fprintf(os.Stderr, "autograd: kernel path %s not tested (%v); set %s=%s to test it\n", p, err, kernels.EnvVar, p)
		}
	}
	os.Exit(code)
}

// gradCase is one finite-difference check: f applied to inputs, whose
// analytic gradients (through a random projection of the output) must
// match central differences.
type gradCase struct {
	name   string
	inputs []*tensor.Tensor
	// noGrad marks inputs that stay constants.
	noGrad []bool
	f      func(in []*Var) *Var
	// surrogate, for straight-through ops, is the function whose
	// derivative the op's gradient is defined to be; nil means f itself.
	surrogate func(in []*tensor.Tensor) []float64
	// eps is the perturbation (default 1e-2).
	eps float64
}

// Finite differences of a float32 forward: the projection is summed in
// float64, the step is the exact difference of the perturbed float32
// inputs, and inputs are drawn away from kinks, so what remains is the
// truncation error O(eps^2) and float32 rounding of the outputs divided
// by 2*eps.
const (
	fdAbsTol = 2e-3
	fdRelTol = 2e-3
)

func checkGrad(t *testing.T, c gradCase) {
	t.Helper()
	eps := c.eps
	if eps == 0 {
		eps = 1e-2
	}
	vars := make([]*Var, len(c.inputs))
	for i, x := range c.inputs {
		vars[i] = NewVar(x.Clone(), i >= len(c.noGrad) || !c.noGrad[i])
	}
	y := c.f(vars)
	rng := tensor.NewRNG(99)
	proj := rng.Randn(y.Value.Shape...)
	loss := Sum(Mul(y, Const(proj)))
	if err := loss.Backward(); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}

	forward := func(in []*tensor.Tensor) []float64 {
		if c.surrogate != nil {
			return c.surrogate(in)
		}
		consts := make([]*Var, len(in))
		for i, x := range in {
			consts[i] = Const(x)
		}
		out := c.f(consts)
		if out.requiresGrad || out.backward != nil || out.parents != nil {
			t.Fatalf("%s: a forward on constants recorded a graph", c.name)
		}
		v := make([]float64, out.Value.Numel())
		for i, f := range out.Value.Data {
			v[i] = float64(f)
		}
		return v
	}
	project := func(in []*tensor.Tensor) float64 {
		var s float64
		for i, v := range forward(in) {
			s += v * float64(proj.Data[i])
		}
		return s
	}

	work := make([]*tensor.Tensor, len(c.inputs))
	for i, x := range c.inputs {
		work[i] = x.Clone()
	}
	worst := 0.0
	for i, v := range vars {
		if !v.requiresGrad {
			continue
		}
		if v.Grad == nil {
			t.Errorf("%s: input %d got no gradient", c.name, i)
			continue
		}
		for j := range work[i].Data {
			x0 := work[i].Data[j]
			xp, xm := float32(float64(x0)+eps), float32(float64(x0)-eps)
			work[i].Data[j] = xp
			lp := project(work)
			work[i].Data[j] = xm
			lm := project(work)
			work[i].Data[j] = x0
			fd := (lp - lm) / (float64(xp) - float64(xm))
			an := float64(v.Grad.Data[j])
			diff := math.Abs(fd - an)
			worst = max(worst, diff/(fdAbsTol+fdRelTol*math.Abs(fd)))
			if !(diff <= fdAbsTol+fdRelTol*math.Abs(fd)) {
				t.Errorf("%s: d/d input%d[%d]: analytic %.6g, finite difference %.6g", c.name, i, j, an, fd)
				return
			}
		}
	}
	t.Logf("%s: worst error %.2f of tolerance", c.name, worst)
}

// Input generators. They take an RNG so every case is reproducible.

func randn(r *tensor.RNG, shape ...int) *tensor.Tensor { return r.Randn(shape...) }

// uniform fills shape with values in [lo, hi).
func uniform(r *tensor.RNG, lo, hi float32, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	r.FillUniform(t, lo, hi)
	return t
}

// awayFrom draws normal values scaled by std, redrawing any within margin
// of a kink, so finite differences never straddle one.
func awayFrom(r *tensor.RNG, std float32, margin float64, kinks []float64, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	near := func(v float64) bool {
		for _, k := range kinks {
			if math.Abs(v-k) < margin {
				return true
			}
		}
		return false
	}
	for i := range t.Data {
		v := float64(std) * r.Normal()
		for near(v) {
			v = float64(std) * r.Normal()
		}
		t.Data[i] = float32(v)
	}
	return t
}

// distinct fills shape with a random permutation of values spaced 0.1
// apart (centred on 0), so maxima are unique and well separated.
func distinct(r *tensor.RNG, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	n := len(t.Data)
	for i, p := range r.Perm(n) {
		t.Data[i] = 0.1 * float32(p-n/2)
	}
	return t
}
