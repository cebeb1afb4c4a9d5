package kernels

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
func reluBackwardSetNEON(x, dy, dx []float32)

//go:noescape
func relu6BackwardSetNEON(x, dy, dx []float32)

//go:noescape
func momentsNEON(x []float32) (s, ss float64)

//go:noescape
func momentsBackwardNEON(x, dx []float32, a, b float32)

//go:noescape
func scaleShiftBackwardReLUNEON(y, dy, dx []float32, scale float32)

//go:noescape
func scaleShiftBackwardReLU6NEON(y, dy, dx []float32, scale float32)

// elementwiseNEON is the NEON path's elementwise table: the kernels of
// elementwise_arm64.s; the fused batch-norm backwards are the generic
// compositions of them.
var elementwiseNEON = elementwiseKernels{
	axpy: axpyNEON, dot: dotNEON, add: addNEON, sub: subNEON, mul: mulNEON, scale: scaleNEON,
	relu: reluNEON, relu6: relu6NEON, reluBackward: reluBackwardNEON, relu6Backward: relu6BackwardNEON,
	reluBackwardSet: reluBackwardSetNEON, relu6BackwardSet: relu6BackwardSetNEON,
	sum: sumNEON, sumSquares: sumSquaresNEON, moments: momentsNEON, momentsBackward: momentsBackwardNEON,
	scaleShift: scaleShiftClampNEON, scaleShiftBackward: scaleShiftBackwardNEON, scaleShiftAdd: scaleShiftAddNEON,
	bnMomentsBackward: bnMomentsBackwardComposed, resMomentsBackward: bnMomentsBackwardComposed,
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
// activation.
func scaleShiftBackwardNEON(y, dy, dx []float32, scale float32, act Activation) {
	scaleShiftBackwardWith(scaleShiftBackwardReLUNEON, scaleShiftBackwardReLU6NEON, axpyNEON, y, dy, dx, scale, act)
}

// scaleShiftClampNEON expresses the activation as the clamp the kernel
// fuses.
func scaleShiftClampNEON(y, x []float32, scale, shift float32, act Activation) {
	lo, hi := actBounds(act)
	scaleShiftNEON(y, x, scale, shift, lo, hi)
}
