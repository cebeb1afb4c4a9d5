package kernels

import "math"

// setElementwisePath points the elementwise family at path p: the AVX2
// kernels or their AVX-512 twins (asm/elementwise emits both).
func setElementwisePath(p Path) {
	useElementwiseGeneric()
	var k *simdElementwise
	switch p {
	case AVX2:
		k = &elementwiseAVX2
	case AVX512:
		k = &elementwiseAVX512
	default:
		return
	}
	axpyImpl, dotImpl = k.axpy, k.dot
	addImpl, subImpl, mulImpl, scaleImpl = k.add, k.sub, k.mul, k.scale
	reluImpl, relu6Impl = k.relu, k.relu6
	reluBackwardImpl, relu6BackwardImpl = k.reluBackward, k.relu6Backward
	sumImpl, sumSquaresImpl = k.sum, k.sumSquares
	momentsImpl, momentsBackwardImpl = k.moments, k.momentsBackward
	scaleShiftImpl, scaleShiftBackwardImpl = k.scaleShiftClamp, k.scaleShiftBackwardAct
	bnMomentsBackwardImpl = k.bnMomentsBackwardAct
	scaleShiftAddImpl, resMomentsBackwardImpl = k.scaleShiftAddClamp, k.resMomentsBackwardAct
}

// simdElementwise is one width's generated elementwise kernels; its
// methods adapt them to the family's signatures.
type simdElementwise struct {
	axpy                                         func(alpha float32, x, y []float32)
	momentsBackward                              func(x, dx []float32, a, b float32)
	dot                                          func(x, y []float32) float32
	add, sub, mul                                func(dst, a, b []float32)
	scale                                        func(dst []float32, alpha float32, x []float32)
	relu, relu6                                  func(dst, x []float32)
	reluBackward, relu6Backward                  func(x, dy, dx []float32)
	sum, sumSquares                              func(x []float32) float64
	moments                                      func(x []float32) (s, ss float64)
	scaleShift                                   func(y, x []float32, scale, shift, lo, hi float32)
	scaleShiftAdd                                func(y, x, r []float32, scale, shift, lo, hi float32)
	scaleShiftBackwardReLU, scaleShiftBackwardR6 func(y, dy, dx []float32, scale float32)
	// bn[act][set]: none, ReLU, ReLU6; adding, storing.
	bn [3][2]func(x, dy, dx []float32, scale, shift, a, b float32)
	// res[act][set]: ReLU, ReLU6.
	res [2][2]func(x, y, dy, dx []float32, scale, a, b float32)
}

var elementwiseAVX2 = simdElementwise{
	axpy: axpyAVX2, dot: dotAVX2, add: addAVX2, sub: subAVX2, mul: mulAVX2, scale: scaleAVX2,
	relu: reluAVX2, relu6: relu6AVX2, reluBackward: reluBackwardAVX2, relu6Backward: relu6BackwardAVX2,
	sum: sumAVX2, sumSquares: sumSquaresAVX2, moments: momentsAVX2, momentsBackward: momentsBackwardAVX2,
	scaleShift: scaleShiftAVX2, scaleShiftAdd: scaleShiftAddAVX2,
	scaleShiftBackwardReLU: scaleShiftBackwardReLUAVX2, scaleShiftBackwardR6: scaleShiftBackwardReLU6AVX2,
	bn: [3][2]func(x, dy, dx []float32, scale, shift, a, b float32){
		{bnMomentsBackwardNoneAVX2, bnMomentsBackwardNoneSetAVX2},
		{bnMomentsBackwardReLUAVX2, bnMomentsBackwardReLUSetAVX2},
		{bnMomentsBackwardReLU6AVX2, bnMomentsBackwardReLU6SetAVX2},
	},
	res: [2][2]func(x, y, dy, dx []float32, scale, a, b float32){
		{resMomentsBackwardReLUAVX2, resMomentsBackwardReLUSetAVX2},
		{resMomentsBackwardReLU6AVX2, resMomentsBackwardReLU6SetAVX2},
	},
}

