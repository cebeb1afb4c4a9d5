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
// ordered list of units with the parameter-free pools between them.
type QuantModel struct {
	Name string // the zoo model's name
	// Mode is what Forward quantizes; Quantize leaves it at weights only
	// or, after the activation phase, weights and activations.
	Mode Mode
	// Report holds the reconstruction losses of the units Quantize
	// reconstructed in this call (a resumed run lists only its own).
	Report []UnitReport

	steps   []Step
	modules []*QuantModule // definition order
}

// Step is one stage of the network in order: a unit, or the pool
// between two units. Exactly one field is set.
type Step struct {
	Unit Unit
	Pool *Pool
}

// Pool is the parameter-free glue between units: PyTorch's max pooling,
// or (Global) the average over H and W that feeds the classifier, giving
// [N, C].
type Pool struct {
	Global                  bool
	Kernel, Stride, Padding [2]int // max pooling only
}

// Forward pools x [N, C, H, W].
func (p *Pool) Forward(x *autograd.Var) *autograd.Var {
	if p.Global {
		return autograd.GlobalAvgPool(x)
	}
	return autograd.MaxPool2d(x, p.Kernel, p.Stride, p.Padding)
}

// Steps lists the units and pools in network order, for exporters.
func (q *QuantModel) Steps() []Step { return q.steps }

