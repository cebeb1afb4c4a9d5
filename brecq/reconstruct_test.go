package brecq

import (
	"slices"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/optim"
	"github.com/dghcore/dghcore/tensor"
)

// TestArenaStepsAreIdentical runs the same reconstruction steps of both
// phases with and without an arena: recycled buffers must not change a
// single bit of the losses or the learned values.
func TestArenaStepsAreIdentical(t *testing.T) {
	type result struct {
		losses, params []float32
	}
	run := func(arena *autograd.Arena) result {
		m := zootest.RandomModel(t, "resnet20", 3, 10, 31)
		q, err := New(m, 4, 4)
		if err != nil {
			t.Fatal(err)
		}
		blk := q.Units()[4].(*Block) // layer2.0: strided, with a downsample
		rng := tensor.NewRNG(32)
		x := rng.Randn(4, 16, 8, 8)
		target := blk.Forward(autograd.Const(x), Mode{}).Value
		for _, a := range blk.ActQuantizers() {
			a.Set(0.05+0.1*rng.Float32(), 0)
		}
		var res result
		for _, ph := range []Phase{PhaseWeights, PhaseActivations} {
			var params []*autograd.Var
			mode, p, beta := Mode{Weights: true}, float32(weightP), 10.0
			if ph == PhaseWeights {
				for _, qm := range blk.Modules() {
					qm.WQ.startAdaRound(qm.Weight)
					params = append(params, qm.WQ.Alpha)
				}
			} else {
				for _, qm := range blk.Modules() {
					qm.WQ.Soft = false
				}
				for _, a := range blk.ActQuantizers() {
					a.learn = true
					params = append(params, a.Delta)
				}
				mode, p, beta = Mode{Weights: true, Acts: true}, DefaultP, 0
			}
			opt, err := optim.NewAdam(params, optim.DefaultAdamConfig())
			if err != nil {
				t.Fatal(err)
			}
			for range 4 {
				rec, round, err := reconstructionStep(blk, mode, x, target, p, opt, params, beta, DefaultWeight, arena)
				if err != nil {
					t.Fatal(err)
				}
				res.losses = append(res.losses, float32(rec), float32(round))
			}
			for _, v := range params {
				res.params = append(res.params, v.Value.Data...)
			}
		}
		return res
	}
	heap, recycled := run(nil), run(autograd.NewArena())
	if !slices.Equal(heap.losses, recycled.losses) || !slices.Equal(heap.params, recycled.params) {
		t.Errorf("steps in an arena differ from steps on the heap: losses %v and %v", recycled.losses, heap.losses)
	}
}
