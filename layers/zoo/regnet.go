package zoo

import (
	"fmt"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
)

// RegNet is BRECQ's pycls-style RegNetX (docs/DESIGN.md, "Models and
// checkpoints"): stem (conv 3x3 stride 2, bn, ReLU), stages s1..s4 of
// ResBottleneckBlocks b1..bN, the first of each striding by 2, global
// average pooling and head.fc.
type RegNet struct {
	layers.Hooks
	StemConv *layers.Conv2d
	StemBN   *layers.BatchNorm2d
	// Stages[i] holds the blocks of stage s<i+1> (ResBottleneckBlocks, or
	// replacements the quantizer put in their place).
	Stages [][]layers.Module
	FC     *layers.Linear
}

// Forward maps images [N, 3, H, W] to logits [N, classes].
func (r *RegNet) Forward(x *autograd.Var) *autograd.Var {
	x, owned := convBN(r.StemConv, r.StemBN, true, x)
	for _, stage := range r.Stages {
		x, owned = runBlocks(stage, x, owned)
	}
	return layers.Apply(r.FC, autograd.GlobalAvgPool(x))
}

// Children names the modules as pycls does: stem.conv, stem.bn, s1.b1,
// ..., head.fc. The stem, the stages and the head are listed as
// containers built on each call, so hooks belong on their entries.
func (r *RegNet) Children() []layers.Named {
	ch := []layers.Named{{Name: "stem", Module: &named{list: []layers.Named{
		{Name: "conv", Module: r.StemConv}, {Name: "bn", Module: r.StemBN}}}}}
	for i, stage := range r.Stages {
		s := &named{}
		for j, b := range stage {
			s.list = append(s.list, layers.Named{Name: fmt.Sprintf("b%d", j+1), Module: b})
		}
		ch = append(ch, layers.Named{Name: fmt.Sprintf("s%d", i+1), Module: s})
	}
	return append(ch, layers.Named{Name: "head", Module: &named{list: []layers.Named{{Name: "fc", Module: r.FC}}}})
}

// named is a container of modules under given names, run in turn; it
// stands for the attribute-named nn.Modules of pycls that hold no state
// of their own.
type named struct {
	layers.Hooks
	list []layers.Named
}

func (n *named) Forward(x *autograd.Var) *autograd.Var {
	for _, m := range n.list {
		x = layers.Apply(m.Module, x)
	}
	return x
}

func (n *named) Children() []layers.Named { return n.list }

// ResBottleneckBlock is RegNetX's residual block:
// relu(f(x) + shortcut(x)), f = a (1x1), a_bn, ReLU, b (3x3 grouped,
// carrying the stride), b_bn, ReLU, c (1x1), c_bn, and the shortcut the
// identity or proj (1x1, stride) + bn when the shape changes. pycls
// registers proj and bn before f, so they come first in the state dict.
type ResBottleneckBlock struct {
	layers.Hooks
	A, B, C       *layers.Conv2d
	ABN, BBN, CBN *layers.BatchNorm2d
	// Proj is proj + bn as one Sequential (listed by Children as proj and
	// bn); nil for the identity shortcut.
	Proj *layers.Sequential
}

func newResBottleneckBlock(in, out, stride, groups int) *ResBottleneckBlock {
	b := &ResBottleneckBlock{
		A: layers.NewConv2d(in, out, 1, 1, 0, 1, false), ABN: layers.NewBatchNorm2d(out),
		B: layers.NewConv2d(out, out, 3, stride, 1, groups, false), BBN: layers.NewBatchNorm2d(out),
		C: layers.NewConv2d(out, out, 1, 1, 0, 1, false), CBN: layers.NewBatchNorm2d(out),
	}
	if in != out || stride != 1 {
		b.Proj = newDownsample(in, out, stride)
	}
	return b
}

