// Package autograd is dghcore's reverse-mode automatic differentiation.
//
// A Var holds a value and, when it requires a gradient, a gradient buffer
// and the closure that pushes its gradient to its parents. Ops record a
// backward closure only when one of their inputs requires a gradient, so
// inference builds no graph at all (SPEC section 1).
package autograd

import (
	"fmt"

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
		clear(v.Grad.Data)
	}
}

// Detach returns a Var sharing v's value with no graph behind it.
func (v *Var) Detach() *Var { return Const(v.Value) }

// gradBuf returns v's gradient buffer, allocating it zeroed on first use.
func (v *Var) gradBuf() *tensor.Tensor {
	if v.Grad == nil {
		v.Grad = tensor.New(v.Value.Shape...)
	}
	return v.Grad
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

// result wraps a freshly computed value as an op's output.
func result(t *tensor.Tensor) *Var { return &Var{Value: t} }
