package kernels

import "math"

// Fake quantization, AdaRound and the scale search of BRECQ (docs/DESIGN.md,
// "BRECQ"). levels = 2^bits; round is round-half-to-even like torch.round;
// q(x) = (clamp(round(x/delta)+zp, 0, levels-1) - zp) * delta.
// delta must be positive and finite; the scale search never yields
// anything else.

// ScaleSearchSteps is the number of shrinking candidates of the "mse"
// scale search (docs/DESIGN.md, "BRECQ", step 3): candidate i scales max and min by 1-0.01i.
const ScaleSearchSteps = 80

// quantKernels is the quantization family's dispatch table, one entry
// per kernel of quant_generic.go (and the power of LpDistanceBackward).
type quantKernels struct {
	fakeQuant         func(dst, x []float32, delta, zp, qmax float32)
	fakeQuantBackward func(x, dy, dx []float32, delta, zp, qmax float32) float64
	quantErrorLp      func(x []float32, delta, zp, qmax, p float32) float64
	adaRoundForward   func(dst, w, alpha []float32, delta, zp, qmax float32)
	adaRoundBackward  func(w, alpha, dy, dAlpha []float32, delta, zp, qmax float32)
	adaRoundReg       func(alpha, dAlpha []float32, beta, weight float32) float64
	// lpGrad, where the path has it, is the SIMD gradient power of
	// LpDistanceBackward (see lpBackwardRange); nil: the Go loop.
	lpGrad func(d []float32, gp, q float32) bool
}

// fakeQuantBackwardWith runs full, or deltaOnly when dx is nil (only
// the gradient of delta wanted): the SIMD paths' fakeQuantBackward.
func fakeQuantBackwardWith(full func(x, dy, dx []float32, delta, zp, qmax float32) float64,
	deltaOnly func(x, dy []float32, delta, zp, qmax float32) float64, x, dy, dx []float32, delta, zp, qmax float32) float64 {
	if dx == nil {
		return deltaOnly(x, dy, delta, zp, qmax)
	}
	return full(x, dy, dx[:len(x)], delta, zp, qmax)
}

// quantErrorLpWith runs the SIMD power simd for the exponents it covers,
// 0 < p <= 7, the Go loop for the others: the SIMD paths' quantErrorLp.
func quantErrorLpWith(simd func(x []float32, delta, zp, qmax, p float32) float64, x []float32, delta, zp, qmax, p float32) float64 {
	if p > 0 && p <= 7 {
		return simd(x, delta, zp, qmax, p)
	}
	return quantErrorLpGeneric(x, delta, zp, qmax, p)
}

// scaleSearchBlock is the number of floats the scale search scores every
// candidate on before moving on: 8 KB stays in L1 across all of them.
const scaleSearchBlock = 2048

// FakeQuant sets dst = q(x) with one delta and zero point for the tensor.
func FakeQuant(dst, x []float32, delta, zp float32, levels int) {
	n := len(dst)
	qmax := float32(levels - 1)
	if n <= blockFloats {
		active.quant.fakeQuant(dst, x[:n], delta, zp, qmax)
		return
	}
	t := newTask(fakeQuantBlocks)
	t.s[0], t.s[1] = dst, x[:n]
	t.f = [4]float32{delta, zp, qmax}
	t.spread(numBlocks(n), n)
	t.release()
}

func fakeQuantBlocks(t *task, lo, hi int) {
	dst, x := t.s[0], t.s[1]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(dst))
		active.quant.fakeQuant(dst[i:j], x[i:j], t.f[0], t.f[1], t.f[2])
	}
}

// FakeQuantPerChannel sets dst = q(x) where x is rows equal rows and row r
// (output channel r) uses delta[r] and zp[r].
func FakeQuantPerChannel(dst, x []float32, rows int, delta, zp []float32, levels int) {
	if rows < 1 {
		return
	}
	cols := len(dst) / rows
	t := newTask(fakeQuantRows)
	t.s[0], t.s[1], t.s[2], t.s[3] = dst, x[:rows*cols], delta[:rows], zp[:rows]
	t.n[0], t.f[2] = cols, float32(levels-1)
	t.spread(rows, rows*cols)
	t.release()
}

func fakeQuantRows(t *task, lo, hi int) {
	dst, x, delta, zp, cols := t.s[0], t.s[1], t.s[2], t.s[3], t.n[0]
	for r := lo; r < hi; r++ {
		o := r * cols
		active.quant.fakeQuant(dst[o:o+cols], x[o:o+cols], delta[r], zp[r], t.f[2])
	}
}

