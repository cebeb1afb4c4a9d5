// Package zootest builds zoo models with seeded random weights for the
// tests of the packages above the zoo (dgh, brecq, the command): no
// checkpoint needed, any input channels and classes.
package zootest

import (
	"compress/gzip"
	"io"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// Init draws the state-dict tensor d named name from rng and reports
// true, or reports false for a tensor to get He-scaled normal weights.
type Init func(rng *tensor.RNG, name string, d *tensor.Tensor) bool

// RandomModel returns the named zoo architecture with seeded random
// parameters: He-scaled weights, BatchNorms near the identity (gamma in
// [0.5, 1.2], running variance in [0.5, 1.5], running mean and biases in
// [-0.2, 0.2]).
func RandomModel(t testing.TB, name string, inCh, classes int, seed uint64) *zoo.Model {
	t.Helper()
	return RandomModelWith(t, name, inCh, classes, seed, nearIdentity)
}

func nearIdentity(rng *tensor.RNG, name string, d *tensor.Tensor) bool {
	switch {
	case strings.HasSuffix(name, "running_var"):
		rng.FillUniform(d, 0.5, 1.5)
	case strings.HasSuffix(name, "running_mean"), strings.HasSuffix(name, "bias"):
		rng.FillUniform(d, -0.2, 0.2)
	case d.Dims() == 1: // BatchNorm weight
		rng.FillUniform(d, 0.5, 1.2)
	default:
		return false
	}
	return true
}

// RandomNarrow is RandomModel of name in layout ("" for its first) with
// every width divided by div (zoo.NewNarrow): the design of a large
// network at the cost of a small one.
func RandomNarrow(t testing.TB, name string, layout zoo.Layout, inCh, classes, div int, seed uint64) *zoo.Model {
	t.Helper()
	m, err := zoo.NewNarrow(name, layout, inCh, classes, div)
	if err != nil {
		t.Fatal(err)
	}
	Randomize(m.Net, seed, nearIdentity)
	return m
}

// RandomModelWith is RandomModel with the tensors other than weights
// drawn by init, in state-dict order from one generator seeded by seed.
func RandomModelWith(t testing.TB, name string, inCh, classes int, seed uint64, init Init) *zoo.Model {
	t.Helper()
	m, err := zoo.New(name, inCh, classes)
	if err != nil {
		t.Fatal(err)
	}
	Randomize(m.Net, seed, init)
	return m
}

// Gunzip returns the contents of the gzip file at path, as the zoo's
// PyTorch fixtures (layers/zoo/testdata) are stored.
func Gunzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// Randomize gives the parameters of net, a network built by hand from
// the zoo's blocks, the values RandomModelWith would: He-scaled normal
// weights, the rest drawn by init (nil: RandomModel's).
func Randomize(net layers.Module, seed uint64, init Init) {
	if init == nil {
		init = nearIdentity
	}
	rng := tensor.NewRNG(seed)
	for _, e := range layers.StateDict(net) {
		if d := e.Tensor; !init(rng, e.Name, d) {
			fanIn := d.Numel() / d.Shape[0]
			rng.FillNormal(d, 0, float32(math.Sqrt(2/float64(fanIn))))
		}
	}
}
