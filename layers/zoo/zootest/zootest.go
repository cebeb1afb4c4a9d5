// Package zootest builds zoo models with seeded random weights for the
// tests of the packages above the zoo (brecq, the command): no
// checkpoint needed, any input channels and classes.
package zootest

import (
	"math"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// RandomModel returns the named zoo architecture with seeded random
// parameters: He-scaled weights, BatchNorms near the identity (gamma in
// [0.5, 1.2], running variance in [0.5, 1.5], running mean and biases in
// [-0.2, 0.2]).
func RandomModel(t testing.TB, name string, inCh, classes int, seed uint64) *zoo.Model {
	t.Helper()
	m, err := zoo.New(name, inCh, classes)
	if err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(seed)
	for _, e := range layers.StateDict(m.Net) {
		d := e.Tensor
		switch {
		case strings.HasSuffix(e.Name, "running_var"):
			rng.FillUniform(d, 0.5, 1.5)
		case strings.HasSuffix(e.Name, "running_mean"), strings.HasSuffix(e.Name, "bias"):
			rng.FillUniform(d, -0.2, 0.2)
		case d.Dims() == 1: // BatchNorm weight
			rng.FillUniform(d, 0.5, 1.2)
		default:
			fanIn := d.Numel() / d.Shape[0]
			rng.FillNormal(d, 0, float32(math.Sqrt(2/float64(fanIn))))
		}
	}
	return m
}
