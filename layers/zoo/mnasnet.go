package zoo

import (
	"fmt"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
)

// MNASNet is torchvision's MNASNet (BRECQ's copy of it keeps the layout;
// docs/DESIGN.md, "Models and checkpoints"): layers.0..7 the stem (conv
// 3x3 stride 2, BN, ReLU, depthwise 3x3, BN, ReLU, conv 1x1, BN, no
// activation), layers.8..13 six stacks (Sequentials) of MNASNetBlocks,
// layers.14..16 conv 1x1, BN, ReLU; the mean over H and W; classifier =
// Sequential(Dropout, Linear).
type MNASNet struct {
	layers.Hooks
	Layers     *layers.Sequential
	Classifier *layers.Sequential
}

// Forward maps images [N, 3, H, W] to logits [N, classes].
func (m *MNASNet) Forward(x *autograd.Var) *autograd.Var {
	return layers.Apply(m.Classifier, autograd.GlobalAvgPool(layers.Apply(m.Layers, x)))
}

// Children lists layers and classifier.
func (m *MNASNet) Children() []layers.Named {
	return []layers.Named{{Name: "layers", Module: m.Layers}, {Name: "classifier", Module: m.Classifier}}
}

// MNASNetBlock is MNASNet's inverted residual: Layers holds the 1x1
// expand conv, BN, ReLU, the depthwise 3x3 or 5x5 conv (carrying the
// stride), BN, ReLU, the 1x1 projection conv and BN; the input is added
// back when UseResidual (stride 1 and as many input as output channels).
type MNASNetBlock struct {
	layers.Hooks
	Layers      *layers.Sequential
	UseResidual bool
}

func newMNASNetBlock(in, out, kernel, stride, expand int) *MNASNetBlock {
	mid := in * expand
	return &MNASNetBlock{
		Layers: layers.NewSequential(
			layers.NewConv2d(in, mid, 1, 1, 0, 1, false), layers.NewBatchNorm2d(mid), &layers.ReLU{},
			layers.NewConv2d(mid, mid, kernel, stride, kernel/2, mid, false), layers.NewBatchNorm2d(mid), &layers.ReLU{},
			layers.NewConv2d(mid, out, 1, 1, 0, 1, false), layers.NewBatchNorm2d(out),
		),
		UseResidual: in == out && stride == 1,
	}
}

// Forward runs the block as InvertedResidual's.
func (b *MNASNetBlock) Forward(x *autograd.Var) *autograd.Var {
	return invertedResidual(b.Layers, b.UseResidual, x)
}

// Children lists layers.
func (b *MNASNetBlock) Children() []layers.Named {
	return []layers.Named{{Name: "layers", Module: b.Layers}}
}

// mnasNetStacks is (kernel, stride, expansion, repeats) of the six stacks,
// from the MNASNet paper and torchvision.
var mnasNetStacks = [6][4]int{{3, 2, 3, 3}, {5, 2, 3, 3}, {5, 2, 6, 3}, {3, 1, 6, 2}, {5, 2, 6, 4}, {3, 1, 6, 1}}

// mnasNetWidths are BRECQ's published widths, torchvision's MNASNet at
// scale 2.0 (torchvision publishes scale 1.0: half of each but the last):
// the stem's two convs, the six stacks, the last conv.
var mnasNetWidths = [9]int{64, 32, 48, 80, 160, 192, 384, 640, 1280}

// mnasNetConfig is an MNASNet at given widths.
type mnasNetConfig struct{ widths [9]int }

// mnasNetFamily makes MNASNets.
type mnasNetFamily struct{}

func (mnasNetFamily) published(div int) config {
	var c mnasNetConfig
	for i, w := range mnasNetWidths {
		c.widths[i] = max(w/div, 1)
	}
	return c
}

func (mnasNetFamily) read(sd *torchload.StateDict) config {
	var c mnasNetConfig
	c.widths[0] = dimOf(sd, "layers.0.weight", 4, 0, mnasNetWidths[0])
	c.widths[1] = dimOf(sd, "layers.6.weight", 4, 0, mnasNetWidths[1])
	for s := range mnasNetStacks {
		c.widths[2+s] = dimOf(sd, fmt.Sprintf("layers.%d.0.layers.6.weight", 8+s), 4, 0, mnasNetWidths[2+s])
	}
	c.widths[8] = dimOf(sd, "layers.14.weight", 4, 0, mnasNetWidths[8])
	return c
}

func (mnasNetFamily) fits(*torchload.StateDict) bool { return true }

func (c mnasNetConfig) build(inCh, classes int) layers.Module {
	d0, d1 := c.widths[0], c.widths[1]
	ms := []layers.Module{
		layers.NewConv2d(inCh, d0, 3, 2, 1, 1, false), layers.NewBatchNorm2d(d0), &layers.ReLU{},
		layers.NewConv2d(d0, d0, 3, 1, 1, d0, false), layers.NewBatchNorm2d(d0), &layers.ReLU{},
		layers.NewConv2d(d0, d1, 1, 1, 0, 1, false), layers.NewBatchNorm2d(d1),
	}
	in := d1
	for s, st := range mnasNetStacks {
		kernel, stride, expand, n := st[0], st[1], st[2], st[3]
		out := c.widths[2+s]
		var stack []layers.Module
		for i := range n {
			if i > 0 {
				stride = 1
			}
			stack = append(stack, newMNASNetBlock(in, out, kernel, stride, expand))
			in = out
		}
		ms = append(ms, layers.NewSequential(stack...))
	}
	last := c.widths[8]
	ms = append(ms, layers.NewConv2d(in, last, 1, 1, 0, 1, false), layers.NewBatchNorm2d(last), &layers.ReLU{})
	return &MNASNet{
		Layers:     layers.NewSequential(ms...),
		Classifier: layers.NewSequential(&layers.Dropout{}, layers.NewLinear(last, classes, true)),
	}
}
