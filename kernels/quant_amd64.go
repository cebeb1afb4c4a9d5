package kernels

// setQuantPath points the quant family at path p; the AVX-512 path runs
// the AVX2 kernels.
func setQuantPath(p Path) {
	useQuantGeneric()
	if p != AVX2 && p != AVX512 {
		return
	}
	fakeQuantImpl = fakeQuantAVX2
	fakeQuantBackwardImpl = fakeQuantBackwardAVX2Any
	quantErrorLpImpl = quantErrorLpAVX2Any
	adaRoundForwardImpl, adaRoundBackwardImpl = adaRoundForwardAVX2, adaRoundBackwardAVX2
	adaRoundRegImpl = adaRoundRegAVX2Any
	lpGradImpl = func(d []float32, gp, q float32) bool { return lpGradAVX2(d, gp, q) != 0 }
}

// adaRoundRegAVX2Any picks the kernel with or without the gradient; the
// gradient kernel takes weight folded into -2*beta*weight.
func adaRoundRegAVX2Any(alpha, dAlpha []float32, beta, weight float32) float64 {
	if dAlpha == nil {
		return adaRoundRegAVX2(alpha, beta)
	}
	return adaRoundRegGradAVX2(alpha, dAlpha[:len(alpha)], beta, -2*beta*weight)
}

// fakeQuantBackwardAVX2Any picks the kernel with or without dx.
func fakeQuantBackwardAVX2Any(x, dy, dx []float32, delta, zp, qmax float32) float64 {
	if dx == nil {
		return fakeQuantDeltaGradAVX2(x, dy, delta, zp, qmax)
	}
	return fakeQuantBackwardAVX2(x, dy, dx[:len(x)], delta, zp, qmax)
}

// quantErrorLpAVX2Any runs the SIMD power for the exponents it covers.
func quantErrorLpAVX2Any(x []float32, delta, zp, qmax, p float32) float64 {
	if p > 0 && p <= 7 {
		return quantErrorLpAVX2(x, delta, zp, qmax, p)
	}
	return quantErrorLpGeneric(x, delta, zp, qmax, p)
}
