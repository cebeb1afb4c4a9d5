package kernels

// The amd64 elementwise tables: the kernels asm/elementwise generates at
// each width, AVX2 (YMM) and AVX-512 (ZMM), through the same adapters.
var (
	elementwiseAVX2   = elementwiseAVX2Kernels.table()
	elementwiseAVX512 = elementwiseAVX512Kernels.table()
)

// simdElementwise is one width's generated elementwise kernels; table
// adapts them to the family's signatures.
type simdElementwise struct {
	axpy                        func(alpha float32, x, y []float32)
	dot                         func(x, y []float32) float32
	add, sub, mul               func(dst, a, b []float32)
	scale                       func(dst []float32, alpha float32, x []float32)
	relu, relu6                 func(dst, x []float32)
	reluBackward, relu6Backward func(x, dy, dx []float32)
	sum, sumSquares             func(x []float32) float64
	moments                     func(x []float32) (s, ss float64)
	momentsBackward             func(x, dx []float32, a, b float32)
	scaleShift                  func(y, x []float32, scale, shift, lo, hi float32)
	scaleShiftAdd               func(y, x, r []float32, scale, shift, lo, hi float32)
	// The ReLU and ReLU6 input gradients of scaleShift.
	scaleShiftBackward [2]func(y, dy, dx []float32, scale float32)
	// bn[act][set]: none, ReLU, ReLU6; adding, storing.
	bn [3][2]func(x, dy, dx []float32, scale, shift, a, b float32)
	// res[act][set]: ReLU, ReLU6.
	res [2][2]func(x, y, dy, dx []float32, scale, a, b float32)
	// The storing twins of reluBackward and relu6Backward.
	reluBackwardSet, relu6BackwardSet func(x, dy, dx []float32)
}

var elementwiseAVX2Kernels = &simdElementwise{
	axpy: axpyAVX2, dot: dotAVX2, add: addAVX2, sub: subAVX2, mul: mulAVX2, scale: scaleAVX2,
	relu: reluAVX2, relu6: relu6AVX2, reluBackward: reluBackwardAVX2, relu6Backward: relu6BackwardAVX2,
	reluBackwardSet: reluBackwardSetAVX2, relu6BackwardSet: relu6BackwardSetAVX2,
	sum: sumAVX2, sumSquares: sumSquaresAVX2, moments: momentsAVX2, momentsBackward: momentsBackwardAVX2,
	scaleShift: scaleShiftAVX2, scaleShiftAdd: scaleShiftAddAVX2,
	scaleShiftBackward: [2]func(y, dy, dx []float32, scale float32){scaleShiftBackwardReLUAVX2, scaleShiftBackwardReLU6AVX2},
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

var elementwiseAVX512Kernels = &simdElementwise{
	axpy: axpyAVX512, dot: dotAVX512, add: addAVX512, sub: subAVX512, mul: mulAVX512, scale: scaleAVX512,
	relu: reluAVX512, relu6: relu6AVX512, reluBackward: reluBackwardAVX512, relu6Backward: relu6BackwardAVX512,
	reluBackwardSet: reluBackwardSetAVX512, relu6BackwardSet: relu6BackwardSetAVX512,
	sum: sumAVX512, sumSquares: sumSquaresAVX512, moments: momentsAVX512, momentsBackward: momentsBackwardAVX512,
	scaleShift: scaleShiftAVX512, scaleShiftAdd: scaleShiftAddAVX512,
	scaleShiftBackward: [2]func(y, dy, dx []float32, scale float32){scaleShiftBackwardReLUAVX512, scaleShiftBackwardReLU6AVX512},
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

// table is the family's dispatch table of these kernels.
func (k *simdElementwise) table() elementwiseKernels {
	return elementwiseKernels{
		axpy: k.axpy, dot: k.dot, add: k.add, sub: k.sub, mul: k.mul, scale: k.scale,
		relu: k.relu, relu6: k.relu6, reluBackward: k.reluBackward, relu6Backward: k.relu6Backward,
		reluBackwardSet: k.reluBackwardSet, relu6BackwardSet: k.relu6BackwardSet,
		sum: k.sum, sumSquares: k.sumSquares, moments: k.moments, momentsBackward: k.momentsBackward,
		scaleShift: k.scaleShiftClamp, scaleShiftBackward: k.scaleShiftBackwardAct, scaleShiftAdd: k.scaleShiftAddClamp,
		bnMomentsBackward: k.bnMomentsBackwardAct, resMomentsBackward: k.resMomentsBackwardAct,
	}
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
	k.res[act-ActReLU][setIndex(set)](x[:len(dx)], y[:len(dx)], dy[:len(dx)], dx, scale, a, b)
}

// bnMomentsBackwardAct picks the fused batch-norm-and-moments backward
// kernel of the activation; y is not read.
func (k *simdElementwise) bnMomentsBackwardAct(x, _, dy, dx []float32, scale, shift, a, b float32, act Activation, set bool) {
	k.bn[act][setIndex(set)](x[:len(dx)], dy[:len(dx)], dx, scale, shift, a, b)
}

// scaleShiftClamp expresses the activation as the clamp the kernel fuses.
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
// activation.
func (k *simdElementwise) scaleShiftBackwardAct(y, dy, dx []float32, scale float32, act Activation) {
	scaleShiftBackwardWith(k.scaleShiftBackward[0], k.scaleShiftBackward[1], k.axpy, y, dy, dx, scale, act)
}
