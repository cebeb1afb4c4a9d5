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

// quantNEON is the NEON path's quantization table: the kernels of
// quant_arm64.s; AdaRound's rounding term has no NEON twin and stays
// generic, and so does LpDistanceBackward's power.
var quantNEON = quantKernels{
	fakeQuant:         fakeQuantNEON,
	fakeQuantBackward: fakeQuantBackwardNEONAny,
	quantErrorLp:      quantErrorLpNEONAny,
	adaRoundForward:   adaRoundForwardNEON,
	adaRoundBackward:  adaRoundBackwardNEON,
	adaRoundReg:       adaRoundRegGeneric,
}

// fakeQuantBackwardNEONAny picks the kernel with or without dx.
func fakeQuantBackwardNEONAny(x, dy, dx []float32, delta, zp, qmax float32) float64 {
	return fakeQuantBackwardWith(fakeQuantBackwardNEON, fakeQuantDeltaGradNEON, x, dy, dx, delta, zp, qmax)
}

// quantErrorLpNEONAny runs the SIMD power for the exponents it covers.
func quantErrorLpNEONAny(x []float32, delta, zp, qmax, p float32) float64 {
	return quantErrorLpWith(quantErrorLpNEON, x, delta, zp, qmax, p)
}