// Units lists the units in network order.
func (q *QuantModel) Units() []Unit {
	var us []Unit
	for _, s := range q.steps {
		if s.Unit != nil {
			us = append(us, s.Unit)
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
		if s.Unit != nil {
			x = s.Unit.Forward(x, m)
		} else {
			x = s.Pool.Forward(x)
		}
	}
	return x
}

// New folds the BatchNorms of model into its convolutions and rebuilds it
// from quant modules at the given bit widths, weights rounded to nearest
// with the searched steps (docs/DESIGN.md, "BRECQ", step 3) and activation quantizers not yet
// initialised. model is left untouched. It knows the zoo's ResNet
// (BasicBlock, Bottleneck), RegNet (ResBottleneckBlock), MobileNetV2 and
// MNASNet (InvertedResidual, MNASNetBlock) (docs/DESIGN.md, "BRECQ").
func New(model *zoo.Model, weightBits, actBits int) (*QuantModel, error) {
	if err := CheckBits("weight", weightBits); err != nil {
		return nil, err
	}
	if err := CheckBits("activation", actBits); err != nil {
		return nil, err
	}
	return build(model, weightBits, actBits)
}

// Fold is New without quantizers: the BatchNorms folded, the modules and
// blocks in place, no scale search. Under Mode{} its Forward is the float
// network; the float ONNX export starts from it (docs/DESIGN.md, "ONNX
// export").
func Fold(model *zoo.Model) (*QuantModel, error) { return build(model, 0, 0) }

// build rebuilds model; weightBits 0 leaves the weight quantizers unset.
func build(model *zoo.Model, weightBits, actBits int) (*QuantModel, error) {
	b := builder{wBits: weightBits, aBits: actBits, q: &QuantModel{Name: model.Name}}
	var err error
	switch net := model.Net.(type) {
	case *zoo.ResNet:
		err = b.resNet(net)
	case *zoo.MobileNetV2:
		err = b.headed("features", net.Features, net.Classifier)
	case *zoo.RegNet:
		err = b.regNet(net)
	case *zoo.MNASNet:
		if net.Layers == nil {
			err = fmt.Errorf("layers missing")
		} else {
			err = b.headed("layers", net.Layers.Modules, net.Classifier)
		}
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
	b.q.steps = append(b.q.steps, Step{Unit: u})
	b.q.modules = append(b.q.modules, u.Modules()...)
}

func (b *builder) pool(p *Pool) {
	b.q.steps = append(b.q.steps, Step{Pool: p})
}

func (b *builder) resNet(net *zoo.ResNet) error {
	stem, err := b.conv("conv1", net.Conv1, net.BN1, ActReLU, true)
	if err != nil {
		return err
	}
	b.unit(stem)
	if mp := net.MaxPool; mp != nil {
		b.pool(&Pool{Kernel: mp.Kernel, Stride: mp.Stride, Padding: mp.Padding})
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
	b.pool(&Pool{Global: true})
	fc, err := b.linear("fc", net.FC)
	if err != nil {
		return err
	}
	b.unit(fc)
	return nil
}

func (b *builder) regNet(net *zoo.RegNet) error {
	stem, err := b.conv("stem.conv", net.StemConv, net.StemBN, ActReLU, true)
	if err != nil {
		return err
	}
	b.unit(stem)
	for i, stage := range net.Stages {
		for j, m := range stage {
			blk, err := b.block(fmt.Sprintf("s%d.b%d", i+1, j+1), m)
			if err != nil {
				return err
			}
			b.unit(blk)
		}
	}
	b.pool(&Pool{Global: true})
	fc, err := b.linear("head.fc", net.FC)
	if err != nil {
		return err
	}
	b.unit(fc)
	return nil
}

// headed builds the networks that are a list of layers and blocks, the
// mean over H and W, and a classifier (MobileNetV2's features, MNASNet's
// layers): each conv (+ BN + activation) of the list and the classifier's
// linear layer are units of their own, each block is one, and a nested
// Sequential (an MNASNet stack, a MobileNetV2 feature) is walked in turn.
func (b *builder) headed(prefix string, body []layers.Module, classifier *layers.Sequential) error {
	if err := b.units(prefix, body); err != nil {
		return err
	}
	b.pool(&Pool{Global: true})
	if classifier == nil {
		return fmt.Errorf("classifier missing")
	}
	n := len(b.q.steps)
	if err := b.units("classifier", classifier.Modules); err != nil {
		return err
	}
	if len(b.q.steps) != n+1 {
		return fmt.Errorf("classifier: %d layers, want one linear layer", len(b.q.steps)-n)
	}
	return nil
}

// units appends the units of a list of modules named prefix.0, prefix.1,
// ...: blocks, conv [+ BN] [+ activation] groups, linear layers and
// nested lists.
func (b *builder) units(prefix string, ms []layers.Module) error {
	for i := 0; i < len(ms); i++ {
		name := fmt.Sprintf("%s.%d", prefix, i)
		switch m := ms[i].(type) {
		case *layers.Sequential:
			if err := b.units(name, m.Modules); err != nil {
				return err
			}
		case *zoo.BasicBlock, *zoo.Bottleneck, *zoo.InvertedResidual, *zoo.MNASNetBlock, *zoo.ResBottleneckBlock:
			blk, err := b.block(name, m)
			if err != nil {
				return err
			}
			b.unit(blk)
		case *layers.Dropout:
		default:
			q, next, err := b.group(prefix, ms, i, true)
			if err != nil {
				return err
			}
			b.unit(q)
			i = next - 1
		}
	}
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
	case *zoo.ResBottleneckBlock:
		return b.resBlock(name, "ResBottleneckBlock", []*layers.Conv2d{blk.A, blk.B, blk.C},
			[]*layers.BatchNorm2d{blk.ABN, blk.BBN, blk.CBN}, blk.Proj)
	case *zoo.InvertedResidual:
		return b.invertedResidual(name, name+".conv", blk.Conv, blk.UseResidual)
	case *zoo.MNASNetBlock:
		return b.invertedResidual(name, name+".layers", blk.Layers, blk.UseResidual)
	}
	return nil, fmt.Errorf("%s: block type %T is not supported", name, m)
}

// invertedResidual builds MobileNetV2's and MNASNet's blocks: the chain,
// the input added back when residual, no activation after the add.
func (b *builder) invertedResidual(name, chainName string, chain *layers.Sequential, residual bool) (*Block, error) {
	if chain == nil {
		return nil, fmt.Errorf("%s: layers missing", chainName)
	}
	main, err := b.chain(chainName, chain.Modules, true)
	if err != nil {
		return nil, err
	}
	if len(main) == 0 {
		return nil, fmt.Errorf("%s: no conv layers", name)
	}
	return b.finishBlock(&Block{Name: name, Kind: "InvertedResidual", Main: main, Residual: residual, Act: ActNone}), nil
}

// resBlock builds a BasicBlock, Bottleneck or ResBottleneckBlock: every
// conv but the last carries its ReLU and quantizer; the names of the
// convs are the block's own (conv1, f.a, ...).
func (b *builder) resBlock(name, kind string, convs []*layers.Conv2d, bns []*layers.BatchNorm2d, ds *layers.Sequential) (*Block, error) {
	blk := &Block{Name: name, Kind: kind, Residual: true, Act: ActReLU}
	convNames, dsName := []string{"conv1", "conv2", "conv3"}, "downsample.0"
	if kind == "ResBottleneckBlock" {
		convNames, dsName = []string{"f.a", "f.b", "f.c"}, "proj"
	}
	for i, c := range convs {
		last := i == len(convs)-1
		act := ActReLU
		if last {
			act = ActNone
		}
		q, err := b.conv(name+"."+convNames[i], c, bns[i], act, !last)
		if err != nil {
			return nil, err
		}
		blk.Main = append(blk.Main, q)
	}
	if ds != nil {
		var conv *layers.Conv2d
		var bn *layers.BatchNorm2d
		if len(ds.Modules) == 2 {
			conv, _ = ds.Modules[0].(*layers.Conv2d)
			bn, _ = ds.Modules[1].(*layers.BatchNorm2d)
		}
		if conv == nil || bn == nil {
			return nil, fmt.Errorf("%s.%s: want one conv + BN", name, dsName)
		}
		q, err := b.conv(name+"."+dsName, conv, bn, ActNone, false)
		if err != nil {
			return nil, err
		}
		blk.Downsample = q
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
// layers, dropouts and nested Sequentials (torchvision's MobileNetV2
// blocks) into quant modules named after the conv / linear entry.
// quantOut says whether each module quantizes its output.
func (b *builder) chain(prefix string, ms []layers.Module, quantOut bool) ([]*QuantModule, error) {
	var out []*QuantModule
	for i := 0; i < len(ms); i++ {
		switch m := ms[i].(type) {
		case *layers.Sequential:
			qs, err := b.chain(fmt.Sprintf("%s.%d", prefix, i), m.Modules, quantOut)
			if err != nil {
				return nil, err
			}
			out = append(out, qs...)
		case *layers.Dropout:
		default:
			q, next, err := b.group(prefix, ms, i, quantOut)
			if err != nil {
				return nil, err
			}
			out = append(out, q)
			i = next - 1
		}
	}
	return out, nil
}

// group makes the quant module of the conv [+ BN] [+ ReLU/ReLU6] or
// linear layer at ms[i], named prefix.i, and returns the index after it.
func (b *builder) group(prefix string, ms []layers.Module, i int, quantOut bool) (*QuantModule, int, error) {
	name := fmt.Sprintf("%s.%d", prefix, i)
	switch m := ms[i].(type) {
	case *layers.Conv2d:
		var bn *layers.BatchNorm2d
		j := i + 1
		if j < len(ms) {
			if n, ok := ms[j].(*layers.BatchNorm2d); ok {
				bn = n
				j++
			}
		}
		act := ActNone
		if j < len(ms) {
			switch ms[j].(type) {
			case *layers.ReLU:
				act = ActReLU
				j++
			case *layers.ReLU6:
				act = ActReLU6
				j++
			}
		}
		q, err := b.conv(name, m, bn, act, quantOut)
		return q, j, err
	case *layers.Linear:
		q, err := b.linear(name, m)
		if err == nil && !quantOut {
			q.AQ = nil
		}
		return q, i + 1, err
	}
	return nil, 0, fmt.Errorf("%s: layer type %T is not supported", name, ms[i])
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
	if b.wBits > 0 {
		var err error
		if q.WQ, err = newWeightQuantizer(q.Weight, b.wBits); err != nil {
			return nil, fmt.Errorf("%s: %w", q.Name, err)
		}
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
