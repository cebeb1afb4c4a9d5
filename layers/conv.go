package layers

import (
	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// Conv2d is PyTorch's nn.Conv2d: weight [out, in/groups, kh, kw], optional
// bias [out], stride, zero padding, dilation and groups (depthwise when
// groups == in == out).
type Conv2d struct {
	Hooks
	Weight, Bias *autograd.Var // Bias may be nil
	Stride       [2]int
	Padding      [2]int
	Dilation     [2]int
	Groups       int
}

// NewConv2d returns a zero-initialised square-kernel convolution with
// dilation 1; set Dilation afterwards for a dilated one.
func NewConv2d(in, out, kernel, stride, padding, groups int, bias bool) *Conv2d {
	c := &Conv2d{
		Weight:   autograd.NewVar(tensor.New(out, in/groups, kernel, kernel), false),
		Stride:   [2]int{stride, stride},
		Padding:  [2]int{padding, padding},
		Dilation: [2]int{1, 1},
		Groups:   groups,
	}
	if bias {
		c.Bias = autograd.NewVar(tensor.New(out), false)
	}
	return c
}

// Forward convolves x [N, C, H, W].
func (c *Conv2d) Forward(x *autograd.Var) *autograd.Var {
	return autograd.Conv2d(x, c.Weight, c.Bias, c.Stride, c.Padding, c.Dilation, c.Groups)
}

// OwnParams lists weight and (when present) bias.
func (c *Conv2d) OwnParams() []NamedParam {
	ps := []NamedParam{{Name: "weight", Var: &c.Weight}}
	if c.Bias != nil {
		ps = append(ps, NamedParam{Name: "bias", Var: &c.Bias})
	}
	return ps
}

// OwnBuffers is empty: a convolution has no buffers.
func (c *Conv2d) OwnBuffers() []NamedTensor { return nil }

// Linear is PyTorch's nn.Linear: y = x w^T + b for x [N, in], w [out, in].
type Linear struct {
	Hooks
	Weight, Bias *autograd.Var // Bias may be nil
}

// NewLinear returns a zero-initialised fully connected layer.
func NewLinear(in, out int, bias bool) *Linear {
	l := &Linear{Weight: autograd.NewVar(tensor.New(out, in), false)}
	if bias {
		l.Bias = autograd.NewVar(tensor.New(out), false)
	}
	return l
}

// Forward applies the affine map to x [N, in].
func (l *Linear) Forward(x *autograd.Var) *autograd.Var {
	return autograd.Linear(x, l.Weight, l.Bias)
}

// OwnParams lists weight and (when present) bias.
func (l *Linear) OwnParams() []NamedParam {
	ps := []NamedParam{{Name: "weight", Var: &l.Weight}}
	if l.Bias != nil {
		ps = append(ps, NamedParam{Name: "bias", Var: &l.Bias})
	}
	return ps
}

// OwnBuffers is empty: a linear layer has no buffers.
func (l *Linear) OwnBuffers() []NamedTensor { return nil }
