package kernels

// The amd64 quantization tables: the kernels asm/quant generates at each
// width, AVX2 (YMM) and AVX-512 (ZMM), through the same adapters.
var (
	quantAVX2   = quantAVX2Kernels.table()
	quantAVX512 = quantAVX512Kernels.table()
)

// simdQuant is one width's generated quantization kernels; table adapts
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

var quantAVX2Kernels = &simdQuant{
	fakeQuantAVX2, fakeQuantBackwardAVX2, fakeQuantDeltaGradAVX2, quantErrorLpAVX2,
	adaRoundForwardAVX2, adaRoundBackwardAVX2, adaRoundRegAVX2, adaRoundRegGradAVX2, lpGradAVX2,
}

var quantAVX512Kernels = &simdQuant{
	fakeQuantAVX512, fakeQuantBackwardAVX512, fakeQuantDeltaGradAVX512, quantErrorLpAVX512,
	adaRoundForwardAVX512, adaRoundBackwardAVX512, adaRoundRegAVX512, adaRoundRegGradAVX512, lpGradAVX512,
}

// table is the family's dispatch table of these kernels.
func (k *simdQuant) table() quantKernels {
	return quantKernels{
		fakeQuant:         k.fakeQuant,
		fakeQuantBackward: k.fakeQuantBackwardAny,
		quantErrorLp:      k.quantErrorLpAny,
		adaRoundForward:   k.adaRoundForward,
		adaRoundBackward:  k.adaRoundBackward,
		adaRoundReg:       k.adaRoundRegAny,
		lpGrad:            k.lpGradLeft,
	}
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
	return fakeQuantBackwardWith(k.fakeQuantBackward, k.fakeQuantDeltaGrad, x, dy, dx, delta, zp, qmax)
}

// quantErrorLpAny runs the SIMD power for the exponents it covers.
func (k *simdQuant) quantErrorLpAny(x []float32, delta, zp, qmax, p float32) float64 {
	return quantErrorLpWith(k.quantErrorLp, x, delta, zp, qmax, p)
}

// lpGradLeft runs the generated gradient power and reports whether it
// left any difference for the Go loop (see lpBackwardRange).
func (k *simdQuant) lpGradLeft(d []float32, gp, q float32) bool { return k.lpGrad(d, gp, q) != 0 }
