package autograd

// Network ops: convolution, linear, eval-mode batch norm and pooling
// (docs/DESIGN.md, "Packages and the flow of a run"). Shape mismatches are bugs in the calling layer
// (layers validate checkpoints and inputs first), so they panic with the
// shapes involved.

import (
	"fmt"
	"math"
	"sync"

	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// Conv2d returns the 2-D convolution of x [N,C,H,W] with w
// [K, C/groups, KH, KW] plus b [K] (b may be nil), PyTorch semantics.
func Conv2d(x, w, b *Var, stride, padding, dilation [2]int, groups int) *Var {
	p, bias := convParams("Conv2d", x, w, b, stride, padding, dilation, groups)
	out := overwrittenOutput(x, p.N, p.K, p.OutH(), p.OutW())
	kernels.Conv2dForward(p, x.Value.Data, w.Value.Data, bias, out.Value.Data)
	return recordConv(out, p, x, w, b, false)
}

// convParams checks the operands of the convolution op and returns its
// parameters and bias data (nil for a nil b).
func convParams(op string, x, w, b *Var, stride, padding, dilation [2]int, groups int) (kernels.ConvParams, []float32) {
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(xs) != 4 || len(ws) != 4 {
		panic(fmt.Sprintf("autograd.%s: input %v and weight %v must both be 4-D", op, xs, ws))
	}
	p := kernels.ConvParams{
		N: xs[0], C: xs[1], H: xs[2], W: xs[3], K: ws[0], KH: ws[2], KW: ws[3],
		StrideH: stride[0], StrideW: stride[1], PadH: padding[0], PadW: padding[1],
		DilH: dilation[0], DilW: dilation[1], Groups: groups,
	}
	if err := p.Validate(); err != nil {
		panic(fmt.Sprintf("autograd.%s: input %v weight %v: %v", op, xs, ws, err))
	}
	if ws[1]*groups != xs[1] {
		panic(fmt.Sprintf("autograd.%s: weight %v with groups=%d does not fit input %v", op, ws, groups, xs))
	}
	if b == nil {
		return p, nil
	}
	if b.Value.Numel() != p.K {
		panic(fmt.Sprintf("autograd.%s: bias %v for %d output channels", op, b.Value.Shape, p.K))
	}
	return p, b.Value.Data
}

// recordConv records out as the convolution p of x with w and b. With
// fuse set, where x is a batch norm's output whose backward pass only
// adds to its input's gradient (Var.bnBack) and nothing but this
// convolution takes x, the backward pass to x runs with the batch
// norm's (kernels.Conv2dBackwardDataMomentsBackward): x's gradient is
// written as ever, and read back from cache rather than memory.
func recordConv(out *Var, p kernels.ConvParams, x, w, b *Var, fuse bool) *Var {
	if !needsGrad(x, w, b) {
		return out
	}
	return record(out, func() {
		dy := out.Grad.Data
		if bn := x.bnBack; fuse && bn != nil && x.uses == 1 && x.Grad == nil && !bn.fused {
			// x's gradient is this convolution's alone, and the batch
			// norm's backward has not run (it runs after every use of
			// x): it is taken over here, with the moments' gradient
			// once that is final (toX).
			bn.fused = true
			bn.toX(func(dm []float32) {
				dc, _ := x.gradDst()
				if dm == nil {
					kernels.Conv2dBackwardDataSet(p, dy, w.Value.Data, dc.Data)
					bn.pass(nil)
					return
				}
				dx, fresh := bn.x.gradDst()
				kernels.Conv2dBackwardDataMomentsBackward(p, dy, w.Value.Data, dc.Data, bn.x.Value.Data, bn.scale, bn.shift,
					x.Value.Data, dx.Data, dm, bn.act, fresh)
			})
		} else if x.requiresGrad {
			if dx, fresh := x.gradDst(); fresh {
				kernels.Conv2dBackwardDataSet(p, dy, w.Value.Data, dx.Data)
			} else {
				kernels.Conv2dBackwardData(p, dy, w.Value.Data, dx.Data)
			}
		}
		if w.requiresGrad {
			kernels.Conv2dBackwardWeight(p, x.Value.Data, dy, w.gradBuf().Data)
		}
		if b != nil && b.requiresGrad {
			kernels.Conv2dBackwardBias(p, dy, b.gradBuf().Data)
		}
	}, x, w, b)
}

// Linear returns x w^T + b for x [N,in], w [out,in], b [out] or nil.
func Linear(x, w, b *Var) *Var {
	xs, ws := x.Value.Shape, w.Value.Shape
	if len(xs) != 2 || len(ws) != 2 || xs[1] != ws[1] {
		panic(fmt.Sprintf("autograd.Linear: input %v and weight %v, want [N,in] and [out,in]", xs, ws))
	}
	n, in, nOut := xs[0], xs[1], ws[0]
	if b != nil && b.Value.Numel() != nOut {
		panic(fmt.Sprintf("autograd.Linear: bias %v for %d outputs", b.Value.Shape, nOut))
	}
	out := overwrittenOutput(x, n, nOut)
	y := out.Value.Data
	if b != nil {
		for r := range n {
			copy(y[r*nOut:(r+1)*nOut], b.Value.Data)
		}
	}
	// y = 1*x*w^T + (b broadcast over rows, or 0)
	kernels.Sgemm(false, true, n, nOut, in, 1, x.Value.Data, in, w.Value.Data, in, boolTo01(b != nil), y, nOut)
	if needsGrad(x, w, b) {
		record(out, func() {
			dy := out.Grad.Data
			if x.requiresGrad { // dx += dy w
				kernels.Sgemm(false, false, n, in, nOut, 1, dy, nOut, w.Value.Data, in, 1, x.gradBuf().Data, in)
			}
			if w.requiresGrad { // dw += dy^T x
				kernels.Sgemm(true, false, nOut, in, n, 1, dy, nOut, x.Value.Data, in, 1, w.gradBuf().Data, in)
			}
			if b != nil && b.requiresGrad { // db += column sums of dy
				db := b.gradBuf().Data
				for r := range n {
					kernels.Axpy(1, dy[r*nOut:(r+1)*nOut], db)
				}
			}
		}, x, w, b)
	}
	return out
}

func boolTo01(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

// channelScratch holds the per-channel scale and shift of an inference
// BatchNorm, so a forward without a graph allocates only its output.
var channelScratch = sync.Pool{New: func() any { return new([]float32) }}

// BatchNorm applies an eval-mode batch norm over axis 1 of x [N,C,...]:
// y = (x - mean)/sqrt(var + eps)*gamma + beta with the running statistics
// held fixed. gamma and beta may be nil (no affine transform).
func BatchNorm(x *Var, runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32) *Var {
	return BatchNormAct(x, runningMean, runningVar, gamma, beta, eps, kernels.ActNone)
}

// BatchNormAct is act(BatchNorm(...)) as one node: one pass over x
// forward and one backward, where the unfused chain makes two of each.
// Values and gradients equal the chain's (ReLU's gradient passes where
// the output is positive, ReLU6's where it is strictly inside (0, 6)).
func BatchNormAct(x *Var, runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation) *Var {
	return batchNormAct(x, nil, runningMean, runningVar, gamma, beta, eps, act, false)
}

// BatchNormActMoments is BatchNormAct that also takes x's per-channel
// moments in the same pass and keeps them with x, where ChannelMoments
// finds them instead of reading x again (DGH takes the moments of every
// BatchNorm input). x's value must not change afterwards.
func BatchNormActMoments(x *Var, runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation) *Var {
	return batchNormAct(x, nil, runningMean, runningVar, gamma, beta, eps, act, true)
}

// BatchNormAddAct is act(Add(BatchNorm(x, ...), r)) as one node, the tail
// of a ResNet block: one pass over memory forward where the chain makes
// three, and two backward (x's gradient, r's) where it makes four.
// Values and gradients equal the chain's.
func BatchNormAddAct(x, r *Var, runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation) *Var {
	mustSameShape("BatchNormAddAct", x, r)
	return batchNormAct(x, r, runningMean, runningVar, gamma, beta, eps, act, false)
}

// BatchNormAddActMoments is BatchNormAddAct that also takes x's moments,
// as BatchNormActMoments does.
func BatchNormAddActMoments(x, r *Var, runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation) *Var {
	mustSameShape("BatchNormAddAct", x, r)
	return batchNormAct(x, r, runningMean, runningVar, gamma, beta, eps, act, true)
}

// batchNormAct is every form above: r, when not nil, is added before the
// activation.
func batchNormAct(x, r *Var, runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation, moments bool) *Var {
	bn := newBNNode(x, r, runningMean, runningVar, gamma, beta, eps, act, moments)
	n, c, hw, res, y := bn.n, bn.c, bn.hw, bn.res(), bn.out.Value.Data
	switch {
	case moments && r != nil:
		kernels.ScaleShiftAddMoments(n, c, hw, x.Value.Data, bn.scale, bn.shift, res, y, act, bn.m[:c], bn.m[c:])
	case moments:
		kernels.ScaleShiftMoments(n, c, hw, x.Value.Data, bn.scale, bn.shift, y, act, bn.m[:c], bn.m[c:])
	case r != nil:
		kernels.ScaleShiftAdd(n, c, hw, x.Value.Data, bn.scale, bn.shift, res, y, act)
	default:
		kernels.ScaleShift(n, c, hw, x.Value.Data, bn.scale, bn.shift, y, act)
	}
	return bn.finish()
}

// bnNode is one batch norm node of batchNormAct between its output's
// allocation and its recording, so that the forward pass between them
// can be its own (batchNormAct's kernels) or fused with the convolution
// producing x (Conv2dBatchNormActMoments).
type bnNode struct {
	x, r, gamma, beta       *Var
	runningMean, runningVar *tensor.Tensor
	eps                     float32
	act                     kernels.Activation
	n, c, hw                int
	grad                    bool
	// buf holds scale and shift without a graph (nil with one: the
	// backward pass keeps them).
	buf          *[]float32
	scale, shift []float32
	out          *Var
	// m is x's moments, [mean | mean of squares], for the moments forms
	// (nil otherwise).
	m []float32
}

// newBNNode checks the operands, folds the statistics into scale and
// shift, and allocates the output (and the moments when asked).
func newBNNode(x, r *Var, runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation, moments bool) bnNode {
	xs := x.Value.Shape
	if len(xs) < 2 {
		panic(fmt.Sprintf("autograd.BatchNorm: input %v, want [N,C,...]", xs))
	}
	n, c := xs[0], xs[1]
	hw := x.Value.Numel() / max(n*c, 1)
	for _, s := range []struct {
		name string
		t    *tensor.Tensor
	}{{"running mean", runningMean}, {"running var", runningVar}, {"gamma", varValue(gamma)}, {"beta", varValue(beta)}} {
		if s.t != nil && s.t.Numel() != c {
			panic(fmt.Sprintf("autograd.BatchNorm: %s %v for %d channels", s.name, s.t.Shape, c))
		}
	}
	bn := bnNode{x: x, r: r, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
		eps: eps, act: act, n: n, c: c, hw: hw, grad: needsGrad(x, r, gamma, beta)}
	var ss []float32
	if bn.grad {
		ss = make([]float32, 2*c) // kept by the backward closure
	} else {
		bn.buf = channelScratch.Get().(*[]float32)
		if cap(*bn.buf) < 2*c {
			*bn.buf = make([]float32, 2*c)
		}
		ss = (*bn.buf)[:2*c]
	}
	bn.scale, bn.shift = ss[:c], ss[c:]
	// invStd in float64 so scale matches PyTorch's rsqrt to the last bit
	// more often; the fold is scale = gamma/std, shift = beta - mean*scale.
	for ch := range c {
		invStd := 1 / math.Sqrt(float64(runningVar.Data[ch])+float64(eps))
		g, bt := 1.0, 0.0
		if gamma != nil {
			g = float64(gamma.Value.Data[ch])
		}
		if beta != nil {
			bt = float64(beta.Value.Data[ch])
		}
		bn.scale[ch] = float32(g * invStd)
		bn.shift[ch] = float32(bt - float64(runningMean.Data[ch])*g*invStd)
	}
	bn.out = overwrittenOutput(pick(x, r), xs...)
	if moments {
		if x.arena != nil {
			bn.m = x.arena.alloc([]int{2 * c}, false).Data
		} else {
			bn.m = make([]float32, 2*c)
		}
	}
	return bn
}

// res is the residual's data, nil without one.
func (bn *bnNode) res() []float32 {
	if bn.r == nil {
		return nil
	}
	return bn.r.Value.Data
}

// finish keeps the moments, computed by now, with x and records the
// output's backward pass; it returns the output.
func (bn *bnNode) finish() *Var {
	x, r, gamma, beta, out := bn.x, bn.r, bn.gamma, bn.beta, bn.out
	n, c, hw, act, scale, shift := bn.n, bn.c, bn.hw, bn.act, bn.scale, bn.shift
	runningMean, runningVar, eps, moments := bn.runningMean, bn.runningVar, bn.eps, bn.m != nil
	if moments {
		x.moments = bn.m
		x.bnPending = bn.grad && x.requiresGrad
	}
	if !bn.grad {
		channelScratch.Put(bn.buf)
		return out
	}
	back := &bnBackward{x: x, r: r, out: out, n: n, c: c, hw: hw, scale: scale, shift: shift, act: act, moments: moments}
	if moments && r == nil && x.requiresGrad && !needsGrad(gamma, beta) {
		// All the backward pass does is back.pass: the convolution
		// taking out may run it (recordConv).
		out.bnBack = back
	}
	record(out, func() {
		if back.fused {
			return // out's consumer ran the pass (recordConv)
		}
		var dScale, dShift []float32
		if gamma != nil && gamma.requiresGrad || beta != nil && beta.requiresGrad {
			dScale, dShift = make([]float32, c), make([]float32, c)
		}
		// The output gives the activation's mask (ScaleShiftBackward's,
		// ReLU's); x alone does not when a residual was added.
		if r != nil && r.requiresGrad {
			switch act {
			case kernels.ActReLU, kernels.ActReLU6:
				// The residual is usually a block's input, reached
				// here first; the block's first conv then adds.
				maskedGrad(r, act, out.Value.Data, out.Grad.Data)
			default:
				r.accumulate(out.Grad.Data)
			}
		}
		if x.requiresGrad {
			back.toX(back.pass)
		}
		if dScale == nil {
			return
		}
		kernels.ScaleShiftBackward(n, c, hw, x.Value.Data, scale, out.Value.Data, out.Grad.Data, nil, dScale, dShift, act)
		// scale = gamma/std and shift = beta - mean*gamma/std, so
		// dgamma = (dScale - mean*dShift)/std and dbeta = dShift.
		if gamma != nil && gamma.requiresGrad {
			dg := gamma.gradBuf().Data
			for ch := range c {
				invStd := 1 / math.Sqrt(float64(runningVar.Data[ch])+float64(eps))
				dg[ch] += float32((float64(dScale[ch]) - float64(runningMean.Data[ch])*float64(dShift[ch])) * invStd)
			}
		}
		if beta != nil && beta.requiresGrad {
			kernels.Axpy(1, dShift, beta.gradBuf().Data)
		}
	}, x, r, gamma, beta)
	return out
}

// bnBackward is a batch norm node's backward pass to its input x.
type bnBackward struct {
	x, r, out    *Var
	n, c, hw     int
	scale, shift []float32
	act          kernels.Activation
	moments      bool
	// fused is set once out's consumer has taken the pass over
	// (recordConv): the node's own backward then does nothing.
	fused bool
}

// pass adds the batch norm's gradient to x's, with dm, the gradient of
// x's moments (see Var.bnPending), added in the same pass when not nil.
func (b *bnBackward) pass(dm []float32) {
	x, out, n, c, hw := b.x, b.out, b.n, b.c, b.hw
	dy := out.Grad.Data
	if dm == nil {
		kernels.ScaleShiftBackward(n, c, hw, x.Value.Data, b.scale, out.Value.Data, dy, x.gradBuf().Data, nil, nil, b.act)
		return
	}
	// The first contribution to x's gradient overwrites it.
	dx, fresh := x.gradDst()
	if b.r != nil {
		kernels.ScaleShiftAddMomentsBackward(n, c, hw, x.Value.Data, b.scale, out.Value.Data, dy, dx.Data, dm, b.act, fresh)
		return
	}
	kernels.ScaleShiftMomentsBackward(n, c, hw, x.Value.Data, b.scale, b.shift, out.Value.Data, dy, dx.Data, dm, b.act, fresh)
}

// toX runs pass, b.pass or one that includes it, as the batch norm's
// backward: at once, with the moments' gradient where ChannelMoments(x)
// left it (DGH: one pass over dx adds both gradients, see
// Var.bnPending), or left for ChannelMoments(x)'s backward to run with
// its gradient when that is still to come.
func (b *bnBackward) toX(pass func(dm []float32)) {
	x := b.x
	switch {
	case !b.moments:
		pass(nil)
	case x.momentsGrad != nil:
		x.bnPending = false
		g := x.momentsGrad
		x.momentsGrad = nil
		pass(g)
	case x.momentsPending:
		x.bnPending = false
		x.bnDeferred = pass
	default:
		x.bnPending = false
		pass(nil)
	}
}

// Conv2dBatchNormActMoments is BatchNormActMoments(Conv2d(x, w, b, ...),
// ...) with the batch norm run on the convolution's output while it is
// in cache (kernels.Conv2dForwardMoments): the same two nodes, values,
// moments and gradients as the two calls, bit for bit. It returns the
// convolution's output, which holds the moments, beside the result.
func Conv2dBatchNormActMoments(x, w, b *Var, stride, padding, dilation [2]int, groups int,
	runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation) (conv, out *Var) {
	return convBatchNormAct(x, w, b, nil, stride, padding, dilation, groups, runningMean, runningVar, gamma, beta, eps, act)
}

// Conv2dBatchNormAddActMoments is Conv2dBatchNormActMoments with the
// residual r added before the activation, as BatchNormAddActMoments adds
// it.
func Conv2dBatchNormAddActMoments(x, w, b, r *Var, stride, padding, dilation [2]int, groups int,
	runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation) (conv, out *Var) {
	return convBatchNormAct(x, w, b, r, stride, padding, dilation, groups, runningMean, runningVar, gamma, beta, eps, act)
}

// convBatchNormAct is both forms above: r, when not nil, is added before
// the activation.
func convBatchNormAct(x, w, b, r *Var, stride, padding, dilation [2]int, groups int,
	runningMean, runningVar *tensor.Tensor, gamma, beta *Var, eps float32, act kernels.Activation) (conv, out *Var) {
	p, bias := convParams("Conv2dBatchNormActMoments", x, w, b, stride, padding, dilation, groups)
	conv = recordConv(overwrittenOutput(x, p.N, p.K, p.OutH(), p.OutW()), p, x, w, b, true)
	if r != nil {
		mustSameShape("BatchNormAddAct", conv, r)
	}
	bn := newBNNode(conv, r, runningMean, runningVar, gamma, beta, eps, act, true)
	kernels.Conv2dForwardMoments(p, x.Value.Data, w.Value.Data, bias, conv.Value.Data, bn.scale, bn.shift, bn.res(),
		bn.out.Value.Data, act, bn.m[:p.K], bn.m[p.K:])
	return conv, bn.finish()
}

// varValue is v's value, or nil for a nil Var.
func varValue(v *Var) *tensor.Tensor {
	if v == nil {
		return nil
	}
	return v.Value
}

// GlobalAvgPool averages x [N,C,H,W] over H and W, giving [N,C]
// (AdaptiveAvgPool2d(1) followed by flatten).
func GlobalAvgPool(x *Var) *Var {
	xs := x.Value.Shape
	if len(xs) != 4 {
		panic(fmt.Sprintf("autograd.GlobalAvgPool: input %v, want [N,C,H,W]", xs))
	}
	n, c, hw := xs[0], xs[1], xs[2]*xs[3]
	out := overwrittenOutput(x, n, c)
	kernels.AvgPoolGlobalForward(n, c, hw, x.Value.Data, out.Value.Data)
	if needsGrad(x) {
		record(out, func() {
			kernels.AvgPoolGlobalBackward(n, c, hw, out.Grad.Data, x.gradBuf().Data)
		}, x)
	}
	return out
}

// MaxPool2d is PyTorch's max pooling (floor mode, implicit -inf padding)
// over x [N,C,H,W]; the gradient goes to the first maximum of each window.
func MaxPool2d(x *Var, kernel, stride, pad [2]int) *Var {
	xs := x.Value.Shape
	if len(xs) != 4 {
		panic(fmt.Sprintf("autograd.MaxPool2d: input %v, want [N,C,H,W]", xs))
	}
	p := kernels.PoolParams{
		N: xs[0], C: xs[1], H: xs[2], W: xs[3], KH: kernel[0], KW: kernel[1],
		StrideH: stride[0], StrideW: stride[1], PadH: pad[0], PadW: pad[1],
	}
	if err := p.Validate(); err != nil {
		panic(fmt.Sprintf("autograd.MaxPool2d: input %v: %v", xs, err))
	}
	out := overwrittenOutput(x, p.N, p.C, p.OutH(), p.OutW())
	if !needsGrad(x) {
		kernels.MaxPool2dForward(p, x.Value.Data, out.Value.Data, nil)
		return out
	}
	arg := make([]int32, out.Value.Numel())
	kernels.MaxPool2dForward(p, x.Value.Data, out.Value.Data, arg)
	return record(out, func() {
		if g, fresh := x.gradDst(); fresh {
			kernels.MaxPool2dBackwardSet(p, out.Grad.Data, arg, g.Data)
		} else {
			kernels.MaxPool2dBackward(p, out.Grad.Data, arg, g.Data)
		}
	}, x)
}
