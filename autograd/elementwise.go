package autograd

// Elementwise ops. Shapes must agree exactly (no broadcasting): a mismatch
// is a bug in the calling layer, so it panics with both shapes.

import (
	"fmt"
	"slices"

	"github.com/dghcore/dghcore/kernels"
)

func mustSameShape(op string, a, b *Var) {
	if !slices.Equal(a.Value.Shape, b.Value.Shape) {
		panic(fmt.Sprintf("autograd.%s: shapes %v and %v differ", op, a.Value.Shape, b.Value.Shape))
	}
}

// Add returns a + b.
func Add(a, b *Var) *Var {
	mustSameShape("Add", a, b)
	out := overwrittenOutput(pick(a, b), a.Value.Shape...)
	kernels.Add(out.Value.Data, a.Value.Data, b.Value.Data)
	if needsGrad(a, b) {
		record(out, func() {
			// d(a+b)/da = d(a+b)/db = 1
			if a.requiresGrad {
				a.accumulate(out.Grad.Data)
			}
			if b.requiresGrad {
				b.accumulate(out.Grad.Data)
			}
		}, a, b)
	}
	return out
}

// Sub returns a - b.
func Sub(a, b *Var) *Var {
	mustSameShape("Sub", a, b)
	out := overwrittenOutput(pick(a, b), a.Value.Shape...)
	kernels.Sub(out.Value.Data, a.Value.Data, b.Value.Data)
	if needsGrad(a, b) {
		record(out, func() {
			if a.requiresGrad {
				a.accumulate(out.Grad.Data)
			}
			if b.requiresGrad {
				kernels.Axpy(-1, out.Grad.Data, b.gradBuf().Data)
			}
		}, a, b)
	}
	return out
}

// Mul returns the elementwise product a * b.
func Mul(a, b *Var) *Var {
	mustSameShape("Mul", a, b)
	out := overwrittenOutput(pick(a, b), a.Value.Shape...)
	kernels.Mul(out.Value.Data, a.Value.Data, b.Value.Data)
	if needsGrad(a, b) {
		record(out, func() {
			// da += dy*b, db += dy*a
			if a.requiresGrad {
				kernels.MulAcc(a.gradBuf().Data, out.Grad.Data, b.Value.Data)
			}
			if b.requiresGrad {
				kernels.MulAcc(b.gradBuf().Data, out.Grad.Data, a.Value.Data)
			}
		}, a, b)
	}
	return out
}

// Scale returns s * x.
func Scale(x *Var, s float32) *Var {
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.Scale(out.Value.Data, s, x.Value.Data)
	if needsGrad(x) {
		record(out, func() {
			kernels.Axpy(s, out.Grad.Data, x.gradBuf().Data)
		}, x)
	}
	return out
}

// AddScalar returns x + s.
func AddScalar(x *Var, s float32) *Var {
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.AddScalar(out.Value.Data, x.Value.Data, s)
	if needsGrad(x) {
		record(out, func() {
			x.accumulate(out.Grad.Data)
		}, x)
	}
	return out
}

// maskedGrad adds to v's gradient dy where the activation act (ReLU or
// ReLU6) of the values y passes it. The first contribution overwrites
// v's uncleared gradient rather than clearing and adding to it.
func maskedGrad(v *Var, act kernels.Activation, y, dy []float32) {
	set, add := kernels.ReLUBackwardSet, kernels.ReLUBackward
	if act == kernels.ActReLU6 {
		set, add = kernels.ReLU6BackwardSet, kernels.ReLU6Backward
	}
	if g, fresh := v.gradDst(); fresh {
		set(y, dy, g.Data)
	} else {
		add(y, dy, g.Data)
	}
}

// ReLU returns max(x, 0); the gradient is zero at 0, as in PyTorch.
func ReLU(x *Var) *Var {
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.ReLU(out.Value.Data, x.Value.Data)
	if needsGrad(x) {
		record(out, func() {
			maskedGrad(x, kernels.ActReLU, x.Value.Data, out.Grad.Data)
		}, x)
	}
	return out
}

// ReLU6 returns min(max(x, 0), 6); no gradient at either bound.
func ReLU6(x *Var) *Var {
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.ReLU6(out.Value.Data, x.Value.Data)
	if needsGrad(x) {
		record(out, func() {
			maskedGrad(x, kernels.ActReLU6, x.Value.Data, out.Grad.Data)
		}, x)
	}
	return out
}

// MaxScalar returns max(x, s) elementwise, the clamp-at-zero terms of the
// DGH output loss (docs/DESIGN.md, "DGH", step 6). Like torch.clamp(x, min=s) the gradient
// passes where x >= s.
func MaxScalar(x *Var, s float32) *Var {
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.MaxScalar(out.Value.Data, x.Value.Data, s)
	if needsGrad(x) {
		record(out, func() {
			kernels.MaxScalarBackward(x.Value.Data, out.Grad.Data, x.gradBuf().Data, s)
		}, x)
	}
	return out
}

// Sqrt returns sqrt(x).
func Sqrt(x *Var) *Var {
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.Sqrt(out.Value.Data, x.Value.Data)
	if needsGrad(x) {
		record(out, func() {
			// d sqrt(x)/dx = 1/(2 sqrt(x)), from the stored output.
			kernels.SqrtBackward(out.Value.Data, out.Grad.Data, x.gradBuf().Data)
		}, x)
	}
	return out
}

// Pow returns x^p elementwise.
func Pow(x *Var, p float32) *Var {
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.Pow(out.Value.Data, x.Value.Data, p)
	if needsGrad(x) {
		record(out, func() {
			kernels.PowBackward(x.Value.Data, out.Grad.Data, x.gradBuf().Data, p)
		}, x)
	}
	return out
}
