package autograd

import (
	"slices"

	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// Arena recycles the buffers of graph values and gradients from one step
// of an iterative algorithm to the next. DGH (docs/DESIGN.md, "DGH") builds the
// same graph every batch step; without an arena each step allocates
// every activation and gradient afresh, and the garbage collector and
// the page faults of new memory cost a sizeable part of the step.
//
// Ops on a Var that has an arena (SetArena) allocate their outputs, and
// the gradients of those outputs, in it, and pass it on to their outputs.
// Reset hands every buffer back at once, so a caller resets only when no
// Var computed in the arena since the previous Reset is used any more.
// An Arena is not safe for concurrent use.
type Arena struct {
	free map[int][][]float32 // buffers handed back, by length
	used [][]float32         // buffers handed out since the last Reset
}

// NewArena returns an empty arena.
func NewArena() *Arena { return &Arena{free: map[int][][]float32{}} }

// SetArena makes ops on v allocate in a (nil: on the heap). A leaf's own
// gradient stays on the heap.
func (v *Var) SetArena(a *Arena) { v.arena = a }

// alloc returns a tensor of the shape, reusing a handed-back buffer of
// the same length when there is one; zero asks for it cleared (a new
// buffer always is).
func (a *Arena) alloc(shape []int, zero bool) *tensor.Tensor {
	n := tensor.Numel(shape)
	var data []float32
	if l := a.free[n]; len(l) > 0 {
		data = l[len(l)-1]
		l[len(l)-1] = nil
		a.free[n] = l[:len(l)-1]
		if zero {
			kernels.Fill(data, 0) // on the pool: activation-sized
		}
	} else {
		data = make([]float32, n)
	}
	a.used = append(a.used, data)
	return &tensor.Tensor{Shape: slices.Clone(shape), Data: data}
}

// Reset hands back every buffer allocated since the previous Reset.
func (a *Arena) Reset() {
	for _, d := range a.used {
		a.free[len(d)] = append(a.free[len(d)], d)
	}
	clear(a.used)
	a.used = a.used[:0]
}