var elementwiseAVX512 = simdElementwise{
	axpy: axpyAVX512, dot: dotAVX512, add: addAVX512, sub: subAVX512, mul: mulAVX512, scale: scaleAVX512,
	relu: reluAVX512, relu6: relu6AVX512, reluBackward: reluBackwardAVX512, relu6Backward: relu6BackwardAVX512,
	sum: sumAVX512, sumSquares: sumSquaresAVX512, moments: momentsAVX512, momentsBackward: momentsBackwardAVX512,
	scaleShift: scaleShiftAVX512, scaleShiftAdd: scaleShiftAddAVX512,
	scaleShiftBackwardReLU: scaleShiftBackwardReLUAVX512, scaleShiftBackwardR6: scaleShiftBackwardReLU6AVX512,
	bn: [3][2]func(x, dy, dx []float32, scale, shift, a, b float32){
		{bnMomentsBackwardNoneAVX512, bnMomentsBackwardNoneSetAVX512},
		{bnMomentsBackwardReLUAVX512, bnMomentsBackwardReLUSetAVX512},
		{bnMomentsBackwardReLU6AVX512, bnMomentsBackwardReLU6SetAVX512},
	},
	res: [2][2]func(x, y, dy, dx []float32, scale, a, b float32){
		{resMomentsBackwardReLUAVX512, resMomentsBackwardReLUSetAVX512},
		{resMomentsBackwardReLU6AVX512, resMomentsBackwardReLU6SetAVX512},
	},
}

// setIndex is the kernels' [set] index.
func setIndex(set bool) int {
	if set {
		return 1
	}
	return 0
}

// resMomentsBackwardAct picks the residual form's backward kernel (the
// mask from y); without an activation it is the plain one.
func (k *simdElementwise) resMomentsBackwardAct(x, y, dy, dx []float32, scale, _, a, b float32, act Activation, set bool) {
	if act != ActReLU && act != ActReLU6 {
		k.bnMomentsBackwardAct(x, y, dy, dx, scale, 0, a, b, act, set)
		return
	}
	f := k.res[act-ActReLU][setIndex(set)]
	f(x[:len(dx)], y[:len(dx)], dy[:len(dx)], dx, scale, a, b)
}

// bnMomentsBackwardAct picks the fused batch-norm-and-moments backward
// kernel of the activation; y is not read.
func (k *simdElementwise) bnMomentsBackwardAct(x, _, dy, dx []float32, scale, shift, a, b float32, act Activation, set bool) {
	f := k.bn[act][setIndex(set)]
	f(x[:len(dx)], dy[:len(dx)], dx, scale, shift, a, b)
}

var inf32 = float32(math.Inf(1))

// actBounds is the activation as the clamp the kernels fuse.
func actBounds(act Activation) (lo, hi float32) {
	switch act {
	case ActReLU:
		return 0, inf32
	case ActReLU6:
		return 0, 6
	}
	return -inf32, inf32
}

// scaleShiftClamp runs the scale-shift kernel with the activation's clamp.
func (k *simdElementwise) scaleShiftClamp(y, x []float32, scale, shift float32, act Activation) {
	lo, hi := actBounds(act)
	k.scaleShift(y, x, scale, shift, lo, hi)
}

// scaleShiftAddClamp is scaleShiftClamp with the residual r.
func (k *simdElementwise) scaleShiftAddClamp(y, x, r []float32, scale, shift float32, act Activation) {
	lo, hi := actBounds(act)
	k.scaleShiftAdd(y, x[:len(y)], r[:len(y)], scale, shift, lo, hi)
}

// scaleShiftBackwardAct picks the input-gradient kernel of the fused
// activation; without one it is an axpy.
func (k *simdElementwise) scaleShiftBackwardAct(y, dy, dx []float32, scale float32, act Activation) {
	switch act {
	case ActReLU:
		k.scaleShiftBackwardReLU(y, dy, dx, scale)
	case ActReLU6:
		k.scaleShiftBackwardR6(y, dy, dx, scale)
	default:
		k.axpy(scale, dy, dx)
	}
}
