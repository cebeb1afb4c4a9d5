package kernels

import "math"

// quantize is q(x) of SPEC 4.3 for one value; qmax = levels-1. The
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

// useQuantGeneric points the quant family at the pure-Go definitions.
func useQuantGeneric() {
	fakeQuantImpl, fakeQuantBackwardImpl = fakeQuantGeneric, fakeQuantBackwardGeneric
	quantErrorLpImpl = quantErrorLpGeneric
}