// FakeQuantBackward accumulates the straight-through gradient dx += dy
// where round(x/delta)+zp lies inside [0, levels-1] (bounds included, as
// torch.clamp's backward), and returns the LSQ gradient of the loss with
// respect to delta with zp held constant: per element, round(x/delta) -
// x/delta inside the range and the clamped level minus zp outside it.
// dx may be nil when only dDelta is wanted.
func FakeQuantBackward(x, dy, dx []float32, delta, zp float32, levels int) (dDelta float32) {
	n := len(x)
	dy = dy[:n]
	if dx != nil {
		dx = dx[:n]
	}
	qmax := float32(levels - 1)
	if n <= blockFloats {
		return float32(active.quant.fakeQuantBackward(x, dy, dx, delta, zp, qmax))
	}
	t := newTask(fakeQuantBackwardBlocks)
	t.s[0], t.s[1], t.s[2] = x, dy, dx
	t.f = [4]float32{delta, zp, qmax}
	t.partials(numBlocks(n))
	t.spread(numBlocks(n), n)
	s := t.sumPartials()
	t.release()
	return float32(s)
}

func fakeQuantBackwardBlocks(t *task, lo, hi int) {
	x, dy, dx := t.s[0], t.s[1], t.s[2]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(x))
		var dxb []float32
		if dx != nil {
			dxb = dx[i:j]
		}
		t.part[k] = active.quant.fakeQuantBackward(x[i:j], dy[i:j], dxb, t.f[0], t.f[1], t.f[2])
	}
}

// QuantErrorLp returns sum |x - q(x)|^p, accumulated in float64.
func QuantErrorLp(x []float32, delta, zp float32, levels int, p float32) float64 {
	n := len(x)
	qmax := float32(levels - 1)
	if n <= blockFloats {
		return active.quant.quantErrorLp(x, delta, zp, qmax, p)
	}
	t := newTask(quantErrorLpBlocks)
	t.s[0] = x
	t.f = [4]float32{delta, zp, qmax, p}
	t.partials(numBlocks(n))
	t.spread(numBlocks(n), n)
	s := t.sumPartials()
	t.release()
	return s
}

func quantErrorLpBlocks(t *task, lo, hi int) {
	x := t.s[0]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(x))
		t.part[k] = active.quant.quantErrorLp(x[i:j], t.f[0], t.f[1], t.f[2], t.f[3])
	}
}

// ScaleCandidate returns delta and zero point of candidate i of the docs/DESIGN.md,
// "BRECQ", step 3 search for data in [xMin, xMax], in float32 as BRECQ computes them:
// max' = max*(1-0.01i), min' = min*(1-0.01i), delta = (max'-min')/(levels-1),
// zp = round(-min'/delta). ok is false when the candidate range is empty.
func ScaleCandidate(xMin, xMax float32, i, levels int) (delta, zp float32, ok bool) {
	f := float32(1 - float64(i)*0.01)
	hi, lo := xMax*f, xMin*f
	delta = (hi - lo) / float32(levels-1)
	if !(delta > 0) || math.IsInf(float64(delta), 0) {
		return 0, 0, false
	}
	zp = roundEven(-lo / delta)
	return delta, zp, true
}

// ScaleSearchLp runs the docs/DESIGN.md, "BRECQ", step 3 "mse" search on x as one tensor: of the
// ScaleSearchSteps candidates it returns the first with the least
// sum |x - q(x)|^p, and that error. For constant x, whose range is empty,
// it returns delta = max(|x|)/(levels-1) (1 if x is all zero) and zp = 0,
// which reproduces x exactly when x >= 0.
func ScaleSearchLp(x []float32, levels int, p float32) (delta, zp float32, lpErr float64) {
	if len(x) == 0 {
		return 1, 0, 0
	}
	var hi, lo [1]float32
	RowMaxMin(1, len(x), x, hi[:], lo[:], nil, nil)
	return scaleSearchRange(x, lo[0], hi[0], levels, p)
}

// ScaleSearchLpPerChannel runs ScaleSearchLp on each of the rows equal
// rows of x (per output channel weights) and writes the results to delta
// and zp.
func ScaleSearchLpPerChannel(x []float32, rows, levels int, p float32, delta, zp []float32) {
	if rows < 1 {
		return
	}
	cols := len(x) / rows
	delta, zp = delta[:rows], zp[:rows]
	search := func(lo, hi int) {
		for r := lo; r < hi; r++ {
			delta[r], zp[r], _ = ScaleSearchLp(x[r*cols:(r+1)*cols], levels, p)
		}
	}
	if rows*cols*ScaleSearchSteps < parallelMinWork {
		search(0, rows)
		return
	}
	parallelFor(rows, search)
}

