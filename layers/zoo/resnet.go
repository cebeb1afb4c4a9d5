package zoo

import (
	"fmt"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
)

// ResNet is the torchvision-style ResNet of docs/DESIGN.md, "Models and checkpoints" (BRECQ's
// layout): conv1, bn1, ReLU, maxpool (nil in the CIFAR-style resnet20),
// the stages layer1..layerN of residual blocks, global average pooling and
// fc.
type ResNet struct {
	layers.Hooks
	Conv1   *layers.Conv2d
	BN1     *layers.BatchNorm2d
	MaxPool *layers.MaxPool2d // nil when the network has none
	// Layers[i] holds the blocks of stage layer<i+1> (BasicBlock or
	// Bottleneck, or a replacement the quantizer put in their place).
	Layers [][]layers.Module
	FC     *layers.Linear
}

// Forward maps images [N, C, H, W] to logits [N, classes].
// In inference the stem is fused and block inputs are recycled once
// consumed when nothing else can hold them (see exclusive).
func (r *ResNet) Forward(x *autograd.Var) *autograd.Var {
	x, owned := convBN(r.Conv1, r.BN1, true, x)
	if r.MaxPool != nil {
		y := layers.Apply(r.MaxPool, x)
		ex := !r.MaxPool.HasHooks()
		if owned && ex && !y.RequiresGrad() {
			layers.Recycle(x)
		}
		x, owned = y, ex
	}
	for _, stage := range r.Layers {
		x, owned = runBlocks(stage, x, owned)
	}
	return layers.Apply(r.FC, autograd.GlobalAvgPool(x))
}

// Children names the sub-modules as PyTorch does. A stage "layerN" is
// listed as a Sequential built over Layers[N-1] on each call, so hooks
// belong on the blocks, not on the stage.
func (r *ResNet) Children() []layers.Named {
	ch := []layers.Named{{Name: "conv1", Module: r.Conv1}, {Name: "bn1", Module: r.BN1}}
	if r.MaxPool != nil {
		ch = append(ch, layers.Named{Name: "maxpool", Module: r.MaxPool})
	}
	for i, stage := range r.Layers {
		ch = append(ch, layers.Named{Name: fmt.Sprintf("layer%d", i+1), Module: layers.NewSequential(stage...)})
	}
	return append(ch, layers.Named{Name: "fc", Module: r.FC})
}

// BasicBlock is ResNet's two-conv residual block:
// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
type BasicBlock struct {
	layers.Hooks
	Conv1      *layers.Conv2d
	BN1        *layers.BatchNorm2d
	Conv2      *layers.Conv2d
	BN2        *layers.BatchNorm2d
	Downsample *layers.Sequential // 1x1 conv + BN; nil for the identity shortcut
}

func newBasicBlock(in, planes, stride int) *BasicBlock {
	b := &BasicBlock{
		Conv1: layers.NewConv2d(in, planes, 3, stride, 1, 1, false),
		BN1:   layers.NewBatchNorm2d(planes),
		Conv2: layers.NewConv2d(planes, planes, 3, 1, 1, 1, false),
		BN2:   layers.NewBatchNorm2d(planes),
	}
	if stride != 1 || in != planes {
		b.Downsample = newDownsample(in, planes, stride)
	}
	return b
}

func newDownsample(in, out, stride int) *layers.Sequential {
	return layers.NewSequential(layers.NewConv2d(in, out, 1, stride, 0, 1, false), layers.NewBatchNorm2d(out))
}

// Forward runs the block.
// In inference each conv + BN (+ ReLU) is fused and the sum and ReLU
// run in place (see convBN).
func (b *BasicBlock) Forward(x *autograd.Var) *autograd.Var {
	out, owned := convBN(b.Conv1, b.BN1, true, x)
	return convBNResidual(b.Conv2, b.BN2, b.Downsample, x, out, owned)
}

// convBNResidual ends a residual block: relu(bn(conv(h)) + shortcut(x)).
// Without gradients or hooks, conv and bn run fused and h, when owned, is
// recycled once consumed; otherwise bn, the sum and the ReLU run as one
// autograd node when bn's hooks allow (the shortcut is then computed
// before bn, not after), else module by module.
func convBNResidual(conv *layers.Conv2d, bn *layers.BatchNorm2d, ds *layers.Sequential, x, h *autograd.Var, hOwned bool) *autograd.Var {
	if y, ok := layers.FusedConvBNAct(conv, bn, nil, h); ok {
		if hOwned {
			layers.Recycle(h) // consumed by the fused conv, seen by no hook
		}
		return residual(ds, x, y, true)
	}
	c := layers.Apply(conv, h)
	if !layers.BNAddActFusable(bn, reluAct) {
		return residual(ds, x, layers.Apply(bn, c), false)
	}
	sc := shortcut(ds, x)
	out, ok := layers.ApplyBNAddAct(bn, reluAct, c, sc)
	if !ok { // shapes differ: Add reports them
		out = addReLU(layers.Apply(bn, c), false, sc)
	}
	recycleShortcut(ds, x, sc, out)
	return out
}

// residual returns relu(y + shortcut(x)), recycling the downsampled
// shortcut once added when nothing else can hold it.
func residual(ds *layers.Sequential, x, y *autograd.Var, owned bool) *autograd.Var {
	sc := shortcut(ds, x)
	out := addReLU(y, owned, sc)
	recycleShortcut(ds, x, sc, out)
	return out
}

// shortcut is ds(x), or x for the identity shortcut (ds nil).
func shortcut(ds *layers.Sequential, x *autograd.Var) *autograd.Var {
	if ds == nil {
		return x
	}
	return layers.Apply(ds, x)
}

