// Package autograd is dghcore's reverse-mode automatic differentiation.
//
// A Var holds a value and, when it requires a gradient, a gradient buffer
// and the closure that pushes its gradient to its parents. Ops record a
// backward closure only when one of their inputs requires a gradient, so
// inference builds no graph at all (docs/DESIGN.md, "Packages and the flow of a run").
package autograd

import (
	"fmt"

	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// Var is a node of the computation graph.
type Var struct {
	Value *tensor.Tensor
	// Grad accumulates d(loss)/d(Value); nil until the first backward pass
	// reaches it, and always nil when the Var does not require a gradient.
	Grad *tensor.Tensor

	requiresGrad bool
	parents      []*Var
	backward     func() // reads v.Grad, accumulates into parents' grads
	arena        *Arena // where ops on v allocate; nil: the heap
	// moments, when set, holds Value's per-channel mean then mean of
	// squares, left by an op that read Value anyway
	// (BatchNormActMoments) for ChannelMoments.
	moments []float32
	// A BatchNormActMoments node and a ChannelMoments node on v add into
	// v's gradient in one pass (kernels.ScaleShiftMomentsBackward):
	// whichever backward runs first, while the other is pending, leaves
	// its part here for the second, and Backward adds what is left when
	// v's own turn comes (see flushMoments).
	bnPending, momentsPending bool
	momentsGrad               []float32          // [dMean | dMeanSq]
	bnDeferred                func(dm []float32) // the batch norm's pass over v's gradient
	// uses counts the recorded ops that take v as an operand (a
	// gradient from each reaches v).
	uses int
	// bnBack, on the output of a batch norm node whose backward pass
	// does nothing but add to its input's gradient, is that pass, for the
	// convolution that is v's only use to run fused with its own
	// (see recordConv).
	bnBack *bnBackward
}

// NewVar wraps a tensor; requiresGrad marks a leaf whose gradient is wanted.
func NewVar(t *tensor.Tensor, requiresGrad bool) *Var {
	return &Var{Value: t, requiresGrad: requiresGrad}
}

// Const wraps a tensor that never needs a gradient.
func Const(t *tensor.Tensor) *Var { return &Var{Value: t} }

// RequiresGrad reports whether gradients flow into v.
func (v *Var) RequiresGrad() bool { return v.requiresGrad }

// Shape is the shape of v's value.
func (v *Var) Shape() []int { return v.Value.Shape }

// ZeroGrad clears the accumulated gradient (keeping its buffer).
func (v *Var) ZeroGrad() {
	if v.Grad != nil {
		kernels.Fill(v.Grad.Data, 0) // on the pool: DGH's images are 25 MB
	}
}

// Detach returns a Var sharing v's value with no graph behind it.
func (v *Var) Detach() *Var { return Const(v.Value) }

// gradBuf returns v's gradient buffer, allocating it zeroed on first use.
func (v *Var) gradBuf() *tensor.Tensor {
	if v.Grad == nil {
		v.Grad = v.newGrad(true)
	}
	return v.Grad
}

// gradDst returns v's gradient buffer for an op to add its contribution
// to, and whether this is the first contribution: then the buffer is
// uncleared (an intermediate's, from the arena) and the op must overwrite
// all of it rather than add.
func (v *Var) gradDst() (g *tensor.Tensor, fresh bool) {
	if v.Grad == nil {
		v.Grad = v.newGrad(false)
		return v.Grad, true
	}
	return v.Grad, false
}

// accumulate adds g to v's gradient. The first contribution is copied
// into a new buffer rather than added to a cleared one, which saves a
// pass over memory where a gradient has one source (most of a network).
func (v *Var) accumulate(g []float32) {
	if v.Grad == nil {
		v.Grad = v.newGrad(false)
		kernels.Copy(v.Grad.Data, g)
		return
	}
	kernels.Axpy(1, g, v.Grad.Data)
}

// newGrad returns a buffer for v's gradient, zeroed if zero is set (a
// heap buffer always is). An intermediate node takes it from its arena; a
// leaf's gradient outlives the step (an optimizer reads it), so it always
// lives on the heap.
func (v *Var) newGrad(zero bool) *tensor.Tensor {
	if v.arena != nil && v.backward != nil {
		return v.arena.alloc(v.Value.Shape, zero)
	}
	return tensor.New(v.Value.Shape...)
}

// record makes out a graph node with the given parents and backward
// closure when any parent requires a gradient; otherwise out stays a
// constant and nothing is kept. It returns out.
func record(out *Var, backward func(), parents ...*Var) *Var {
	for _, p := range parents {
		if p != nil && p.requiresGrad {
			out.requiresGrad = true
			out.parents = parents
			out.backward = backward
			for _, q := range parents {
				if q != nil {
					q.uses++
				}
			}
			return out
		}
	}
	return out
}

// Backward runs reverse mode from v, which must hold a single value
// (a loss). Gradients accumulate into every reachable Var that requires
// one; call ZeroGrad between steps.
func (v *Var) Backward() error {
	if v.Value.Numel() != 1 {
		return fmt.Errorf("autograd: Backward on %v, want a scalar", v.Value.Shape)
	}
	if !v.requiresGrad {
		return fmt.Errorf("autograd: Backward on a value that does not require a gradient")
	}
	v.gradBuf().Data[0] += 1
	order := topoOrder(v)
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		// Every consumer of n has run: a moments gradient still
		// waiting for its batch norm is added now.
		n.flushMoments()
		if n.backward != nil && n.Grad != nil {
			n.backward()
		}
	}
	return nil
}

// topoOrder lists the graph below v, parents before children, without
// recursion so deep networks cannot overflow the stack.
func topoOrder(root *Var) []*Var {
	var order []*Var
	seen := map[*Var]bool{root: true}
	type frame struct {
		v    *Var
		next int
	}
	stack := []frame{{v: root}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next < len(top.v.parents) {
			p := top.v.parents[top.next]
			top.next++
			if p != nil && p.requiresGrad && !seen[p] {
				seen[p] = true
				stack = append(stack, frame{v: p})
			}
			continue
		}
		order = append(order, top.v)
		stack = stack[:len(stack)-1]
	}
	return order
}

// needsGrad reports whether any of vs requires a gradient. Ops test it
// before building their backward closure, so an inference forward
// allocates nothing but its outputs.
func needsGrad(vs ...*Var) bool {
	for _, v := range vs {
		if v != nil && v.requiresGrad {
			return true
		}
	}
	return false
}

// output returns an op's zeroed output of the given shape, allocated in
// src's arena if it has one (src may be nil).
func output(src *Var, shape ...int) *Var {
	if src != nil && src.arena != nil {
		return &Var{Value: src.arena.alloc(shape, true), arena: src.arena}
	}
	return &Var{Value: tensor.New(shape...)}
}

// overwrittenOutput is output for ops whose forward kernel writes every
// element: a buffer reused from the arena is not cleared first.
func overwrittenOutput(src *Var, shape ...int) *Var {
	if src != nil && src.arena != nil {
		return &Var{Value: src.arena.alloc(shape, false), arena: src.arena}
	}
	return &Var{Value: tensor.New(shape...)}
}

// wrap makes t, computed from src (which may be nil), an op's output in
// src's arena: ops on it allocate there too.
func wrap(src *Var, t *tensor.Tensor) *Var {
	out := &Var{Value: t}
	if src != nil {
		out.arena = src.arena
	}
	return out
}

// pick returns whichever of a binary op's inputs has an arena (a if both
// or neither do).
func pick(a, b *Var) *Var {
	if a.arena == nil && b != nil && b.arena != nil {
		return b
	}
	return a
}