// scaleSearchRange is ScaleSearchLp once min and max are known.
func scaleSearchRange(x []float32, lo, hi float32, levels int, p float32) (delta, zp float32, lpErr float64) {
	var deltas, zps [ScaleSearchSteps]float32
	var errs [ScaleSearchSteps]float64
	m := 0
	for i := range ScaleSearchSteps {
		d, z, ok := ScaleCandidate(lo, hi, i, levels)
		if !ok {
			continue
		}
		deltas[m], zps[m] = d, z
		m++
	}
	if m == 0 {
		d := max(abs32(lo), abs32(hi)) / float32(levels-1)
		if !(d > 0) {
			d = 1
		}
		return d, 0, active.quant.quantErrorLp(x, d, 0, float32(levels-1), p)
	}
	scoreCandidates(x, deltas[:m], zps[:m], float32(levels-1), p, errs[:m])
	best := 0
	for i := 1; i < m; i++ {
		if errs[i] < errs[best] {
			best = i
		}
	}
	return deltas[best], zps[best], errs[best]
}

// scoreCandidates sets errs[i] = sum |x - q_i(x)|^p for the candidates
// (deltas[i], zps[i]) in one pass over x, block by block; workers split
// the candidates.
func scoreCandidates(x, deltas, zps []float32, qmax, p float32, errs []float64) {
	clear(errs)
	score := func(lo, hi int) {
		for b := 0; b < len(x); b += scaleSearchBlock {
			blk := x[b:min(b+scaleSearchBlock, len(x))]
			for i := lo; i < hi; i++ {
				errs[i] += active.quant.quantErrorLp(blk, deltas[i], zps[i], qmax, p)
			}
		}
	}
	if len(x)*len(errs) < parallelMinWork {
		score(0, len(errs))
		return
	}
	parallelFor(len(errs), score)
}

// AdaRoundForward sets dst to the soft-rounded weights of AdaRound (docs/DESIGN.md,
// "BRECQ", step 4): (clamp(floor(w/delta) + h(alpha) + zp, 0, levels-1) - zp) * delta
// with h(a) = clamp(sigmoid(a)*1.2 - 0.1, 0, 1); w and alpha are rows equal
// rows, row r using delta[r] and zp[r].
func AdaRoundForward(dst, w, alpha []float32, rows int, delta, zp []float32, levels int) {
	adaRoundRows(adaRoundForwardRows, dst, w, alpha, nil, rows, delta, zp, levels)
}

func adaRoundForwardRows(t *task, lo, hi int) {
	dst, w, alpha, delta, zp, cols := t.s[0], t.s[1], t.s[2], t.s[4], t.s[5], t.n[0]
	for r := lo; r < hi; r++ {
		o := r * cols
		active.quant.adaRoundForward(dst[o:o+cols], w[o:o+cols], alpha[o:o+cols], delta[r], zp[r], t.f[2])
	}
}

// AdaRoundBackward accumulates into dAlpha the gradient of AdaRoundForward
// given dy, the gradient of its output: dy*delta*h'(alpha) where neither
// clamp is active (bounds included, as torch.clamp's backward).
func AdaRoundBackward(w, alpha, dy, dAlpha []float32, rows int, delta, zp []float32, levels int) {
	adaRoundRows(adaRoundBackwardRows, dAlpha, w, alpha, dy, rows, delta, zp, levels)
}

func adaRoundBackwardRows(t *task, lo, hi int) {
	dAlpha, w, alpha, dy, delta, zp, cols := t.s[0], t.s[1], t.s[2], t.s[3], t.s[4], t.s[5], t.n[0]
	for r := lo; r < hi; r++ {
		o := r * cols
		active.quant.adaRoundBackward(w[o:o+cols], alpha[o:o+cols], dy[o:o+cols], dAlpha[o:o+cols], delta[r], zp[r], t.f[2])
	}
}

// AdaRoundHard sets dst to the hard-rounded weights AdaRound ends with:
// floor(w/delta) rounds up where alpha >= 0 (docs/DESIGN.md, "BRECQ", step 4).
func AdaRoundHard(dst, w, alpha []float32, rows int, delta, zp []float32, levels int) {
	adaRoundRows(adaRoundHardRows, dst, w, alpha, nil, rows, delta, zp, levels)
}

