package zoo

import (
	"slices"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers"
)

// MobileNetV2 is BRECQ's MobileNetV2 (docs/DESIGN.md, "Models and checkpoints"): features.0 a
// Sequential conv3x3 s2 + BN + ReLU6, features.1..17 InvertedResiduals,
// features.18 a Sequential conv1x1 + BN + ReLU6, the mean over H and W,
// and classifier = Sequential(Dropout, Linear).
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
// ReLU6, 1x1 projection conv, BN; the input is added back when
// UseResidual (stride 1 and as many input as output channels).
type InvertedResidual struct {
	layers.Hooks
	Conv        *layers.Sequential
	UseResidual bool
}

// Forward runs the block.
// In inference the shortcut is added into the branch's output in place
// when nothing else can hold that output (layers.Exclusive).
func (b *InvertedResidual) Forward(x *autograd.Var) *autograd.Var {
	y := layers.Apply(b.Conv, x)
	if !b.UseResidual {
		return y
	}
	if !x.RequiresGrad() && !y.RequiresGrad() && !layers.SameData(x, y) &&
		slices.Equal(x.Shape(), y.Shape()) && layers.Exclusive(b.Conv) {
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

func newInvertedResidual(in, out, stride, expand int) *InvertedResidual {
	hidden := in * expand
	var conv *layers.Sequential
	if expand == 1 {
		conv = layers.NewSequential(
			layers.NewConv2d(hidden, hidden, 3, stride, 1, hidden, false), layers.NewBatchNorm2d(hidden), &layers.ReLU6{},
			layers.NewConv2d(hidden, out, 1, 1, 0, 1, false), layers.NewBatchNorm2d(out),
		)
	} else {
		conv = layers.NewSequential(
			layers.NewConv2d(in, hidden, 1, 1, 0, 1, false), layers.NewBatchNorm2d(hidden), &layers.ReLU6{},
			layers.NewConv2d(hidden, hidden, 3, stride, 1, hidden, false), layers.NewBatchNorm2d(hidden), &layers.ReLU6{},
			layers.NewConv2d(hidden, out, 1, 1, 0, 1, false), layers.NewBatchNorm2d(out),
		)
	}
	return &InvertedResidual{Conv: conv, UseResidual: stride == 1 && in == out}
}

// mobileNetV2Settings is (expand ratio t, channels c, repeats n, stride s)
// per group of blocks, from the MobileNetV2 paper and BRECQ.
var mobileNetV2Settings = [][4]int{
	{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
	{6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
}

func newMobileNetV2(inCh, classes int) *MobileNetV2 {
	m := &MobileNetV2{Features: []layers.Module{ConvBNAct(inCh, 32, 3, 2, 1, &layers.ReLU6{})}}
	in := 32
	for _, s := range mobileNetV2Settings {
		t, c, n, stride := s[0], s[1], s[2], s[3]
		for i := range n {
			if i > 0 {
				stride = 1
			}
			m.Features = append(m.Features, newInvertedResidual(in, c, stride, t))
			in = c
		}
	}
	m.Features = append(m.Features, ConvBNAct(in, 1280, 1, 1, 1, &layers.ReLU6{}))
	m.Classifier = layers.NewSequential(&layers.Dropout{}, layers.NewLinear(1280, classes, true))
	return m
}
