package kernels

import "math"

// NEON kernels, hand-written in elementwise_arm64.s.

//go:noescape
func axpyNEON(alpha float32, x, y []float32)

//go:noescape
func dotNEON(x, y []float32) float32

//go:noescape
func scaleShiftNEON(y, x []float32, scale, shift, lo, hi float32)

// setElementwisePath points the elementwise family at path p; kernels
// without a NEON twin stay generic.
func setElementwisePath(p Path) {
	useElementwiseGeneric()
	if p != NEON {
		return
	}
	axpyImpl, dotImpl = axpyNEON, dotNEON
	scaleShiftImpl = scaleShiftClampNEON
}

var inf32 = float32(math.Inf(1))

// scaleShiftClampNEON expresses the activation as the clamp the kernel
// fuses.
func scaleShiftClampNEON(y, x []float32, scale, shift float32, act Activation) {
	switch act {
	case ActReLU:
		scaleShiftNEON(y, x, scale, shift, 0, inf32)
	case ActReLU6:
		scaleShiftNEON(y, x, scale, shift, 0, 6)
	default:
		scaleShiftNEON(y, x, scale, shift, -inf32, inf32)
	}
}
