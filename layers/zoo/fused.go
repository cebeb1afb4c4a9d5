package zoo

import (
	"slices"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers"
)

// Fused inference for the residual blocks (docs/DESIGN.md, "Packages and the flow of a run"):
// conv + BN (+ ReLU) through layers.FusedConvBNAct, the residual sum and
// its ReLU in place, and buffers recycled once consumed, all only when no
// value requires a gradient and no hook can hold a value (otherwise the
// blocks run module by module, as before, but for a batch norm and its
// ReLU, which become one autograd node when hooks allow: ApplyBNAct; and
// when the batch norm takes its input's moments, as in DGH, that node's
// forward pass runs inside the convolution's: ApplyConvBNAct).

// reluAct stands for the ReLU the ResNet blocks apply as a function; it is
// never exposed, so no hook is ever registered on it.
var reluAct = &layers.ReLU{}

// convBN returns act(bn(conv(x))), with act a ReLU when relu is set.
// owned reports that the result is a fresh buffer nothing else refers to
// (the fused path), which the caller may then modify or recycle.
func convBN(conv *layers.Conv2d, bn *layers.BatchNorm2d, relu bool, x *autograd.Var) (y *autograd.Var, owned bool) {
	var act layers.Module
	if relu {
		act = reluAct
	}
	if y, ok := layers.FusedConvBNAct(conv, bn, act, x); ok {
		return y, true
	}
	if y, ok := layers.ApplyConvBNAct(conv, bn, act, x); ok {
		return y, false
	}
	c := layers.Apply(conv, x)
	if y, ok := layers.ApplyBNAct(bn, act, c); ok {
		return y, false
	}
	y = layers.Apply(bn, c)
	if relu {
		y = autograd.ReLU(y)
	}
	return y, false
}

// addReLU returns relu(y + sc), in y's buffer when y is owned.
func addReLU(y *autograd.Var, owned bool, sc *autograd.Var) *autograd.Var {
	if owned && !sc.RequiresGrad() && !layers.SameData(y, sc) && slices.Equal(y.Shape(), sc.Shape()) {
		kernels.Add(y.Value.Data, y.Value.Data, sc.Value.Data)
		kernels.ReLU(y.Value.Data, y.Value.Data)
		return y
	}
	return autograd.ReLU(autograd.Add(y, sc))
}

// exclusive extends layers.Exclusive to this package's blocks: a block
// without hooks on itself or any of its modules holds no reference to
// its input or output once Forward returns.
func exclusive(m layers.Module) bool {
	switch b := m.(type) {
	case *InvertedResidual:
		return !b.HasHooks() && layers.Exclusive(b.Conv)
	case *BasicBlock:
		return !b.HasHooks() && allExclusive(b.Conv1, b.BN1, b.Conv2, b.BN2) &&
			(b.Downsample == nil || layers.Exclusive(b.Downsample))
	case *Bottleneck:
		return !b.HasHooks() && allExclusive(b.Conv1, b.BN1, b.Conv2, b.BN2, b.Conv3, b.BN3) &&
			(b.Downsample == nil || layers.Exclusive(b.Downsample))
	case *ResBottleneckBlock:
		return !b.HasHooks() && allExclusive(b.A, b.ABN, b.B, b.BBN, b.C, b.CBN) &&
			(b.Proj == nil || layers.Exclusive(b.Proj))
	case *MNASNetBlock:
		return !b.HasHooks() && layers.Exclusive(b.Layers)
	}
	return layers.Exclusive(m)
}

func allExclusive(ms ...layers.Module) bool {
	for _, m := range ms {
		if !layers.Exclusive(m) {
			return false
		}
	}
	return true
}

// runBlocks applies blocks in turn to x, recycling each block's input
// once consumed when it is owned (nothing else holds it: xOwned for x)
// and the consuming block is exclusive.
func runBlocks(blocks []layers.Module, x *autograd.Var, xOwned bool) (*autograd.Var, bool) {
	for _, b := range blocks {
		y := layers.Apply(b, x)
		ex := exclusive(b)
		if xOwned && ex && !x.RequiresGrad() && !y.RequiresGrad() && !layers.SameData(x, y) {
			layers.Recycle(x)
		}
		x, xOwned = y, ex
	}
	return x, xOwned
}
