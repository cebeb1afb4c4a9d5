package kernels

// NEON kernels, hand-written in quant_arm64.s.

//go:noescape
func fakeQuantNEON(dst, x []float32, delta, zp, qmax float32)

//go:noescape
func quantErrorLpNEON(x []float32, delta, zp, qmax, p float32) float64

//go:noescape
func fakeQuantBackwardNEON(x, dy, dx []float32, delta, zp, qmax float32) float64

//go:noescape
func fakeQuantDeltaGradNEON(x, dy []float32, delta, zp, qmax float32) float64

//go:noescape
func adaRoundForwardNEON(dst, w, alpha []float32, delta, zp, qmax float32)

//go:noescape
func adaRoundBackwardNEON(w, alpha, dy, dAlpha []float32, delta, zp, qmax float32)

// setQuantPath points the quant family at path p; AdaRound's rounding
// term has no NEON twin and stays generic.
func setQuantPath(p Path) {
	useQuantGeneric()
	if p == NEON {
		fakeQuantImpl = fakeQuantNEON
		quantErrorLpImpl = quantErrorLpNEONAny
		fakeQuantBackwardImpl = fakeQuantBackwardNEONAny
		adaRoundForwardImpl, adaRoundBackwardImpl = adaRoundForwardNEON, adaRoundBackwardNEON
	}
}

// fakeQuantBackwardNEONAny picks the kernel with or without dx.
func fakeQuantBackwardNEONAny(x, dy, dx []float32, delta, zp, qmax float32) float64 {
	if dx == nil {
		return fakeQuantDeltaGradNEON(x, dy, delta, zp, qmax)
	}
	return fakeQuantBackwardNEON(x, dy, dx[:len(x)], delta, zp, qmax)
}

// quantErrorLpNEONAny runs the SIMD power for the exponents it covers.
func quantErrorLpNEONAny(x []float32, delta, zp, qmax, p float32) float64 {
	if p > 0 && p <= 7 {
		return quantErrorLpNEON(x, delta, zp, qmax, p)
	}
	return quantErrorLpGeneric(x, delta, zp, qmax, p)
}