// Forward runs the block as the Bottleneck runs (fused in inference).
func (b *ResBottleneckBlock) Forward(x *autograd.Var) *autograd.Var {
	return bottleneck(b.A, b.B, b.C, b.ABN, b.BBN, b.CBN, b.Proj, x)
}

// Children lists proj and bn (when present), then f with a, a_bn, b,
// b_bn, c, c_bn.
func (b *ResBottleneckBlock) Children() []layers.Named {
	var ch []layers.Named
	if b.Proj != nil && len(b.Proj.Modules) == 2 {
		ch = append(ch, layers.Named{Name: "proj", Module: b.Proj.Modules[0]}, layers.Named{Name: "bn", Module: b.Proj.Modules[1]})
	}
	f := &named{list: []layers.Named{
		{Name: "a", Module: b.A}, {Name: "a_bn", Module: b.ABN},
		{Name: "b", Module: b.B}, {Name: "b_bn", Module: b.BBN},
		{Name: "c", Module: b.C}, {Name: "c_bn", Module: b.CBN},
	}}
	return append(ch, layers.Named{Name: "f", Module: f})
}

// regNetDesign is what a RegNetX's name fixes: the blocks per stage (with
// bottleneck ratio 1 and stride 2 in each stage's first block); its
// published widths come from the design-space parameters of the RegNet
// paper (WA, W0, WM, depth and group width), as pycls rounds them.
type regNetDesign struct {
	depths     []int
	stem       int
	widths     []int
	groupWidth int
}

var (
	regNetX600M  = &regNetDesign{depths: []int{1, 3, 5, 7}, stem: 32, widths: []int{48, 96, 240, 528}, groupWidth: 24}
	regNetX3200M = &regNetDesign{depths: []int{2, 6, 15, 2}, stem: 32, widths: []int{96, 192, 432, 1008}, groupWidth: 48}
)

// regNetConfig is a RegNetX at given widths and group counts per stage.
type regNetConfig struct {
	d      *regNetDesign
	stem   int
	widths []int
	groups []int
}

// regNetFamily makes the RegNetXs of one design.
type regNetFamily struct{ d *regNetDesign }

// published divides the widths and keeps each stage's group count, so a
// narrowed network has narrower groups, not fewer.
func (f regNetFamily) published(div int) config {
	c := regNetConfig{d: f.d, stem: max(f.d.stem/div, 1)}
	for _, w := range f.d.widths {
		g := w / f.d.groupWidth
		c.widths = append(c.widths, max((w/div+g-1)/g, 1)*g)
		c.groups = append(c.groups, g)
	}
	return c
}

func (f regNetFamily) read(sd *torchload.StateDict) config {
	c := regNetConfig{d: f.d, stem: dimOf(sd, "stem.conv.weight", 4, 0, f.d.stem)}
	for i, w := range f.d.widths {
		pre := fmt.Sprintf("s%d.b1.f.", i+1)
		w = dimOf(sd, pre+"c.weight", 4, 0, w)
		g := max(w/dimOf(sd, pre+"b.weight", 4, 1, f.d.groupWidth), 1)
		c.widths = append(c.widths, w)
		c.groups = append(c.groups, g)
	}
	return c
}

func (regNetFamily) fits(*torchload.StateDict) bool { return true }

func (c regNetConfig) build(inCh, classes int) layers.Module {
	r := &RegNet{StemConv: layers.NewConv2d(inCh, c.stem, 3, 2, 1, 1, false), StemBN: layers.NewBatchNorm2d(c.stem)}
	in := c.stem
	for i, n := range c.d.depths {
		var stage []layers.Module
		for j := range n {
			stride := 1
			if j == 0 {
				stride = 2
			}
			stage = append(stage, newResBottleneckBlock(in, c.widths[i], stride, c.groups[i]))
			in = c.widths[i]
		}
		r.Stages = append(r.Stages, stage)
	}
	r.FC = layers.NewLinear(in, classes, true)
	return r
}
