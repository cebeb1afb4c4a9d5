package zoo

import (
	"fmt"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
)

// ResNet is torchvision's ResNet (BRECQ's resnet18 and resnet50 share its
// layout; docs/DESIGN.md, "Models and checkpoints"): conv1, bn1, ReLU,
// maxpool (nil in the CIFAR-style resnet20),
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
// before bn, not after; before conv, when that node's forward pass runs
// inside conv's: ApplyConvBNAddAct), else module by module.
func convBNResidual(conv *layers.Conv2d, bn *layers.BatchNorm2d, ds *layers.Sequential, x, h *autograd.Var, hOwned bool) *autograd.Var {
	if y, ok := layers.FusedConvBNAct(conv, bn, nil, h); ok {
		if hOwned {
			layers.Recycle(h) // consumed by the fused conv, seen by no hook
		}
		return residual(ds, x, y, true)
	}
	var sc *autograd.Var
	if layers.ConvBNActFusable(conv, bn, reluAct) {
		sc = shortcut(ds, x)
		if out, ok := layers.ApplyConvBNAddAct(conv, bn, reluAct, h, sc); ok {
			recycleShortcut(ds, x, sc, out)
			return out
		}
	}
	c := layers.Apply(conv, h)
	if !layers.BNAddActFusable(bn, reluAct) {
		return residual(ds, x, layers.Apply(bn, c), false)
	}
	if sc == nil {
		sc = shortcut(ds, x)
	}
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

// Bottleneck is the residual block of resnet50 and its relatives: 1x1
// reduce to the inner width, 3x3 (carrying the stride, torchvision v1.5
// and BRECQ; grouped in ResNeXt), 1x1 expand to the output width, plus
// the shortcut.
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

// newBottleneck makes a Bottleneck of the given inner (conv1, conv2) and
// output (conv3) widths; conv2 is grouped in ResNeXt.
func newBottleneck(in, inner, out, stride, groups int) *Bottleneck {
	b := &Bottleneck{
		Conv1: layers.NewConv2d(in, inner, 1, 1, 0, 1, false),
		BN1:   layers.NewBatchNorm2d(inner),
		Conv2: layers.NewConv2d(inner, inner, 3, stride, 1, groups, false),
		BN2:   layers.NewBatchNorm2d(inner),
		Conv3: layers.NewConv2d(inner, out, 1, 1, 0, 1, false),
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
	return bottleneck(b.Conv1, b.Conv2, b.Conv3, b.BN1, b.BN2, b.BN3, b.Downsample, x)
}

// bottleneck runs relu(bn3(c3(relu(bn2(c2(relu(bn1(c1(x)))))))) +
// shortcut(x)), ResNet's Bottleneck and RegNetX's ResBottleneckBlock.
func bottleneck(c1, c2, c3 *layers.Conv2d, bn1, bn2, bn3 *layers.BatchNorm2d, ds *layers.Sequential, x *autograd.Var) *autograd.Var {
	out1, owned1 := convBN(c1, bn1, true, x)
	out2, owned2 := convBN(c2, bn2, true, out1)
	if owned1 && owned2 {
		layers.Recycle(out1)
	}
	return convBNResidual(c3, bn3, ds, x, out2, owned2)
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

// resNetDesign is what a ResNet's name fixes, in torchvision's terms:
// the block, the blocks per stage, the stem, and a bottleneck's grouping
// and width per group. Its published widths are the stem's and each
// stage's planes (64, 128, 256, 512; resnet20's 16, 32, 64).
type resNetDesign struct {
	bottleneck bool
	cifar      bool // 3x3 stride-1 stem, no max pooling (resnet20)
	depths     []int
	stem       int
	planes     []int
	// A bottleneck's inner width is planes * widthPerGroup / 64 * groups
	// (torchvision's formula), its output width 4 * planes.
	groups, widthPerGroup int
}

const bottleneckExpansion = 4

func basicResNet(depths ...int) *resNetDesign {
	return &resNetDesign{depths: depths, stem: 64, planes: []int{64, 128, 256, 512}, groups: 1, widthPerGroup: 64}
}

func bottleneckResNet(groups, widthPerGroup int, depths ...int) *resNetDesign {
	return &resNetDesign{bottleneck: true, depths: depths, stem: 64, planes: []int{64, 128, 256, 512},
		groups: groups, widthPerGroup: widthPerGroup}
}

// resNet20 is the CIFAR-style resnet20: 3x3 stride-1 stem of 16
// channels, three stages of three BasicBlocks at 16, 32, 64 channels.
var resNet20 = resNetDesign{cifar: true, depths: []int{3, 3, 3}, stem: 16, planes: []int{16, 32, 64}, groups: 1, widthPerGroup: 64}

// inner and out are a block's inner and output widths for planes.
func (d *resNetDesign) inner(planes int) int {
	if !d.bottleneck {
		return planes
	}
	return planes * d.widthPerGroup / 64 * d.groups
}

func (d *resNetDesign) out(planes int) int {
	if !d.bottleneck {
		return planes
	}
	return planes * bottleneckExpansion
}

// lastConv is the block's conv whose output width is the block's.
func (d *resNetDesign) lastConv() string {
	if d.bottleneck {
		return "conv3"
	}
	return "conv2"
}

// resNetConfig is a ResNet design at given widths.
type resNetConfig struct {
	d      *resNetDesign
	stem   int
	planes []int
}

// resNetFamily makes the ResNets of one design.
type resNetFamily struct{ d *resNetDesign }

func (f resNetFamily) published(div int) config {
	c := resNetConfig{d: f.d, stem: max(f.d.stem/div, 1)}
	for _, p := range f.d.planes {
		// At least one channel per group inside a bottleneck.
		c.planes = append(c.planes, max(p/div, (64+f.d.widthPerGroup-1)/f.d.widthPerGroup))
	}
	return c
}

func (f resNetFamily) read(sd *torchload.StateDict) config {
	c := resNetConfig{d: f.d, stem: dimOf(sd, "conv1.weight", 4, 0, f.d.stem)}
	for i, p := range f.d.planes {
		out := dimOf(sd, fmt.Sprintf("layer%d.0.%s.weight", i+1, f.d.lastConv()), 4, 0, f.d.out(p))
		c.planes = append(c.planes, max(out/f.d.out(1), 1))
	}
	return c
}

// fits checks each stage's first block: its inner width and its 3x3
// convolution's grouping are those the design gives its output width.
func (f resNetFamily) fits(sd *torchload.StateDict) bool {
	for i := range f.d.planes {
		pre := fmt.Sprintf("layer%d.0.", i+1)
		c1, c2, last := sd.Tensors[pre+"conv1.weight"], sd.Tensors[pre+"conv2.weight"], sd.Tensors[pre+f.d.lastConv()+".weight"]
		if c1 == nil || c2 == nil || last == nil || c1.Dims() != 4 || c2.Dims() != 4 || last.Dims() != 4 {
			return false
		}
		out := last.Shape[0]
		if out%f.d.out(1) != 0 {
			return false
		}
		inner := f.d.inner(out / f.d.out(1))
		if c1.Shape[0] != inner || c2.Shape[0] != inner || c2.Shape[1]*f.d.groups != inner {
			return false
		}
	}
	return true
}

// build makes the network: torchvision's 7x7 stride-2 stem and 3x3
// stride-2 max pooling, or resnet20's 3x3 stride-1 stem; each stage after
// the first strides by 2 in its first block.
func (c resNetConfig) build(inCh, classes int) layers.Module {
	r := &ResNet{BN1: layers.NewBatchNorm2d(c.stem)}
	if c.d.cifar {
		r.Conv1 = layers.NewConv2d(inCh, c.stem, 3, 1, 1, 1, false)
	} else {
		r.Conv1 = layers.NewConv2d(inCh, c.stem, 7, 2, 3, 1, false)
		r.MaxPool = layers.NewMaxPool2d(3, 2, 1)
	}
	in := c.stem
	for i, n := range c.d.depths {
		inner, out := c.d.inner(c.planes[i]), c.d.out(c.planes[i])
		var stage []layers.Module
		for j := range n {
			stride := 1
			if i > 0 && j == 0 {
				stride = 2
			}
			if c.d.bottleneck {
				stage = append(stage, newBottleneck(in, inner, out, stride, c.d.groups))
			} else {
				stage = append(stage, newBasicBlock(in, out, stride))
			}
			in = out
		}
		r.Layers = append(r.Layers, stage)
	}
	r.FC = layers.NewLinear(in, classes, true)
	return r
}
