package kernels

import "math"

// setElementwisePath points the elementwise family at path p. The AVX-512
// path runs these AVX2 kernels: they are memory-bound, and wider vectors
// would buy little.
func setElementwisePath(p Path) {
	useElementwiseGeneric()
	if p != AVX2 && p != AVX512 {
		return
	}
	axpyImpl, dotImpl = axpyAVX2, dotAVX2
	addImpl, subImpl, mulImpl, scaleImpl = addAVX2, subAVX2, mulAVX2, scaleAVX2
	reluImpl, relu6Impl = reluAVX2, relu6AVX2
	reluBackwardImpl, relu6BackwardImpl = reluBackwardAVX2, relu6BackwardAVX2
	sumImpl, sumSquaresImpl = sumAVX2, sumSquaresAVX2
	momentsImpl, momentsBackwardImpl = momentsAVX2, momentsBackwardAVX2
	scaleShiftImpl, scaleShiftBackwardImpl = scaleShiftClampAVX2, scaleShiftBackwardAVX2
	bnMomentsBackwardImpl = bnMomentsBackwardAVX2
	scaleShiftAddImpl, resMomentsBackwardImpl = scaleShiftAddClampAVX2, resMomentsBackwardAVX2
}

// resMomentsBackwardAVX2 picks the residual form's backward kernel (the
// mask from y); without an activation it is the plain one.
func resMomentsBackwardAVX2(x, y, dy, dx []float32, scale, _, a, b float32, act Activation, set bool) {
	if act != ActReLU && act != ActReLU6 {
		bnMomentsBackwardAVX2(x, y, dy, dx, scale, 0, a, b, act, set)
		return
	}
	x, y, dy = x[:len(dx)], y[:len(dx)], dy[:len(dx)]
	six := act == ActReLU6
	switch {
	case six && set:
		resMomentsBackwardReLU6SetAVX2(x, y, dy, dx, scale, a, b)
	case six:
		resMomentsBackwardReLU6AVX2(x, y, dy, dx, scale, a, b)
	case set:
		resMomentsBackwardReLUSetAVX2(x, y, dy, dx, scale, a, b)
	default:
		resMomentsBackwardReLUAVX2(x, y, dy, dx, scale, a, b)
	}
}

// bnMomentsBackwardAVX2 picks the fused batch-norm-and-moments backward
// kernel of the activation; y is not read.
func bnMomentsBackwardAVX2(x, _, dy, dx []float32, scale, shift, a, b float32, act Activation, set bool) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	switch {
	case act == ActReLU && set:
		bnMomentsBackwardReLUSetAVX2(x, dy, dx, scale, shift, a, b)
	case act == ActReLU:
		bnMomentsBackwardReLUAVX2(x, dy, dx, scale, shift, a, b)
	case act == ActReLU6 && set:
		bnMomentsBackwardReLU6SetAVX2(x, dy, dx, scale, shift, a, b)
	case act == ActReLU6:
		bnMomentsBackwardReLU6AVX2(x, dy, dx, scale, shift, a, b)
	case set:
		bnMomentsBackwardNoneSetAVX2(x, dy, dx, scale, shift, a, b)
	default:
		bnMomentsBackwardNoneAVX2(x, dy, dx, scale, shift, a, b)
	}
}

var inf32 = float32(math.Inf(1))

// scaleShiftClampAVX2 expresses the activation as the clamp the kernel
// fuses.
func scaleShiftClampAVX2(y, x []float32, scale, shift float32, act Activation) {
	switch act {
	case ActReLU:
		scaleShiftAVX2(y, x, scale, shift, 0, inf32)
	case ActReLU6:
		scaleShiftAVX2(y, x, scale, shift, 0, 6)
	default:
		scaleShiftAVX2(y, x, scale, shift, -inf32, inf32)
	}
}

// scaleShiftAddClampAVX2 is scaleShiftClampAVX2 with the residual r.
func scaleShiftAddClampAVX2(y, x, r []float32, scale, shift float32, act Activation) {
	x, r = x[:len(y)], r[:len(y)]
	switch act {
	case ActReLU:
		scaleShiftAddAVX2(y, x, r, scale, shift, 0, inf32)
	case ActReLU6:
		scaleShiftAddAVX2(y, x, r, scale, shift, 0, 6)
	default:
		scaleShiftAddAVX2(y, x, r, scale, shift, -inf32, inf32)
	}
}

// scaleShiftBackwardAVX2 picks the input-gradient kernel of the fused
// activation; without one it is an axpy.
func scaleShiftBackwardAVX2(y, dy, dx []float32, scale float32, act Activation) {
	switch act {
	case ActReLU:
		scaleShiftBackwardReLUAVX2(y, dy, dx, scale)
	case ActReLU6:
		scaleShiftBackwardReLU6AVX2(y, dy, dx, scale)
	default:
		axpyAVX2(scale, dy, dx)
	}
}
