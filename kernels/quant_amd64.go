package kernels

// setQuantPath points the quant family at path p: the AVX2 kernels or
// their AVX-512 twins (asm/quant emits both).
func setQuantPath(p Path) {
	useQuantGeneric()
	var k *simdQuant
	switch p {
	case AVX2:
		k = &quantAVX2
	case AVX512:
		k = &quantAVX512
	default:
		return
	}
	fakeQuantImpl = k.fakeQuant
	fakeQuantBackwardImpl = k.fakeQuantBackwardAny
	quantErrorLpImpl = k.quantErrorLpAny
	adaRoundForwardImpl, adaRoundBackwardImpl = k.adaRoundForward, k.adaRoundBackward
	adaRoundRegImpl = k.adaRoundRegAny
	lpGradImpl = k.lpGradAny
}

// simdQuant is one width's generated quant kernels; its methods adapt
// them to the family's signatures.
type simdQuant struct {
	fakeQuant          func(dst, x []float32, delta, zp, qmax float32)
	fakeQuantBackward  func(x, dy, dx []float32, delta, zp, qmax float32) float64
	fakeQuantDeltaGrad func(x, dy []float32, delta, zp, qmax float32) float64
	quantErrorLp       func(x []float32, delta, zp, qmax, p float32) float64
	adaRoundForward    func(dst, w, alpha []float32, delta, zp, qmax float32)
	adaRoundBackward   func(w, alpha, dy, dAlpha []float32, delta, zp, qmax float32)
	adaRoundReg        func(alpha []float32, beta float32) float64
	adaRoundRegGrad    func(alpha, dAlpha []float32, beta, coef float32) float64
	lpGrad             func(d []float32, gp, q float32) int
}

var quantAVX2 = simdQuant{
	fakeQuantAVX2, fakeQuantBackwardAVX2, fakeQuantDeltaGradAVX2, quantErrorLpAVX2,
	adaRoundForwardAVX2, adaRoundBackwardAVX2, adaRoundRegAVX2, adaRoundRegGradAVX2, lpGradAVX2,
}

var quantAVX512 = simdQuant{
	fakeQuantAVX512, fakeQuantBackwardAVX512, fakeQuantDeltaGradAVX512, quantErrorLpAVX512,
	adaRoundForwardAVX512, adaRoundBackwardAVX512, adaRoundRegAVX512, adaRoundRegGradAVX512, lpGradAVX512,
}

// adaRoundRegAny picks the kernel with or without the gradient; the
// gradient kernel takes weight folded into -2*beta*weight.
func (k *simdQuant) adaRoundRegAny(alpha, dAlpha []float32, beta, weight float32) float64 {
	if dAlpha == nil {
		return k.adaRoundReg(alpha, beta)
	}
	return k.adaRoundRegGrad(alpha, dAlpha[:len(alpha)], beta, -2*beta*weight)
}

// fakeQuantBackwardAny picks the kernel with or without dx.
func (k *simdQuant) fakeQuantBackwardAny(x, dy, dx []float32, delta, zp, qmax float32) float64 {
	if dx == nil {
		return k.fakeQuantDeltaGrad(x, dy, delta, zp, qmax)
	}
	return k.fakeQuantBackward(x, dy, dx[:len(x)], delta, zp, qmax)
}

// quantErrorLpAny runs the SIMD power for the exponents it covers.
func (k *simdQuant) quantErrorLpAny(x []float32, delta, zp, qmax, p float32) float64 {
	if p > 0 && p <= 7 {
		return k.quantErrorLp(x, delta, zp, qmax, p)
	}
	return quantErrorLpGeneric(x, delta, zp, qmax, p)
}

// lpGradAny reports whether the kernel left lanes for the caller.
func (k *simdQuant) lpGradAny(d []float32, gp, q float32) bool { return k.lpGrad(d, gp, q) != 0 }
