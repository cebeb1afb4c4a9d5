package brecq

// BN folding (docs/DESIGN.md, "BRECQ", step 1), the "mse" scale search (docs/DESIGN.md, "BRECQ", step 3) and the two
// quantizers: per-output-channel weights with AdaRound (docs/DESIGN.md, "BRECQ", step 4) and
// per-tensor activations with a learnable LSQ step (docs/DESIGN.md, "BRECQ", step 6).

import (
	"fmt"
	"math"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/tensor"
)

// searchP is the norm the scale search minimises (LAPQ's 2.4, docs/DESIGN.md, "BRECQ", step 3).
const searchP = 2.4

// FoldBN returns conv's weight and bias with the eval-mode BatchNorm bn
// folded in (docs/DESIGN.md, "BRECQ", step 1): w' = w*gamma/sqrt(var+eps) per output channel and
// b' = beta + (b - mean)*gamma/sqrt(var+eps), b being 0 for a conv
// without bias. conv and bn are left untouched.
func FoldBN(conv *layers.Conv2d, bn *layers.BatchNorm2d) (w, b *tensor.Tensor, err error) {
	k := conv.Weight.Value.Shape[0]
	if bn.RunningMean.Numel() != k || bn.RunningVar.Numel() != k ||
		(bn.Weight != nil && bn.Weight.Value.Numel() != k) || (bn.Bias != nil && bn.Bias.Value.Numel() != k) {
		return nil, nil, fmt.Errorf("brecq: fold BN of %d channels into a conv of %d output channels", bn.RunningMean.Numel(), k)
	}
	w = conv.Weight.Value.Clone()
	b = tensor.New(k)
	cols := w.Numel() / k
	for c := range k {
		gamma, beta := float32(1), float32(0)
		if bn.Weight != nil {
			gamma = bn.Weight.Value.Data[c]
		}
		if bn.Bias != nil {
			beta = bn.Bias.Value.Data[c]
		}
		std := float32(math.Sqrt(float64(bn.RunningVar.Data[c] + bn.Eps)))
		scale := gamma / std
		for i := c * cols; i < (c+1)*cols; i++ {
			w.Data[i] *= scale
		}
		b.Data[c] = beta - gamma*bn.RunningMean.Data[c]/std
		if conv.Bias != nil {
			b.Data[c] += gamma * conv.Bias.Value.Data[c] / std
		}
	}
	return w, b, nil
}

// ScaleSearch runs the docs/DESIGN.md, "BRECQ", step 3 search on x as one tensor (activations):
// of the 80 candidates max*(1-0.01i), min*(1-0.01i) it returns the step and
// zero point with the least mean |x - q(x)|^2.4.
func ScaleSearch(x []float32, bits int) (delta, zp float32, err error) {
	if err := CheckBits("scale search", bits); err != nil {
		return 0, 0, err
	}
	delta, zp, _ = kernels.ScaleSearchLp(x, 1<<bits, searchP)
	return delta, zp, nil
}

// ScaleSearchPerChannel runs ScaleSearch on each of the rows equal rows of
// x (axis 0 = output channel), for weights.
func ScaleSearchPerChannel(x []float32, rows, bits int) (delta, zp []float32, err error) {
	if err := CheckBits("scale search", bits); err != nil {
		return nil, nil, err
	}
	if rows < 1 || len(x)%rows != 0 {
		return nil, nil, fmt.Errorf("brecq: scale search over %d values in %d rows", len(x), rows)
	}
	delta, zp = make([]float32, rows), make([]float32, rows)
	kernels.ScaleSearchLpPerChannel(x, rows, 1<<bits, searchP, delta, zp)
	return delta, zp, nil
}

// WeightQuantizer is the asymmetric per-output-channel weight quantizer.
// Without Alpha it rounds to nearest; with Alpha it is AdaRound's: soft
// rounding h(alpha) while Soft (during reconstruction), else rounding up
// where alpha >= 0.
type WeightQuantizer struct {
	Bits      int
	Delta, ZP []float32 // per output channel
	Alpha     *autograd.Var
	Soft      bool
}

// newWeightQuantizer searches the steps of w at bits.
func newWeightQuantizer(w *tensor.Tensor, bits int) (WeightQuantizer, error) {
	d, z, err := ScaleSearchPerChannel(w.Data, w.Shape[0], bits)
	if err != nil {
		return WeightQuantizer{}, err
	}
	return WeightQuantizer{Bits: bits, Delta: d, ZP: z}, nil
}

// quantize returns the quantized w as a Var; it needs a gradient only in
// soft mode, where it flows to Alpha.
func (q *WeightQuantizer) quantize(w *tensor.Tensor) *autograd.Var {
	rows, levels := w.Shape[0], 1<<q.Bits
	switch {
	case q.Alpha != nil && q.Soft:
		return autograd.AdaRound(w, q.Alpha, q.Delta, q.ZP, q.Bits)
	case q.Alpha != nil:
		out := tensor.New(w.Shape...)
		kernels.AdaRoundHard(out.Data, w.Data, q.Alpha.Value.Data, rows, q.Delta, q.ZP, levels)
		return autograd.Const(out)
	default:
		out := tensor.New(w.Shape...)
		kernels.FakeQuantPerChannel(out.Data, w.Data, rows, q.Delta, q.ZP, levels)
		return autograd.Const(out)
	}
}

// startAdaRound sets Alpha so that h(alpha) is the fractional part of
// w/delta and switches to soft rounding (docs/DESIGN.md, "BRECQ", step 4).
func (q *WeightQuantizer) startAdaRound(w *tensor.Tensor) {
	a := tensor.New(w.Shape...)
	kernels.AdaRoundInitAlpha(a.Data, w.Data, w.Shape[0], q.Delta)
	q.Alpha = autograd.NewVar(a, true)
	q.Soft = true
}

// ActQuantizer is the asymmetric per-tensor activation quantizer. Delta is
// a one-value Var so the activation phase can learn it (LSQ); it is nil
// until the quantizer is initialised, and an uninitialised quantizer lets
// values through.
type ActQuantizer struct {
	Bits  int
	Delta *autograd.Var
	ZP    float32

	// collect, when set, makes apply record its input instead of
	// quantizing it (the initialisation of docs/DESIGN.md, "BRECQ", step 6).
	collect *[]float32
	// learn puts Delta on the tape; otherwise inference builds no graph.
	learn bool
}

// Ready reports whether the quantizer has been initialised.
func (q *ActQuantizer) Ready() bool { return q.Delta != nil }

// Set fixes the step and zero point.
func (q *ActQuantizer) Set(delta, zp float32) {
	q.Delta = autograd.NewVar(tensor.FromSlice([]float32{delta}, 1), true)
	q.ZP = zp
}

// apply quantizes x; the step receives the LSQ gradient, x the
// straight-through one.
func (q *ActQuantizer) apply(x *autograd.Var) *autograd.Var {
	if q.collect != nil {
		*q.collect = append(*q.collect, x.Value.Data...)
		return x
	}
	if q.Delta == nil {
		return x
	}
	d := q.Delta
	if !q.learn {
		d = d.Detach()
	}
	return autograd.FakeQuant(x, d, q.ZP, q.Bits)
}
