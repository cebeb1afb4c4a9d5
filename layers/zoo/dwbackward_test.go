package zoo

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/tensor"
)

// TestDepthwiseBNBackwardFused: in a DGH-mode step (every batch norm
// taking its input's moments, hooks recording the inputs, parameters
// frozen), an inverted residual block's depthwise convolution runs its
// backward pass to its input fused with the batch norm's before it
// (autograd.Conv2dBatchNormActMoments). The losses, moments and input
// gradients must equal bit for bit those of the unfused pass, which a
// no-op hook on every convolution forces. The moments' terms are added
// in forward order, as DGH adds them (the batch norm's pass then waits
// for the moments' gradient), and in reverse (the gradient is there
// first), with some layers' moments taken but unused and some not taken
// at all (the pass without them), at one and several workers.
func TestDepthwiseBNBackwardFused(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, name := range []string{"mobilenet_v2", "mnasnet"} {
		m, err := NewNarrow(name, "", 3, 7, 4)
		if err != nil {
			t.Fatal(err)
		}
		randomize(m.Net, 7)
		layers.SetRequiresGrad(m.Net, false)
		rng := rand.New(rand.NewPCG(7, 8))
		x0 := tensor.New(2, 3, 32, 32)
		for i := range x0.Data {
			x0.Data[i] = float32(rng.NormFloat64())
		}
		run := func(hookConvs, reverse bool) (vals [][]float32) {
			var ins []*autograd.Var
			defer takeBNInputs(m.Net, hookConvs, &ins)()
			x := autograd.NewVar(x0.Clone(), true)
			y := m.Forward(x)
			var terms []*autograd.Var
			for i, in := range ins {
				switch i % 5 {
				case 4:
					continue // moments not taken
				case 3:
					mean, sq := autograd.ChannelMoments(in) // taken, unused
					vals = append(vals, slices.Clone(mean.Value.Data), slices.Clone(sq.Value.Data))
					continue
				}
				mean, sq := autograd.ChannelMoments(in)
				vals = append(vals, slices.Clone(mean.Value.Data), slices.Clone(sq.Value.Data))
				dm := autograd.AddScalar(mean, 0.1)
				ds := autograd.AddScalar(sq, -1)
				terms = append(terms, autograd.Add(autograd.Sum(autograd.Mul(dm, dm)), autograd.Sum(autograd.Mul(ds, ds))))
			}
			if reverse {
				slices.Reverse(terms)
			}
			loss := autograd.Sum(autograd.Mul(y, y))
			for _, v := range terms {
				loss = autograd.Add(loss, v)
			}
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			return append(vals, slices.Clone(loss.Value.Data), slices.Clone(y.Value.Data), slices.Clone(x.Grad.Data))
		}
		for _, procs := range []int{1, 4} {
			runtime.GOMAXPROCS(procs)
			for _, reverse := range []bool{false, true} {
				want, got := run(true, reverse), run(false, reverse)
				what := fmt.Sprintf("%s, %d workers, terms reversed %v", name, procs, reverse)
				if len(got) != len(want) {
					t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
				}
				for k := range want {
					if !slices.Equal(got[k], want[k]) {
						t.Fatalf("%s: value %d of %d differs from the unfused pass", what, k, len(want))
					}
				}
			}
		}
	}
}
