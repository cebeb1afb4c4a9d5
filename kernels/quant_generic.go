package kernels

import "math"

// quantize is q(x) of docs/DESIGN.md, "BRECQ", step 3 for one value; qmax = levels-1. The
// conversion keeps the product rounded, as torch, where a caller's x - q
// could otherwise fuse into one FMA (arm64).
func quantize(v, delta, zp, qmax float32) float32 {
	c := min(max(roundEven(v/delta)+zp, 0), qmax)
	return float32((c - zp) * delta)
}

func fakeQuantGeneric(dst, x []float32, delta, zp, qmax float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = quantize(v, delta, zp, qmax)
	}
}

func fakeQuantBackwardGeneric(x, dy, dx []float32, delta, zp, qmax float32) float64 {
	dy = dy[:len(x)]
	var dDelta float64
	for i, v := range x {
		s := v / delta
		r := roundEven(s)
		u := r + zp
		switch {
		case u < 0:
			dDelta += float64(dy[i]) * float64(-zp)
		case u > qmax:
			dDelta += float64(dy[i]) * float64(qmax-zp)
		default:
			dDelta += float64(dy[i]) * float64(r-s)
			if dx != nil {
				dx[i] += dy[i]
			}
		}
	}
	return dDelta
}

func quantErrorLpGeneric(x []float32, delta, zp, qmax, p float32) float64 {
	pp := float64(p)
	var sum float64
	for _, v := range x {
		e := abs32(v - quantize(v, delta, zp, qmax))
		if e != 0 {
			sum += math.Pow(float64(e), pp)
		}
	}
	return sum
}

// adaRoundForwardGeneric is one row of AdaRoundForward.
func adaRoundForwardGeneric(dst, w, alpha []float32, d, z, qmax float32) {
	w, alpha = w[:len(dst)], alpha[:len(dst)]
	for i := range dst {
		h, _ := adaRoundH(alpha[i])
		u := floor32(w[i]/d) + h + z
		dst[i] = (min(max(u, 0), qmax) - z) * d
	}
}

// adaRoundBackwardGeneric is one row of AdaRoundBackward.
func adaRoundBackwardGeneric(w, alpha, dy, dAlpha []float32, d, z, qmax float32) {
	w, alpha, dy = w[:len(dAlpha)], alpha[:len(dAlpha)], dy[:len(dAlpha)]
	for i := range dAlpha {
		h, dh := adaRoundH(alpha[i])
		u := floor32(w[i]/d) + h + z
		if u >= 0 && u <= qmax {
			dAlpha[i] += dy[i] * d * dh
		}
	}
}

// adaRoundRegGeneric returns sum(1 - |2h-1|^beta) over alpha and, if
// dAlpha is not nil, accumulates weight times its gradient into dAlpha.
func adaRoundRegGeneric(alpha, dAlpha []float32, beta, weight float32) float64 {
	b, wt := float64(beta), float64(weight)
	var sum float64
	for i, a := range alpha {
		// float64 throughout: near h = 0.5, m = 2h-1 computed in float32
		// would keep few significant bits.
		s := 1 / (1 + math.Exp(-float64(a)))
		v := s*1.2 - 0.1
		h := min(max(v, 0), 1)
		var dh float64
		if v >= 0 && v <= 1 {
			dh = 1.2 * s * (1 - s)
		}
		m := 2*h - 1
		am := math.Abs(m)
		sum += 1 - math.Pow(am, b)
		if dAlpha != nil && am > 0 {
			// d/dh (1 - |m|^b) = -b |m|^(b-1) sign(m) * 2
			g := -b * math.Pow(am, b-1) * math.Copysign(2, m)
			dAlpha[i] += float32(wt * g * dh)
		}
	}
	return sum
}

// quantGeneric is the generic path's quantization table: the Go
// definitions above.
var quantGeneric = quantKernels{
	fakeQuant:         fakeQuantGeneric,
	fakeQuantBackward: fakeQuantBackwardGeneric,
	quantErrorLp:      quantErrorLpGeneric,
	adaRoundForward:   adaRoundForwardGeneric,
	adaRoundBackward:  adaRoundBackwardGeneric,
	adaRoundReg:       adaRoundRegGeneric,
}
