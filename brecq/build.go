package brecq

// Building the quantized network from a zoo model (docs/DESIGN.md, "BRECQ", steps 1 and 2).

import (
	"fmt"
	"sync"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// QuantModel is a network rebuilt from quant modules and blocks: an
// ordered list of units with the parameter-free glue between them
// (max pooling, global pooling).
type QuantModel struct {
	Name string // the zoo model's name
	// Mode is what Forward quantizes; Quantize leaves it at weights only
	// or, after the activation phase, weights and activations.
	Mode Mode
	// Report holds the reconstruction losses of the units Quantize
	// reconstructed in this call (a resumed run lists only its own).
	Report []UnitReport

	steps   []step
	modules []*QuantModule // definition order
}

// step is a unit or a piece of glue.
type step struct {
	unit Unit
	glue func(*autograd.Var) *autograd.Var
}

// Units lists the units in network order.
func (q *QuantModel) Units() []Unit {
	var us []Unit
	for _, s := range q.steps {
		if s.unit != nil {
			us = append(us, s.unit)
		}
	}
	return us
}

// Modules lists every quant module in definition order.
func (q *QuantModel) Modules() []*QuantModule { return q.modules }

// Forward returns the logits of images x [N, C, H, W] under q.Mode,
// recording no gradient. Safe for concurrent use.
func (q *QuantModel) Forward(x *tensor.Tensor) *tensor.Tensor {
	a := forwardArenas.Get().(*autograd.Arena)
	defer forwardArenas.Put(a)
	in := autograd.Const(x)
	in.SetArena(a)
	logits := q.forward(in, q.Mode).Value.Clone()
	a.Reset()
	return logits
}

// forwardArenas hold the activations of Forward's passes: each layer's
// output reuses a buffer of the previous call (not cleared, as the ops
// overwrite it) instead of a new zeroed one.
var forwardArenas = sync.Pool{New: func() any { return autograd.NewArena() }}

func (q *QuantModel) forward(x *autograd.Var, m Mode) *autograd.Var {
	for _, s := range q.steps {
		if s.unit != nil {
			x = s.unit.Forward(x, m)
		} else {
			x = s.glue(x)
		}
	}
	return x
}

// New folds the BatchNorms of model into its convolutions and rebuilds it
// from quant modules at the given bit widths, weights rounded to nearest
// with the searched steps (docs/DESIGN.md, "BRECQ", step 3) and activation quantizers not yet
// initialised. model is left untouched. It knows the zoo's ResNet
// (BasicBlock, Bottleneck) and MobileNetV2 (InvertedResidual).
func New(model *zoo.Model, weightBits, actBits int) (*QuantModel, error) {
	if err := CheckBits("weight", weightBits); err != nil {
		return nil, err
	}
	if err := CheckBits("activation", actBits); err != nil {
		return nil, err
	}
	b := builder{wBits: weightBits, aBits: actBits, q: &QuantModel{Name: model.Name}}
	var err error
	switch net := model.Net.(type) {
	case *zoo.ResNet:
		err = b.resNet(net)
	case *zoo.MobileNetV2:
		err = b.mobileNetV2(net)
	default:
		err = fmt.Errorf("network type %T is not supported", model.Net)
	}
	if err != nil {
		return nil, fmt.Errorf("brecq: %s: %w", model.Name, err)
	}
	return b.q, nil
}

type builder struct {
	wBits, aBits int
	q            *QuantModel
}

func (b *builder) unit(u Unit) {
	b.q.steps = append(b.q.steps, step{unit: u})
	b.q.modules = append(b.q.modules, u.Modules()...)
}

func (b *builder) glue(f func(*autograd.Var) *autograd.Var) {
	b.q.steps = append(b.q.steps, step{glue: f})
}

func globalPool(x *autograd.Var) *autograd.Var { return autograd.GlobalAvgPool(x) }

func (b *builder) resNet(net *zoo.ResNet) error {
	stem, err := b.conv("conv1", net.Conv1, net.BN1, ActReLU, true)
	if err != nil {
		return err
	}
	b.unit(stem)
	if mp := net.MaxPool; mp != nil {
		b.glue(func(x *autograd.Var) *autograd.Var {
			return autograd.MaxPool2d(x, mp.Kernel, mp.Stride, mp.Padding)
		})
	}
	for i, stage := range net.Layers {
		for j, m := range stage {
			blk, err := b.block(fmt.Sprintf("layer%d.%d", i+1, j), m)
			if err != nil {
				return err
			}
			b.unit(blk)
		}
	}
	b.glue(globalPool)
	fc, err := b.linear("fc", net.FC)
	if err != nil {
		return err
	}
	b.unit(fc)
	return nil
}

func (b *builder) mobileNetV2(net *zoo.MobileNetV2) error {
	for i, f := range net.Features {
		name := fmt.Sprintf("features.%d", i)
		if seq, ok := f.(*layers.Sequential); ok {
			ms, err := b.chain(name, seq.Modules, true)
			if err != nil {
				return err
			}
			if len(ms) != 1 {
				return fmt.Errorf("%s: %d layers, want one conv (+ BN + activation)", name, len(ms))
			}
			b.unit(ms[0])
			continue
		}
		blk, err := b.block(name, f)
		if err != nil {
			return err
		}
		b.unit(blk)
	}
	b.glue(globalPool)
	if net.Classifier == nil {
		return fmt.Errorf("classifier missing")
	}
	ms, err := b.chain("classifier", net.Classifier.Modules, true)
	if err != nil {
		return err
	}
	if len(ms) != 1 {
		return fmt.Errorf("classifier: %d layers, want one linear layer", len(ms))
	}
	b.unit(ms[0])
	return nil
}

// block rebuilds one of the zoo's residual blocks.
func (b *builder) block(name string, m layers.Module) (*Block, error) {
	switch blk := m.(type) {
	case *zoo.BasicBlock:
		return b.resBlock(name, "BasicBlock", []*layers.Conv2d{blk.Conv1, blk.Conv2},
			[]*layers.BatchNorm2d{blk.BN1, blk.BN2}, blk.Downsample)
	case *zoo.Bottleneck:
		return b.resBlock(name, "Bottleneck", []*layers.Conv2d{blk.Conv1, blk.Conv2, blk.Conv3},
			[]*layers.BatchNorm2d{blk.BN1, blk.BN2, blk.BN3}, blk.Downsample)
	case *zoo.InvertedResidual:
		if blk.Conv == nil {
			return nil, fmt.Errorf("%s: conv missing", name)
		}
		main, err := b.chain(name+".conv", blk.Conv.Modules, true)
		if err != nil {
			return nil, err
		}
		if len(main) == 0 {
			return nil, fmt.Errorf("%s: no conv layers", name)
		}
		return b.finishBlock(&Block{Name: name, Kind: "InvertedResidual", Main: main, Residual: blk.UseResidual, Act: ActNone}), nil
	}
	return nil, fmt.Errorf("%s: block type %T is not supported", name, m)
}

// resBlock builds a BasicBlock or Bottleneck: every conv but the last
// carries its ReLU and quantizer.
func (b *builder) resBlock(name, kind string, convs []*layers.Conv2d, bns []*layers.BatchNorm2d, ds *layers.Sequential) (*Block, error) {
	blk := &Block{Name: name, Kind: kind, Residual: true, Act: ActReLU}
	for i, c := range convs {
		last := i == len(convs)-1
		act := ActReLU
		if last {
			act = ActNone
		}
		q, err := b.conv(fmt.Sprintf("%s.conv%d", name, i+1), c, bns[i], act, !last)
		if err != nil {
			return nil, err
		}
		blk.Main = append(blk.Main, q)
	}
	if ds != nil {
		ms, err := b.chain(name+".downsample", ds.Modules, false)
		if err != nil {
			return nil, err
		}
		if len(ms) != 1 || ms[0].Act != ActNone {
			return nil, fmt.Errorf("%s.downsample: want one conv + BN", name)
		}
		blk.Downsample = ms[0]
	}
	return b.finishBlock(blk), nil
}

// finishBlock gives the block its quantizer; the last conv of Main keeps
// its output unquantized for the add.
func (b *builder) finishBlock(blk *Block) *Block {
	blk.Main[len(blk.Main)-1].AQ = nil
	blk.AQ = &ActQuantizer{Bits: b.aBits}
	return blk
}

// chain turns a Sequential of conv [+ BN] [+ ReLU/ReLU6] groups, linear
// layers and dropouts into quant modules named after the conv / linear
// entry. quantOut says whether each module quantizes its output.
func (b *builder) chain(prefix string, ms []layers.Module, quantOut bool) ([]*QuantModule, error) {
	var out []*QuantModule
	for i := 0; i < len(ms); i++ {
		name := fmt.Sprintf("%s.%d", prefix, i)
		switch m := ms[i].(type) {
		case *layers.Conv2d:
			var bn *layers.BatchNorm2d
			if i+1 < len(ms) {
				if n, ok := ms[i+1].(*layers.BatchNorm2d); ok {
					bn = n
					i++
				}
			}
			act := ActNone
			if i+1 < len(ms) {
				switch ms[i+1].(type) {
				case *layers.ReLU:
					act = ActReLU
					i++
				case *layers.ReLU6:
					act = ActReLU6
					i++
				}
			}
			q, err := b.conv(name, m, bn, act, quantOut)
			if err != nil {
				return nil, err
			}
			out = append(out, q)
		case *layers.Linear:
			q, err := b.linear(name, m)
			if err != nil {
				return nil, err
			}
			if !quantOut {
				q.AQ = nil
			}
			out = append(out, q)
		case *layers.Dropout:
		default:
			return nil, fmt.Errorf("%s: layer type %T is not supported", name, ms[i])
		}
	}
	return out, nil
}

// conv makes the quant module of conv (+ bn folded in, when not nil).
func (b *builder) conv(name string, conv *layers.Conv2d, bn *layers.BatchNorm2d, act Activation, quantOut bool) (*QuantModule, error) {
	if conv == nil || conv.Weight == nil {
		return nil, fmt.Errorf("%s: conv missing", name)
	}
	w := conv.Weight.Value.Clone()
	var bias *tensor.Tensor
	if conv.Bias != nil {
		bias = conv.Bias.Value.Clone()
	}
	if bn != nil {
		var err error
		if w, bias, err = FoldBN(conv, bn); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	q := &QuantModule{
		Name: name, Weight: w, Bias: bias,
		Stride: conv.Stride, Padding: conv.Padding, Dilation: conv.Dilation, Groups: max(conv.Groups, 1),
		Act: act,
	}
	return b.finishModule(q, quantOut)
}

func (b *builder) linear(name string, l *layers.Linear) (*QuantModule, error) {
	if l == nil || l.Weight == nil {
		return nil, fmt.Errorf("%s: linear layer missing", name)
	}
	q := &QuantModule{Name: name, Weight: l.Weight.Value.Clone(), Linear: true}
	if l.Bias != nil {
		q.Bias = l.Bias.Value.Clone()
	}
	return b.finishModule(q, true)
}

func (b *builder) finishModule(q *QuantModule, quantOut bool) (*QuantModule, error) {
	var err error
	if q.WQ, err = newWeightQuantizer(q.Weight, b.wBits); err != nil {
		return nil, fmt.Errorf("%s: %w", q.Name, err)
	}
	if quantOut {
		q.AQ = &ActQuantizer{Bits: b.aBits}
	}
	return q, nil
}

// setHeadStem8bit applies HeadStem8bit the way the reference does: the
// first module's weights and output and the last module's weights at 8
// bits, the output quantizer of the second-to-last module (in definition
// order; the last layer's input in MobileNetV2) at 8 bits, and the first
// module left out of the reconstruction.
func (q *QuantModel) setHeadStem8bit() error {
	ms := q.modules
	if len(ms) < 2 {
		return fmt.Errorf("brecq: %s has %d quant modules, HeadStem8bit needs two", q.Name, len(ms))
	}
	first, last := ms[0], ms[len(ms)-1]
	for _, m := range []*QuantModule{first, last} {
		wq, err := newWeightQuantizer(m.Weight, HeadStemBits)
		if err != nil {
			return err
		}
		m.WQ = wq
	}
	if first.AQ != nil {
		first.AQ.Bits = HeadStemBits
	}
	if aq := ms[len(ms)-2].AQ; aq != nil {
		aq.Bits = HeadStemBits
	}
	first.SkipReconstruction = true
	return nil
}

// disableOutputQuant leaves the logits unquantized.
func (q *QuantModel) disableOutputQuant() {
	if len(q.modules) > 0 {
		q.modules[len(q.modules)-1].AQ = nil
	}
}
