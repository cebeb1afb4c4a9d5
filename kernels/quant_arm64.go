package kernels

// NEON kernels, hand-written in quant_arm64.s.

//go:noescape
func fakeQuantNEON(dst, x []float32, delta, zp, qmax float32)

// setQuantPath points the quant family at path p; kernels without a NEON
// twin stay generic.
func setQuantPath(p Path) {
	useQuantGeneric()
	if p == NEON {
		fakeQuantImpl = fakeQuantNEON
	}
}
