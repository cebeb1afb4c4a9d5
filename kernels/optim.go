package kernels

import "math"

// The optimizers' per-element updates (package optim computes the
// per-step coefficients): one pass over a parameter and its moments, in
// blocks on the worker pool. DGH's RAdam steps a batch of images (6.3M
// floats for 32 images at 256x256), which on one goroutine took a tenth
// of a 16-thread step (docs/DESIGN.md, "Kernels"). Each element's
// arithmetic is the same whatever the split, so results do not depend on
// the thread count.

// AdamRule is one Adam step's coefficients for a parameter: the moments
// decay by B1 and B2 and take Keep1 = 1-B1 and Keep2 = 1-B2 of the new
// gradient (plus WD times the parameter); the parameter moves by StepSize
// * m / (sqrt(second moment)/BC2Sqrt + Eps).
type AdamRule struct {
	B1, B2, Keep1, Keep2, WD, Eps float32
	StepSize, BC2Sqrt             float32
}

// AdamUpdate applies one Adam step to p from its gradient g, updating the
// moments m and sq (and maxSq, the AMSGrad running maximum, when not
// nil), over len(p) elements.
func AdamUpdate(p, g, m, sq, maxSq []float32, r AdamRule) {
	t := updateTask(adamBlocks, p, g, m, sq)
	if maxSq != nil {
		t.s[4] = maxSq[:len(p)]
	}
	t.adam = r
	t.spread(numBlocks(len(p)), 4*len(p))
	t.release()
}

// updateTask is a task over a parameter p, its gradient and its moments.
func updateTask(body func(t *task, lo, hi int), p, g, m, sq []float32) *task {
	n := len(p)
	t := newTask(body)
	t.s[0], t.s[1], t.s[2], t.s[3] = p, g[:n], m[:n], sq[:n]
	return t
}

func adamBlocks(t *task, lo, hi int) {
	r := &t.adam
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(t.s[0]))
		p, g, m, sq := t.s[0][i:j], t.s[1][i:j], t.s[2][i:j], t.s[3][i:j]
		var maxSq []float32
		if t.s[4] != nil {
			maxSq = t.s[4][i:j]
		}
		for e := range p {
			updateMoments(p, g, m, sq, e, r.B1, r.B2, r.Keep1, r.Keep2, r.WD)
			second := sq[e]
			if maxSq != nil {
				maxSq[e] = max(maxSq[e], sq[e])
				second = maxSq[e]
			}
			p[e] -= r.StepSize * m[e] / (sqrt32(second)/r.BC2Sqrt + r.Eps)
		}
	}
}

// RAdamRule is one RAdam step's coefficients for a parameter: the moments
// as in AdamRule, the bias correction BC1 of the first; when Rectified
// the parameter moves by m/BC1 * LR * BC2Sqrt/(sqrt(sq)+Eps) * Rect, else
// by m/BC1 * LR.
type RAdamRule struct {
	B1, B2, Keep1, Keep2, WD, Eps float32
	LR, BC1, BC2Sqrt, Rect        float32
	Rectified                     bool
}

// RAdamUpdate applies one RAdam step to p from its gradient g, updating
// the moments m and sq, over len(p) elements.
func RAdamUpdate(p, g, m, sq []float32, r RAdamRule) {
	t := updateTask(radamBlocks, p, g, m, sq)
	t.radam = r
	t.spread(numBlocks(len(p)), 4*len(p))
	t.release()
}

func radamBlocks(t *task, lo, hi int) {
	r := &t.radam
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(t.s[0]))
		p, g, m, sq := t.s[0][i:j], t.s[1][i:j], t.s[2][i:j], t.s[3][i:j]
		for e := range p {
			updateMoments(p, g, m, sq, e, r.B1, r.B2, r.Keep1, r.Keep2, r.WD)
			mHat := m[e] / r.BC1
			if r.Rectified {
				// torch forms sqrt(1-b2^t)/(sqrt(v)+eps) as a reciprocal
				// times a scalar.
				adaptive := r.BC2Sqrt * (1 / (sqrt32(sq[e]) + r.Eps))
				p[e] -= mHat * r.LR * adaptive * r.Rect
			} else {
				p[e] -= mHat * r.LR
			}
		}
	}
}

// updateMoments moves element e's moments toward its gradient (plus wd
// times the parameter), as Adam and RAdam both do.
func updateMoments(p, g, m, sq []float32, e int, b1, b2, keep1, keep2, wd float32) {
	d := g[e]
	if wd != 0 {
		d += wd * p[e]
	}
	m[e] = m[e]*b1 + keep1*d
	sq[e] = sq[e]*b2 + keep2*d*d
}

// sqrt32 is a float32 square root (the compiler emits one instruction).
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
