package autograd

// Quantization ops with straight-through gradients: the DGH valid-range
// clip (docs/DESIGN.md, "DGH", step 1), BRECQ's fake quantizers with the LSQ step gradient and
// AdaRound's soft rounding (docs/DESIGN.md, "BRECQ").

import (
	"fmt"

	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// levelsOf is 2^bits; bits outside 1..16 is a caller bug (the command
// line checks 2..8).
func levelsOf(op string, bits int) int {
	if bits < 1 || bits > 16 {
		panic(fmt.Sprintf("autograd.%s: %d bits", op, bits))
	}
	return 1 << bits
}

// ClampST clips x [N,C,...] per channel to [lo[c], hi[c]] and passes the
// gradient straight through, clipped or not (docs/DESIGN.md, "DGH", step 1: the clip must not
// stop the images from moving back into range).
func ClampST(x *Var, lo, hi []float32) *Var {
	s := x.Value.Shape
	if len(s) < 2 || len(lo) != s[1] || len(hi) != s[1] {
		panic(fmt.Sprintf("autograd.ClampST: input %v with %d lower and %d upper bounds", s, len(lo), len(hi)))
	}
	n, c := s[0], s[1]
	out := overwrittenOutput(x, s...)
	kernels.ClampChannels(n, c, x.Value.Numel()/max(n*c, 1), x.Value.Data, lo, hi, out.Value.Data)
	if needsGrad(x) {
		record(out, func() {
			x.accumulate(out.Grad.Data)
		}, x)
	}
	return out
}

// FakeQuant quantizes x per tensor with step delta (a one-element Var,
// learnable as in LSQ) and zero point zp to 2^bits levels. x gets the
// straight-through gradient inside the range, delta the LSQ gradient.
func FakeQuant(x, delta *Var, zp float32, bits int) *Var {
	levels := levelsOf("FakeQuant", bits)
	if delta.Value.Numel() != 1 {
		panic(fmt.Sprintf("autograd.FakeQuant: delta %v, want one value", delta.Value.Shape))
	}
	out := overwrittenOutput(x, x.Value.Shape...)
	d := delta.Value.Data[0]
	kernels.FakeQuant(out.Value.Data, x.Value.Data, d, zp, levels)
	if needsGrad(x, delta) {
		record(out, func() {
			var dx []float32
			if x.requiresGrad {
				dx = x.gradBuf().Data
			}
			dDelta := kernels.FakeQuantBackward(x.Value.Data, out.Grad.Data, dx, d, zp, levels)
			if delta.requiresGrad {
				delta.gradBuf().Data[0] += dDelta
			}
		}, x, delta)
	}
	return out
}

// FakeQuantPerChannel quantizes x per output channel (axis 0) with fixed
// delta[r] and zp[r]; x gets the straight-through gradient.
func FakeQuantPerChannel(x *Var, delta, zp []float32, bits int) *Var {
	levels := levelsOf("FakeQuantPerChannel", bits)
	if x.Value.Dims() < 1 || len(delta) != x.Value.Shape[0] || len(zp) != x.Value.Shape[0] {
		panic(fmt.Sprintf("autograd.FakeQuantPerChannel: input %v with %d deltas and %d zero points", x.Value.Shape, len(delta), len(zp)))
	}
	rows := x.Value.Shape[0]
	out := overwrittenOutput(x, x.Value.Shape...)
	kernels.FakeQuantPerChannel(out.Value.Data, x.Value.Data, rows, delta, zp, levels)
	if needsGrad(x) {
		record(out, func() {
			cols := x.Value.Numel() / max(rows, 1)
			dy, dx := out.Grad.Data, x.gradBuf().Data
			for r := range rows {
				o := r * cols
				kernels.FakeQuantBackward(x.Value.Data[o:o+cols], dy[o:o+cols], dx[o:o+cols], delta[r], zp[r], levels)
			}
		}, x)
	}
	return out
}

// AdaRound returns the soft-quantized weight of docs/DESIGN.md, "BRECQ", step 4 for the fixed
// float weight w (axis 0 = output channel) and learnable alpha.
func AdaRound(w *tensor.Tensor, alpha *Var, delta, zp []float32, bits int) *Var {
	levels := levelsOf("AdaRound", bits)
	rows := w.Shape[0]
	if !tensor.SameShape(w, alpha.Value) || len(delta) != rows || len(zp) != rows {
		panic(fmt.Sprintf("autograd.AdaRound: weight %v, alpha %v, %d deltas, %d zero points", w.Shape, alpha.Value.Shape, len(delta), len(zp)))
	}
	out := overwrittenOutput(alpha, w.Shape...)
	kernels.AdaRoundForward(out.Value.Data, w.Data, alpha.Value.Data, rows, delta, zp, levels)
	if needsGrad(alpha) {
		record(out, func() {
			kernels.AdaRoundBackward(w.Data, alpha.Value.Data, out.Grad.Data, alpha.gradBuf().Data, rows, delta, zp, levels)
		}, alpha)
	}
	return out
}

// AdaRoundRegularizer is the rounding term weight*sum(1 - |2h(alpha)-1|^beta)
// of docs/DESIGN.md, "BRECQ", step 4 as a scalar.
func AdaRoundRegularizer(alpha *Var, beta, weight float32) *Var {
	out := wrap(alpha, tensor.FromSlice([]float32{kernels.AdaRoundRegularizer(alpha.Value.Data, beta, nil, weight)}))
	if needsGrad(alpha) {
		record(out, func() {
			// The kernel's gradient is for the term itself; scale by the
			// upstream gradient through its weight argument.
			kernels.AdaRoundRegularizer(alpha.Value.Data, beta, alpha.gradBuf().Data, weight*out.Grad.Data[0])
		}, alpha)
	}
	return out
}
