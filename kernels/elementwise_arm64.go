package kernels

import "math"

// NEON kernels, hand-written in elementwise_arm64.s.

//go:noescape
func axpyNEON(alpha float32, x, y []float32)

//go:noescape
func dotNEON(x, y []float32) float32

//go:noescape
func scaleShiftNEON(y, x []float32, scale, shift, lo, hi float32)

//go:noescape
func addNEON(dst, a, b []float32)

//go:noescape
func subNEON(dst, a, b []float32)

//go:noescape
func mulNEON(dst, a, b []float32)

//go:noescape
func scaleNEON(dst []float32, alpha float32, x []float32)

//go:noescape
func reluNEON(dst, x []float32)

//go:noescape
func relu6NEON(dst, x []float32)

//go:noescape
func reluBackwardNEON(x, dy, dx []float32)

//go:noescape
func relu6BackwardNEON(x, dy, dx []float32)

//go:noescape
func momentsNEON(x []float32) (s, ss float64)

//go:noescape
func momentsBackwardNEON(x, dx []float32, a, b float32)

//go:noescape
func scaleShiftBackwardReLUNEON(y, dy, dx []float32, scale float32)

//go:noescape
func scaleShiftBackwardReLU6NEON(y, dy, dx []float32, scale float32)

// setElementwisePath points the elementwise family at path p.
func setElementwisePath(p Path) {
	useElementwiseGeneric()
	if p != NEON {
		return
	}
	axpyImpl, dotImpl = axpyNEON, dotNEON
	addImpl, subImpl, mulImpl, scaleImpl = addNEON, subNEON, mulNEON, scaleNEON
	reluImpl, relu6Impl = reluNEON, relu6NEON
	reluBackwardImpl, relu6BackwardImpl = reluBackwardNEON, relu6BackwardNEON
	sumImpl, sumSquaresImpl = sumNEON, sumSquaresNEON
	momentsImpl, momentsBackwardImpl = momentsNEON, momentsBackwardNEON
	scaleShiftImpl, scaleShiftBackwardImpl = scaleShiftClampNEON, scaleShiftBackwardNEON
	scaleShiftAddImpl = scaleShiftAddNEON
}

// scaleShiftAddNEON runs a plane of ScaleShiftAdd as the NEON kernels it
// fuses, the plane still in cache for the second and third; a y that is
// r itself (overwritten by the first) takes the Go loop.
func scaleShiftAddNEON(y, x, r []float32, scale, shift float32, act Activation) {
	if len(y) == 0 {
		return
	}
	x, r = x[:len(y)], r[:len(y)]
	if &y[0] == &r[0] {
		scaleShiftAddGeneric(y, x, r, scale, shift, act)
		return
	}
	scaleShiftClampNEON(y, x, scale, shift, ActNone)
	addNEON(y, y, r)
	switch act {
	case ActReLU:
		reluNEON(y, y)
	case ActReLU6:
		relu6NEON(y, y)
	}
}

// sumNEON and sumSquaresNEON take their half of the moments kernel; the
// other half costs nothing extra in a memory-bound loop.
func sumNEON(x []float32) float64 {
	s, _ := momentsNEON(x)
	return s
}

func sumSquaresNEON(x []float32) float64 {
	_, ss := momentsNEON(x)
	return ss
}

// scaleShiftBackwardNEON picks the input-gradient kernel of the fused
// activation; without one it is an axpy.
func scaleShiftBackwardNEON(y, dy, dx []float32, scale float32, act Activation) {
	switch act {
	case ActReLU:
		scaleShiftBackwardReLUNEON(y, dy, dx, scale)
	case ActReLU6:
		scaleShiftBackwardReLU6NEON(y, dy, dx, scale)
	default:
		axpyNEON(scale, dy, dx)
	}
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