// recycleShortcut recycles the downsampled shortcut sc once added into
// out, when nothing else can hold it.
func recycleShortcut(ds *layers.Sequential, x, sc, out *autograd.Var) {
	if ds != nil && layers.Exclusive(ds) && !sc.RequiresGrad() && !out.RequiresGrad() &&
		!layers.SameData(sc, x) && !layers.SameData(sc, out) {
		layers.Recycle(sc)
	}
}

// Children lists conv1, bn1, conv2, bn2 and downsample (when present).
func (b *BasicBlock) Children() []layers.Named {
	ch := []layers.Named{
		{Name: "conv1", Module: b.Conv1}, {Name: "bn1", Module: b.BN1},
		{Name: "conv2", Module: b.Conv2}, {Name: "bn2", Module: b.BN2},
	}
	if b.Downsample != nil {
		ch = append(ch, layers.Named{Name: "downsample", Module: b.Downsample})
	}
	return ch
}

// Bottleneck is ResNet-50's residual block: 1x1 reduce, 3x3 (carrying the
// stride, torchvision v1.5 and BRECQ), 1x1 expand by 4, plus the shortcut.
type Bottleneck struct {
	layers.Hooks
	Conv1      *layers.Conv2d
	BN1        *layers.BatchNorm2d
	Conv2      *layers.Conv2d
	BN2        *layers.BatchNorm2d
	Conv3      *layers.Conv2d
	BN3        *layers.BatchNorm2d
	Downsample *layers.Sequential // nil for the identity shortcut
}

const bottleneckExpansion = 4

func newBottleneck(in, planes, stride int) *Bottleneck {
	out := planes * bottleneckExpansion
	b := &Bottleneck{
		Conv1: layers.NewConv2d(in, planes, 1, 1, 0, 1, false),
		BN1:   layers.NewBatchNorm2d(planes),
		Conv2: layers.NewConv2d(planes, planes, 3, stride, 1, 1, false),
		BN2:   layers.NewBatchNorm2d(planes),
		Conv3: layers.NewConv2d(planes, out, 1, 1, 0, 1, false),
		BN3:   layers.NewBatchNorm2d(out),
	}
	if stride != 1 || in != out {
		b.Downsample = newDownsample(in, out, stride)
	}
	return b
}

// Forward runs the block.
// In inference each conv + BN (+ ReLU) is fused and the sum and ReLU
// run in place (see convBN).
func (b *Bottleneck) Forward(x *autograd.Var) *autograd.Var {
	out1, owned1 := convBN(b.Conv1, b.BN1, true, x)
	out2, owned2 := convBN(b.Conv2, b.BN2, true, out1)
	if owned1 && owned2 {
		layers.Recycle(out1)
	}
	return convBNResidual(b.Conv3, b.BN3, b.Downsample, x, out2, owned2)
}

// Children lists conv1..3, bn1..3 and downsample (when present).
func (b *Bottleneck) Children() []layers.Named {
	ch := []layers.Named{
		{Name: "conv1", Module: b.Conv1}, {Name: "bn1", Module: b.BN1},
		{Name: "conv2", Module: b.Conv2}, {Name: "bn2", Module: b.BN2},
		{Name: "conv3", Module: b.Conv3}, {Name: "bn3", Module: b.BN3},
	}
	if b.Downsample != nil {
		ch = append(ch, layers.Named{Name: "downsample", Module: b.Downsample})
	}
	return ch
}

// newImageNetResNet builds resnet18 (bottleneck false, blocks 2,2,2,2) or
// resnet50 (bottleneck true, blocks 3,4,6,3): 7x7 stride-2 stem, 3x3
// stride-2 max pooling, stages of width 64..512.
func newImageNetResNet(blocks []int, bottleneck bool, inCh, classes int) *ResNet {
	r := &ResNet{
		Conv1:   layers.NewConv2d(inCh, 64, 7, 2, 3, 1, false),
		BN1:     layers.NewBatchNorm2d(64),
		MaxPool: layers.NewMaxPool2d(3, 2, 1),
	}
	in := 64
	for i, n := range blocks {
		planes := 64 << i
		var stage []layers.Module
		for j := range n {
			stride := 1
			if i > 0 && j == 0 {
				stride = 2
			}
			if bottleneck {
				stage = append(stage, newBottleneck(in, planes, stride))
				in = planes * bottleneckExpansion
			} else {
				stage = append(stage, newBasicBlock(in, planes, stride))
				in = planes
			}
		}
		r.Layers = append(r.Layers, stage)
	}
	r.FC = layers.NewLinear(in, classes, true)
	return r
}

// newResNet20 builds the CIFAR-style resnet20 (docs/DESIGN.md, "Models and checkpoints"): 3x3 stride-1
// stem of 16 channels, no max pooling, three stages of three BasicBlocks at
// 16, 32, 64 channels, the first block of stages 2 and 3 striding by 2.
func newResNet20(inCh, classes int) *ResNet {
	r := &ResNet{
		Conv1: layers.NewConv2d(inCh, 16, 3, 1, 1, 1, false),
		BN1:   layers.NewBatchNorm2d(16),
	}
	in := 16
	for i := range 3 {
		planes := 16 << i
		var stage []layers.Module
		for j := range 3 {
			stride := 1
			if i > 0 && j == 0 {
				stride = 2
			}
			stage = append(stage, newBasicBlock(in, planes, stride))
			in = planes
		}
		r.Layers = append(r.Layers, stage)
	}
	r.FC = layers.NewLinear(in, classes, true)
	return r
}