func adaRoundHardRows(t *task, lo, hi int) {
	dst, w, alpha, delta, zp, cols, qmax := t.s[0], t.s[1], t.s[2], t.s[4], t.s[5], t.n[0], t.f[2]
	for r := lo; r < hi; r++ {
		d, z := delta[r], zp[r]
		for i := r * cols; i < (r+1)*cols; i++ {
			u := floor32(w[i] / d)
			if alpha[i] >= 0 {
				u++
			}
			dst[i] = (min(max(u+z, 0), qmax) - z) * d
		}
	}
}

// AdaRoundInitAlpha sets alpha so that h(alpha) equals the fractional part
// of w/delta, the initialisation of docs/DESIGN.md, "BRECQ", step 4 (the inverse of h's
// unclamped branch).
func AdaRoundInitAlpha(alpha, w []float32, rows int, delta []float32) {
	adaRoundRows(adaRoundInitRows, alpha, w, nil, nil, rows, delta, nil, 2)
}

func adaRoundInitRows(t *task, lo, hi int) {
	alpha, w, delta, cols := t.s[0], t.s[1], t.s[4], t.n[0]
	for r := lo; r < hi; r++ {
		d := delta[r]
		for i := r * cols; i < (r+1)*cols; i++ {
			v := w[i] / d
			rest := float64(v - floor32(v))
			alpha[i] = float32(-math.Log(1.2/(rest+0.1) - 1))
		}
	}
}

// adaRoundRows runs body over the rows of an AdaRound call whose output
// out has rows equal rows; in, alpha and dy (either may be nil) match it,
// and zp may be nil where body does not read it.
func adaRoundRows(body func(t *task, lo, hi int), out, in, alpha, dy []float32, rows int, delta, zp []float32, levels int) {
	if rows < 1 {
		return
	}
	cols := len(out) / rows
	t := newTask(body)
	t.s[0], t.s[1] = out[:rows*cols], in[:rows*cols]
	if alpha != nil {
		t.s[2] = alpha[:rows*cols]
	}
	if dy != nil {
		t.s[3] = dy[:rows*cols]
	}
	t.s[4] = delta[:rows]
	if zp != nil {
		t.s[5] = zp[:rows]
	}
	t.n[0], t.f[2] = cols, float32(levels-1)
	// An element costs an exp: weigh it as 16 plain operations.
	t.spread(rows, 16*rows*cols)
	t.release()
}

// AdaRoundRegularizer returns weight * sum(1 - |2h(alpha)-1|^beta), the
// rounding term of docs/DESIGN.md, "BRECQ", step 4, and, if dAlpha is not nil, accumulates its
// gradient into dAlpha.
func AdaRoundRegularizer(alpha []float32, beta float32, dAlpha []float32, weight float32) float32 {
	n := len(alpha)
	if dAlpha != nil {
		dAlpha = dAlpha[:n]
	}
	t := newTask(adaRoundRegularizerBlocks)
	t.s[0], t.s[1] = alpha, dAlpha
	t.f[0], t.f[1] = beta, weight
	t.partials(numBlocks(n))
	t.spread(numBlocks(n), 16*n)
	s := t.sumPartials()
	t.release()
	return float32(float64(weight) * s)
}

func adaRoundRegularizerBlocks(t *task, lo, hi int) {
	alpha, dAlpha := t.s[0], t.s[1]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(alpha))
		var dab []float32
		if dAlpha != nil {
			dab = dAlpha[i:j]
		}
		t.part[k] = active.quant.adaRoundReg(alpha[i:j], dab, t.f[0], t.f[1])
	}
}

// adaRoundH returns h(a) = clamp(sigmoid(a)*1.2 - 0.1, 0, 1) and its
// derivative, which is zero where the clamp is active (bounds excluded
// from the clamp, as torch.clamp's backward).
func adaRoundH(a float32) (h, dh float32) {
	s := float32(1 / (1 + math.Exp(-float64(a))))
	v := s*1.2 - 0.1
	h = min(max(v, 0), 1)
	if v >= 0 && v <= 1 {
		dh = 1.2 * s * (1 - s)
	}
	return h, dh
}

func roundEven(v float32) float32 { return float32(math.RoundToEven(float64(v))) }

func floor32(v float32) float32 { return float32(math.Floor(float64(v))) }

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }
