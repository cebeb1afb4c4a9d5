package zoo

import (
	"fmt"
	"slices"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
)

// MobileNetV2 is BRECQ's and torchvision's MobileNetV2 (docs/DESIGN.md,
// "Models and checkpoints"): features.0 a Sequential conv3x3 s2 + BN +
// ReLU6, features.1..17 InvertedResiduals, features.18 a Sequential
// conv1x1 + BN + ReLU6, the mean over H and W, and classifier =
// Sequential(Dropout, Linear). The two differ only in how a block names
// its layers (see newInvertedResidual).
type MobileNetV2 struct {
	layers.Hooks
	Features   []layers.Module
	Classifier *layers.Sequential
}

// Forward maps images [N, 3, H, W] to logits [N, classes].
// In inference, a feature's input is recycled once the feature has
// consumed it when nothing else can hold it (see exclusive); the image
// batch itself is the caller's.
func (m *MobileNetV2) Forward(x *autograd.Var) *autograd.Var {
	x, _ = runBlocks(m.Features, x, false)
	return layers.Apply(m.Classifier, autograd.GlobalAvgPool(x))
}

// Children lists features (a Sequential built over Features on each call,
// so hooks belong on its entries) and classifier.
func (m *MobileNetV2) Children() []layers.Named {
	return []layers.Named{
		{Name: "features", Module: layers.NewSequential(m.Features...)},
		{Name: "classifier", Module: m.Classifier},
	}
}

// InvertedResidual is MobileNetV2's block: Conv holds (1x1 expand conv,
// BN, ReLU6 when the expand ratio is not 1), depthwise 3x3 conv, BN,
// ReLU6, 1x1 projection conv, BN, the conv + BN + ReLU6 groups nested in
// Sequentials of their own in torchvision's layout; the input is added
// back when UseResidual (stride 1 and as many input as output channels).
type InvertedResidual struct {
	layers.Hooks
	Conv        *layers.Sequential
	UseResidual bool
}

// Forward runs the block.
// In inference the shortcut is added into the branch's output in place
// when nothing else can hold that output (layers.Exclusive).
func (b *InvertedResidual) Forward(x *autograd.Var) *autograd.Var {
	return invertedResidual(b.Conv, b.UseResidual, x)
}

// invertedResidual returns chain(x), plus x when residual; in inference
// the sum goes into the chain's output in place when nothing else can
// hold that output (layers.Exclusive).
func invertedResidual(chain *layers.Sequential, residual bool, x *autograd.Var) *autograd.Var {
	y := layers.Apply(chain, x)
	if !residual {
		return y
	}
	if !x.RequiresGrad() && !y.RequiresGrad() && !layers.SameData(x, y) &&
		slices.Equal(x.Shape(), y.Shape()) && layers.Exclusive(chain) {
		kernels.Add(y.Value.Data, y.Value.Data, x.Value.Data)
		return y
	}
	return autograd.Add(x, y)
}

// Children lists conv.
func (b *InvertedResidual) Children() []layers.Named {
	return []layers.Named{{Name: "conv", Module: b.Conv}}
}

// ConvBNAct is the conv + BN + activation Sequential MobileNetV2 uses for
// its first and last feature layers (PyTorch names .0, .1, .2).
func ConvBNAct(in, out, kernel, stride, groups int, act layers.Module) *layers.Sequential {
	return layers.NewSequential(
		layers.NewConv2d(in, out, kernel, stride, (kernel-1)/2, groups, false),
		layers.NewBatchNorm2d(out),
		act,
	)
}

// newInvertedResidual makes a block in either layout: BRECQ's Conv is one
// flat Sequential (conv.0 ... conv.7), torchvision's nests each conv + BN
// + ReLU6 in its own Sequential (conv.0.0, conv.0.1, then conv.1.*, and
// the projection conv.N, conv.N+1 at the top).
func newInvertedResidual(layout Layout, in, out, stride, expand int) *InvertedResidual {
	hidden := in * expand
	var stages [][]layers.Module // conv + BN + ReLU6 groups
	if expand != 1 {
		stages = append(stages, []layers.Module{
			layers.NewConv2d(in, hidden, 1, 1, 0, 1, false), layers.NewBatchNorm2d(hidden), &layers.ReLU6{}})
	}
	stages = append(stages, []layers.Module{
		layers.NewConv2d(hidden, hidden, 3, stride, 1, hidden, false), layers.NewBatchNorm2d(hidden), &layers.ReLU6{}})
	project := []layers.Module{layers.NewConv2d(hidden, out, 1, 1, 0, 1, false), layers.NewBatchNorm2d(out)}
	var conv []layers.Module
	for _, st := range stages {
		if layout == LayoutTorchvision {
			conv = append(conv, layers.NewSequential(st...))
		} else {
			conv = append(conv, st...)
		}
	}
	return &InvertedResidual{Conv: layers.NewSequential(append(conv, project...)...), UseResidual: stride == 1 && in == out}
}

// mobileNetV2Settings is (expand ratio t, repeats n, stride s) per group
// of blocks, from the MobileNetV2 paper, BRECQ and torchvision; the
// published widths c are mobileNetV2Widths.
var mobileNetV2Settings = [][3]int{{1, 1, 1}, {6, 2, 2}, {6, 3, 2}, {6, 4, 2}, {6, 3, 1}, {6, 3, 2}, {6, 1, 1}}

var mobileNetV2Widths = [9]int{32, 16, 24, 32, 64, 96, 160, 320, 1280} // stem, the groups, the last conv

// mobileNetV2Config is MobileNetV2 at given widths: the stem, each group
// of blocks and the last conv, in order.
type mobileNetV2Config struct {
	layout Layout
	widths [9]int
}

// mobileNetV2Family makes MobileNetV2s in one key layout.
type mobileNetV2Family struct{ layout Layout }

func (f mobileNetV2Family) published(div int) config {
	c := mobileNetV2Config{layout: f.layout}
	for i, w := range mobileNetV2Widths {
		c.widths[i] = max(w/div, 1)
	}
	return c
}

// projectionKey is the key of the projection conv's weight of block i
// (features.i) with expand ratio t.
func (f mobileNetV2Family) projectionKey(i, t int) string {
	switch {
	case f.layout == LayoutTorchvision && t == 1:
		return fmt.Sprintf("features.%d.conv.1.weight", i)
	case f.layout == LayoutTorchvision:
		return fmt.Sprintf("features.%d.conv.2.weight", i)
	case t == 1:
		return fmt.Sprintf("features.%d.conv.3.weight", i)
	}
	return fmt.Sprintf("features.%d.conv.6.weight", i)
}

func (f mobileNetV2Family) read(sd *torchload.StateDict) config {
	c := mobileNetV2Config{layout: f.layout}
	c.widths[0] = dimOf(sd, "features.0.0.weight", 4, 0, mobileNetV2Widths[0])
	block := 1
	for g, s := range mobileNetV2Settings {
		c.widths[g+1] = dimOf(sd, f.projectionKey(block, s[0]), 4, 0, mobileNetV2Widths[g+1])
		block += s[1]
	}
	c.widths[8] = dimOf(sd, fmt.Sprintf("features.%d.0.weight", block), 4, 0, mobileNetV2Widths[8])
	return c
}

func (mobileNetV2Family) fits(*torchload.StateDict) bool { return true }

func (c mobileNetV2Config) build(inCh, classes int) layers.Module {
	m := &MobileNetV2{Features: []layers.Module{ConvBNAct(inCh, c.widths[0], 3, 2, 1, &layers.ReLU6{})}}
	in := c.widths[0]
	for g, s := range mobileNetV2Settings {
		t, n, stride := s[0], s[1], s[2]
		for i := range n {
			if i > 0 {
				stride = 1
			}
			m.Features = append(m.Features, newInvertedResidual(c.layout, in, c.widths[g+1], stride, t))
			in = c.widths[g+1]
		}
	}
	last := c.widths[8]
	m.Features = append(m.Features, ConvBNAct(in, last, 1, 1, 1, &layers.ReLU6{}))
	m.Classifier = layers.NewSequential(&layers.Dropout{}, layers.NewLinear(last, classes, true))
	return m
}
