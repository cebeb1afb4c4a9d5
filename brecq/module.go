package brecq

// Quant modules and quant blocks (docs/DESIGN.md, "BRECQ", step 2).

import (
	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// Mode says what a forward pass quantizes.
type Mode struct {
	Weights bool // weight quantizers on (else the folded float weights)
	Acts    bool // activation quantizers on
}

// Activation is the function a quant module or block applies before its
// activation quantizer.
type Activation int

// The activations of the supported networks.
const (
	ActNone Activation = iota
	ActReLU
	ActReLU6
)

func (a Activation) apply(x *autograd.Var) *autograd.Var {
	switch a {
	case ActReLU:
		return autograd.ReLU(x)
	case ActReLU6:
		return autograd.ReLU6(x)
	}
	return x
}

// QuantModule is a conv or linear layer with its BatchNorm folded in, the
// following ReLU/ReLU6 merged, a weight quantizer and (unless it feeds a
// residual add) an activation quantizer on its output.
type QuantModule struct {
	Name   string         // dotted PyTorch name of the conv / linear layer
	Weight *tensor.Tensor // float weight, BatchNorm folded in
	Bias   *tensor.Tensor // float bias, BatchNorm folded in; nil when none
	// Linear is true for a fully connected layer; the conv fields are
	// then unused.
	Linear                    bool
	Stride, Padding, Dilation [2]int
	Groups                    int
	Act                       Activation
	WQ                        WeightQuantizer
	AQ                        *ActQuantizer // nil: the output is not quantized
	SkipReconstruction        bool          // HeadStem8bit's stem keeps round-to-nearest
}

// Forward runs the module on x under mode m.
func (q *QuantModule) Forward(x *autograd.Var, m Mode) *autograd.Var {
	w := autograd.Const(q.Weight)
	if m.Weights {
		w = q.WQ.quantize(q.Weight)
	}
	var b *autograd.Var
	if q.Bias != nil {
		b = autograd.Const(q.Bias)
	}
	var y *autograd.Var
	if q.Linear {
		y = autograd.Linear(x, w, b)
	} else {
		y = autograd.Conv2d(x, w, b, q.Stride, q.Padding, q.Dilation, q.Groups)
	}
	y = q.Act.apply(y)
	if m.Acts && q.AQ != nil {
		y = q.AQ.apply(y)
	}
	return y
}

// Block is a quantized residual block (BasicBlock, Bottleneck or
// InvertedResidual): the Main chain, whose last module does not quantize
// its output, plus the shortcut (Downsample, or the identity when nil) when
// Residual, then the block's activation and its own quantizer.
type Block struct {
	Name       string
	Kind       string // "BasicBlock", "Bottleneck" or "InvertedResidual"
	Main       []*QuantModule
	Downsample *QuantModule
	Residual   bool
	Act        Activation
	AQ         *ActQuantizer
}

// Forward runs the block on x under mode m.
func (b *Block) Forward(x *autograd.Var, m Mode) *autograd.Var {
	y := x
	for _, q := range b.Main {
		y = q.Forward(y, m)
	}
	if b.Residual {
		s := x
		if b.Downsample != nil {
			s = b.Downsample.Forward(x, m)
		}
		y = autograd.Add(y, s)
	}
	y = b.Act.apply(y)
	if m.Acts && b.AQ != nil {
		y = b.AQ.apply(y)
	}
	return y
}

// Unit is what the reconstruction optimises at once (docs/DESIGN.md, "BRECQ", step 4): a Block
// or a lone *QuantModule.
type Unit interface {
	UnitName() string
	Forward(x *autograd.Var, m Mode) *autograd.Var
	// Modules lists the unit's quant modules in definition order.
	Modules() []*QuantModule
	// ActQuantizers lists the unit's activation quantizers in the order
	// the forward pass meets them.
	ActQuantizers() []*ActQuantizer
}

// UnitName is the module's name.
func (q *QuantModule) UnitName() string { return q.Name }

// Modules is the module itself.
func (q *QuantModule) Modules() []*QuantModule { return []*QuantModule{q} }

// ActQuantizers is the output quantizer, if any.
func (q *QuantModule) ActQuantizers() []*ActQuantizer {
	if q.AQ == nil {
		return nil
	}
	return []*ActQuantizer{q.AQ}
}

// UnitName is the block's name.
func (b *Block) UnitName() string { return b.Name }

// Modules lists Main then Downsample, PyTorch's definition order.
func (b *Block) Modules() []*QuantModule {
	ms := append([]*QuantModule(nil), b.Main...)
	if b.Downsample != nil {
		ms = append(ms, b.Downsample)
	}
	return ms
}

// ActQuantizers lists the quantizers of Main, then the block's own.
func (b *Block) ActQuantizers() []*ActQuantizer {
	var qs []*ActQuantizer
	for _, q := range b.Modules() {
		qs = append(qs, q.ActQuantizers()...)
	}
	if b.AQ != nil {
		qs = append(qs, b.AQ)
	}
	return qs
}
