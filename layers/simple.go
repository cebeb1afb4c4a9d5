package layers

import (
	"strconv"

	"github.com/dghcore/dghcore/autograd"
)

// ReLU is max(x, 0).
type ReLU struct{ Hooks }

// Forward applies the rectifier.
func (*ReLU) Forward(x *autograd.Var) *autograd.Var { return autograd.ReLU(x) }

// ReLU6 is min(max(x, 0), 6), MobileNetV2's activation.
type ReLU6 struct{ Hooks }

// Forward applies the clipped rectifier.
func (*ReLU6) Forward(x *autograd.Var) *autograd.Var { return autograd.ReLU6(x) }

// Dropout is the identity: dghcore only evaluates and reconstructs
// networks, where dropout is off. P is kept for reference.
type Dropout struct {
	Hooks
	P float32
}

// Forward returns x unchanged.
func (*Dropout) Forward(x *autograd.Var) *autograd.Var { return x }

// Flatten reshapes [N, ...] to [N, prod(...)] (PyTorch's start_dim 1).
type Flatten struct{ Hooks }

// Forward flattens every axis after the first.
func (*Flatten) Forward(x *autograd.Var) *autograd.Var { return autograd.Flatten(x) }

// MaxPool2d is PyTorch's nn.MaxPool2d with implicit -inf padding
// (dilation 1, floor mode).
type MaxPool2d struct {
	Hooks
	Kernel, Stride, Padding [2]int
}

// NewMaxPool2d returns a square max pooling.
func NewMaxPool2d(kernel, stride, padding int) *MaxPool2d {
	return &MaxPool2d{
		Kernel:  [2]int{kernel, kernel},
		Stride:  [2]int{stride, stride},
		Padding: [2]int{padding, padding},
	}
}

// Forward pools x [N, C, H, W].
func (p *MaxPool2d) Forward(x *autograd.Var) *autograd.Var {
	return autograd.MaxPool2d(x, p.Kernel, p.Stride, p.Padding)
}

// AdaptiveAvgPool2d is PyTorch's nn.AdaptiveAvgPool2d(1): the mean over
// H and W, keeping PyTorch's [N, C, 1, 1] output shape.
type AdaptiveAvgPool2d struct{ Hooks }

// Forward averages x [N, C, H, W] to [N, C, 1, 1].
func (*AdaptiveAvgPool2d) Forward(x *autograd.Var) *autograd.Var {
	s := x.Shape()
	return autograd.Reshape(autograd.GlobalAvgPool(x), s[0], s[1], 1, 1)
}

// Sequential runs its modules in order, PyTorch's nn.Sequential; the
// children are named "0", "1", ... by position.
type Sequential struct {
	Hooks
	Modules []Module
}

// NewSequential wraps modules in a Sequential.
func NewSequential(modules ...Module) *Sequential {
	return &Sequential{Modules: modules}
}

// Forward feeds x through every module via Apply. In inference a
// Conv2d, BatchNorm2d (, ReLU/ReLU6) run without hooks is fused, and the
// buffers of fused outputs the next module has consumed are reused (see
// FusedConvBNAct); with gradients the same chain, its batch norm taking
// its input's moments, runs as one forward pass (ApplyConvBNAct), else
// its batch norm and activation as one node (ApplyBNAct).
func (s *Sequential) Forward(x *autograd.Var) *autograd.Var {
	pooled := false // x is a fused output of this call, buffer from bufPool
	for i := 0; i < len(s.Modules); {
		y, n := fuseAt(s.Modules, i, x)
		fused, safe := n > 0, true
		if !fused {
			if y, n = bnActAt(s.Modules, i, x); n == 0 {
				y, n = Apply(s.Modules[i], x), 1
			}
			for _, m := range s.Modules[i : i+n] {
				safe = safe && keepsNoInput(m)
			}
		}
		if pooled && safe && !SameData(x, y) {
			putBuf(x.Value.Data)
		}
		x, pooled = y, fused
		i += n
	}
	return x
}

// Children names the modules by their index.
func (s *Sequential) Children() []Named {
	return IndexedChildren(s.Modules)
}

// IndexedChildren names a list of modules "0", "1", ..., the way PyTorch
// names the entries of a Sequential or ModuleList.
func IndexedChildren(ms []Module) []Named {
	out := make([]Named, len(ms))
	for i, m := range ms {
		out[i] = Named{Name: strconv.Itoa(i), Module: m}
	}
	return out
}
