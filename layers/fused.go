package layers

import (
	"math"
	"slices"
	"sync"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// Fused inference (docs/DESIGN.md, "Packages and the flow of a run": inference records no tape).
//
// In evaluation a Conv2d -> BatchNorm2d -> ReLU/ReLU6 chain is a
// convolution followed by one per-channel affine map with the activation
// folded in: the same kernels.ScaleShift autograd.BatchNorm runs, applied
// in place on the convolution's output, so the result equals the unfused
// chain's bit for bit, with two passes over memory and two activations
// fewer. It is taken only when nothing can tell the difference: no value
// involved requires a gradient and no hook sits on the conv, the BN or the
// activation (DGH records BN inputs through hooks; those calls stay
// unfused).
//
// The outputs of fused chains come from a small buffer pool. A Sequential
// hands a buffer back once the next module has consumed it, when that
// module is one of this package's own (which never keep their input) and
// the buffer is neither the Sequential's input nor its output, so a batch
// reuses a few activation-sized buffers instead of allocating (and the
// runtime clearing) one per layer.

// bufPool keeps released activation buffers by length.
var bufPool = struct {
	sync.Mutex
	free map[int][][]float32
}{free: map[int][][]float32{}}

// maxPooledPerSize bounds how many buffers of one length are kept.
const maxPooledPerSize = 4

// getBuf returns a buffer of n floats with unspecified contents.
func getBuf(n int) []float32 {
	bufPool.Lock()
	if l := bufPool.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		bufPool.free[n] = l[:len(l)-1]
		bufPool.Unlock()
		return b
	}
	bufPool.Unlock()
	return make([]float32, n)
}

// putBuf hands b back for reuse; nobody may use it afterwards.
func putBuf(b []float32) {
	bufPool.Lock()
	if l := bufPool.free[len(b)]; len(l) < maxPooledPerSize {
		bufPool.free[len(b)] = append(l, b)
	}
	bufPool.Unlock()
}

// noGrad reports whether none of vs (nil ones ignored) requires a gradient.
func noGrad(vs ...*autograd.Var) bool {
	for _, v := range vs {
		if v != nil && v.RequiresGrad() {
			return false
		}
	}
	return true
}

// hasHooks reports whether m has forward hooks registered.
func hasHooks(m Module) bool {
	h, ok := m.(hooked)
	return ok && len(h.hookList()) > 0
}

// inputHooksOnly reports that every hook on m reads only its input.
func inputHooksOnly(m Module) bool {
	h, ok := m.(hooked)
	if !ok {
		return true
	}
	for _, e := range h.hookList() {
		if !e.inputOnly {
			return false
		}
	}
	return true
}

// ApplyBNAct is Apply(act, Apply(bn, x)) as one autograd node
// (autograd.BatchNormAct): one pass over the activations forward and one
// backward instead of two of each, with the same values and gradients.
// act may be nil, a *ReLU or a *ReLU6. ok is false, and nothing is
// computed, when act has hooks or bn has a hook that reads its output;
// bn's input hooks run as Apply would run them.
func ApplyBNAct(bn *BatchNorm2d, act Module, x *autograd.Var) (out *autograd.Var, ok bool) {
	return applyBN(bn, act, x, nil)
}

// BNAddActFusable reports whether ApplyBNAddAct(bn, act, ...) will fuse,
// so a caller can compute the residual only then (and otherwise keep the
// module order of the unfused chain for its hooks).
func BNAddActFusable(bn *BatchNorm2d, act Module) bool {
	_, fusable := activationOf(act)
	return fusable && bn != nil && (act == nil || !hasHooks(act)) && inputHooksOnly(bn)
}

// ApplyBNAddAct is act(Apply(bn, x) + r) as one autograd node
// (autograd.BatchNormAddAct): a residual block's last batch norm, the sum
// with the shortcut r and the activation in one pass forward and two
// backward. ok is false, and nothing is computed, when
// BNAddActFusable(bn, act) is false or r is not x's shape; bn's input
// hooks run after r was computed, not before as in the module chain.
func ApplyBNAddAct(bn *BatchNorm2d, act Module, x, r *autograd.Var) (out *autograd.Var, ok bool) {
	if r == nil || !slices.Equal(x.Shape(), r.Shape()) {
		return nil, false
	}
	return applyBN(bn, act, x, r)
}

// applyBN runs ApplyBNAct, or ApplyBNAddAct when r is not nil.
func applyBN(bn *BatchNorm2d, act Module, x, r *autograd.Var) (out *autograd.Var, ok bool) {
	if !BNAddActFusable(bn, act) {
		return nil, false
	}
	kact, _ := activationOf(act)
	switch {
	case r != nil && bn.InputMoments:
		out = autograd.BatchNormAddActMoments(x, r, bn.RunningMean, bn.RunningVar, bn.Weight, bn.Bias, bn.Eps, kact)
	case r != nil:
		out = autograd.BatchNormAddAct(x, r, bn.RunningMean, bn.RunningVar, bn.Weight, bn.Bias, bn.Eps, kact)
	case bn.InputMoments:
		out = autograd.BatchNormActMoments(x, bn.RunningMean, bn.RunningVar, bn.Weight, bn.Bias, bn.Eps, kact)
	default:
		out = autograd.BatchNormAct(x, bn.RunningMean, bn.RunningVar, bn.Weight, bn.Bias, bn.Eps, kact)
	}
	for _, e := range append([]hookEntry(nil), bn.hookList()...) {
		e.fn(bn, x, nil)
	}
	return out, true
}

// activationOf maps a fusable activation module to its kernel; nil is
// no activation.
func activationOf(m Module) (kernels.Activation, bool) {
	switch m.(type) {
	case nil:
		return kernels.ActNone, true
	case *ReLU:
		return kernels.ActReLU, true
	case *ReLU6:
		return kernels.ActReLU6, true
	}
	return 0, false
}

// FusedConvBNAct runs act(bn(conv(x))) as one fused inference step when
// that cannot be told apart from the unfused chain (see above); act may
// be nil, a *ReLU or a *ReLU6. ok is false, and nothing is computed, when
// the chain must run module by module (through Apply) instead.
func FusedConvBNAct(conv *Conv2d, bn *BatchNorm2d, act Module, x *autograd.Var) (out *autograd.Var, ok bool) {
	kact, fusable := activationOf(act)
	if !fusable || conv == nil || bn == nil || x == nil || conv.Weight == nil {
		return nil, false
	}
	if hasHooks(conv) || hasHooks(bn) || (act != nil && hasHooks(act)) {
		return nil, false
	}
	if !noGrad(x, conv.Weight, conv.Bias, bn.Weight, bn.Bias) {
		return nil, false
	}
	p, ok := convParamsOf(conv, x)
	if !ok {
		return nil, false
	}
	k := p.K
	for _, t := range []*tensor.Tensor{bn.RunningMean, bn.RunningVar} {
		if t == nil || t.Numel() != k {
			return nil, false
		}
	}
	for _, v := range []*autograd.Var{bn.Weight, bn.Bias} {
		if v != nil && v.Value.Numel() != k {
			return nil, false
		}
	}
	var bias []float32
	if conv.Bias != nil {
		bias = conv.Bias.Value.Data
	}
	oh, ow := p.OutH(), p.OutW()
	y := getBuf(p.N * k * oh * ow)
	// The fold autograd.BatchNorm uses, to the bit: scale = gamma/std and
	// shift = beta - mean*gamma/std with 1/std in float64.
	ss := make([]float32, 2*k)
	scale, shift := ss[:k], ss[k:]
	for ch := range k {
		invStd := 1 / math.Sqrt(float64(bn.RunningVar.Data[ch])+float64(bn.Eps))
		g, bt := 1.0, 0.0
		if bn.Weight != nil {
			g = float64(bn.Weight.Value.Data[ch])
		}
		if bn.Bias != nil {
			bt = float64(bn.Bias.Value.Data[ch])
		}
		scale[ch] = float32(g * invStd)
		shift[ch] = float32(bt - float64(bn.RunningMean.Data[ch])*g*invStd)
	}
	kernels.Conv2dForwardScaleShift(p, x.Value.Data, conv.Weight.Value.Data, bias, scale, shift, y, kact)
	return autograd.Const(tensor.FromSlice(y, p.N, k, oh, ow)), true
}

// convParamsOf returns the parameters of conv on x, ok false where
// autograd.Conv2d would refuse them (let it report the mistake).
func convParamsOf(conv *Conv2d, x *autograd.Var) (p kernels.ConvParams, ok bool) {
	xs, ws := x.Value.Shape, conv.Weight.Value.Shape
	if len(xs) != 4 || len(ws) != 4 || ws[1]*conv.Groups != xs[1] {
		return p, false
	}
	p = kernels.ConvParams{
		N: xs[0], C: xs[1], H: xs[2], W: xs[3], K: ws[0], KH: ws[2], KW: ws[3],
		StrideH: conv.Stride[0], StrideW: conv.Stride[1], PadH: conv.Padding[0], PadW: conv.Padding[1],
		DilH: conv.Dilation[0], DilW: conv.Dilation[1], Groups: conv.Groups,
	}
	if p.Validate() != nil || conv.Bias != nil && conv.Bias.Value.Numel() != p.K {
		return p, false
	}
	return p, true
}

// ConvBNActFusable reports whether ApplyConvBNAct(conv, bn, act, ...) and
// ApplyConvBNAddAct will fuse (given operands of matching shapes): bn
// takes its input's moments (InputMoments, as DGH sets) and
// BNAddActFusable allows, and conv has no hooks, which must see its
// output as Apply would give it, before the batch norm runs.
func ConvBNActFusable(conv *Conv2d, bn *BatchNorm2d, act Module) bool {
	return conv != nil && conv.Weight != nil && !hasHooks(conv) && bn != nil && bn.InputMoments && BNAddActFusable(bn, act)
}

// ApplyConvBNAct is ApplyBNAct(bn, act, Apply(conv, x)) with the batch
// norm run on the convolution's output while it is in cache
// (autograd.Conv2dBatchNormActMoments): the same nodes, values and
// gradients. It serves where FusedConvBNAct does not: a gradient is
// wanted, or bn has input hooks (DGH's). ok is false, and nothing is computed, when
// ConvBNActFusable(conv, bn, act) is false or autograd.Conv2d would
// refuse the shapes; bn's input hooks run as ApplyBNAct runs them.
func ApplyConvBNAct(conv *Conv2d, bn *BatchNorm2d, act Module, x *autograd.Var) (out *autograd.Var, ok bool) {
	return applyConvBN(conv, bn, act, x, nil)
}

// ApplyConvBNAddAct is ApplyBNAddAct(bn, act, Apply(conv, x), r) fused
// as ApplyConvBNAct fuses; ok is false, and nothing is computed, where
// ApplyConvBNAct's would be or r is not the convolution's output shape.
func ApplyConvBNAddAct(conv *Conv2d, bn *BatchNorm2d, act Module, x, r *autograd.Var) (out *autograd.Var, ok bool) {
	if r == nil {
		return nil, false
	}
	return applyConvBN(conv, bn, act, x, r)
}

// applyConvBN runs ApplyConvBNAct, or ApplyConvBNAddAct when r is not
// nil.
func applyConvBN(conv *Conv2d, bn *BatchNorm2d, act Module, x, r *autograd.Var) (out *autograd.Var, ok bool) {
	if !ConvBNActFusable(conv, bn, act) {
		return nil, false
	}
	p, ok := convParamsOf(conv, x)
	if !ok || r != nil && !slices.Equal(r.Shape(), []int{p.N, p.K, p.OutH(), p.OutW()}) {
		return nil, false
	}
	kact, _ := activationOf(act)
	var c *autograd.Var
	if r != nil {
		c, out = autograd.Conv2dBatchNormAddActMoments(x, conv.Weight, conv.Bias, r, conv.Stride, conv.Padding, conv.Dilation, conv.Groups,
			bn.RunningMean, bn.RunningVar, bn.Weight, bn.Bias, bn.Eps, kact)
	} else {
		c, out = autograd.Conv2dBatchNormActMoments(x, conv.Weight, conv.Bias, conv.Stride, conv.Padding, conv.Dilation, conv.Groups,
			bn.RunningMean, bn.RunningVar, bn.Weight, bn.Bias, bn.Eps, kact)
	}
	for _, e := range append([]hookEntry(nil), bn.hookList()...) {
		e.fn(bn, c, nil)
	}
	return out, true
}

// fuseAt tries the chain starting at ms[i]: a Conv2d, a BatchNorm2d and
// optionally a ReLU/ReLU6. It returns the output and how many modules it
// covered (0: not fused).
func fuseAt(ms []Module, i int, x *autograd.Var) (*autograd.Var, int) {
	if i+1 >= len(ms) {
		return nil, 0
	}
	conv, ok1 := ms[i].(*Conv2d)
	bn, ok2 := ms[i+1].(*BatchNorm2d)
	if !ok1 || !ok2 {
		return nil, 0
	}
	if i+2 < len(ms) {
		if _, ok := activationOf(ms[i+2]); ok && ms[i+2] != nil {
			if out, ok := FusedConvBNAct(conv, bn, ms[i+2], x); ok {
				return out, 3
			}
			return nil, 0
		}
	}
	if out, ok := FusedConvBNAct(conv, bn, nil, x); ok {
		return out, 2
	}
	return nil, 0
}

// bnActAt runs the batch norm ms[i], with the activation after it if
// there is one, as one autograd node (ApplyBNAct): where fuseAt does not
// apply (a gradient is wanted, or hooks), the convolution before it runs
// on its own but the normalisation and activation still take one pass
// each way, and the BN input's moments come from it (InputMoments). From
// a Conv2d followed by such a batch norm, it runs the two (and the
// activation) through ApplyConvBNAct where that fuses, the normalisation
// then reading the convolution's output from cache. n is how many modules
// ran, 0 when ms[i] is not a batch norm ApplyBNAct takes or a convolution
// ApplyConvBNAct takes.
func bnActAt(ms []Module, i int, x *autograd.Var) (*autograd.Var, int) {
	if conv, ok := ms[i].(*Conv2d); ok {
		return convBNActAt(conv, ms, i, x)
	}
	bn, ok := ms[i].(*BatchNorm2d)
	if !ok {
		return nil, 0
	}
	if i+1 < len(ms) && ms[i+1] != nil {
		if _, ok := activationOf(ms[i+1]); ok {
			if y, ok := ApplyBNAct(bn, ms[i+1], x); ok {
				return y, 2
			}
		}
	}
	if y, ok := ApplyBNAct(bn, nil, x); ok {
		return y, 1
	}
	return nil, 0
}

// convBNActAt is bnActAt on the convolution ms[i]: it fuses it with the
// batch norm after it, and the activation after that when its hooks
// allow, as bnActAt would fuse them after running the convolution alone.
func convBNActAt(conv *Conv2d, ms []Module, i int, x *autograd.Var) (*autograd.Var, int) {
	if i+1 >= len(ms) {
		return nil, 0
	}
	bn, ok := ms[i+1].(*BatchNorm2d)
	if !ok {
		return nil, 0
	}
	if i+2 < len(ms) && ms[i+2] != nil {
		if _, ok := activationOf(ms[i+2]); ok {
			if y, ok := ApplyConvBNAct(conv, bn, ms[i+2], x); ok {
				return y, 3
			}
		}
	}
	if y, ok := ApplyConvBNAct(conv, bn, nil, x); ok {
		return y, 2
	}
	return nil, 0
}

// keepsNoInput reports whether m is one of this package's modules that
// never hold on to (or return) their input once Forward returns and has
// no hooks that could.
func keepsNoInput(m Module) bool {
	if hasHooks(m) {
		return false
	}
	switch m.(type) {
	case *Conv2d, *BatchNorm2d, *ReLU, *ReLU6, *Linear, *MaxPool2d, *AdaptiveAvgPool2d:
		return true
	}
	return false
}

// HasHooks reports whether any forward hook is registered on the module.
func (h *Hooks) HasHooks() bool { return len(h.hooks) > 0 }

// Exclusive reports whether m is built only of this package's modules
// (Sequentials of Conv2d, BatchNorm2d, ReLU, ReLU6, Linear, pooling) with
// no hook anywhere on them: then nothing but Apply's caller holds a
// reference to the input or the output of Apply(m, x) once it returns,
// which makes reusing either buffer safe (docs/DESIGN.md, "Packages and the flow of a run").
func Exclusive(m Module) bool {
	if s, ok := m.(*Sequential); ok {
		if s.HasHooks() || len(s.Modules) == 0 {
			return false // an empty Sequential returns its input
		}
		for _, c := range s.Modules {
			if !Exclusive(c) {
				return false
			}
		}
		return true
	}
	return keepsNoInput(m)
}

// Recycle hands v's buffer to the pool fused inference allocates from.
// Call it only in inference on a value nothing else refers to (see
// Exclusive): neither v nor anything sharing its data may be used again.
func Recycle(v *autograd.Var) {
	if v != nil && v.Value != nil && !v.RequiresGrad() && len(v.Value.Data) > 0 {
		putBuf(v.Value.Data)
	}
}

// SameData reports whether a and b share storage (their first element).
func SameData(a, b *autograd.Var) bool {
	da, db := a.Value.Data, b.Value.Data
	return len(da) > 0 && len(db) > 0 && &da[0] == &db[0]
}
