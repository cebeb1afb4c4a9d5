package kernels

// Pure-Go definitions of the elementwise kernels: the reference every
// assembly twin is tested against. Callers have equalised the lengths.

import "math"

func axpyGeneric(alpha float32, x, y []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// dotGeneric accumulates in float64 so the reference is as exact as the
// inputs allow.
func dotGeneric(x, y []float32) float32 {
	y = y[:len(x)]
	var s float64
	for i, v := range x {
		s += float64(v) * float64(y[i])
	}
	return float32(s)
}

func addGeneric(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] + b[i]
	}
}

func subGeneric(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] - b[i]
	}
}

func mulGeneric(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] = a[i] * b[i]
	}
}

func scaleGeneric(dst []float32, alpha float32, x []float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = alpha * v
	}
}

func reluGeneric(dst, x []float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = max(v, 0)
	}
}

func relu6Generic(dst, x []float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = min(max(v, 0), 6)
	}
}

func reluBackwardGeneric(x, dy, dx []float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	for i, v := range x {
		if v > 0 {
			dx[i] += dy[i]
		}
	}
}

func relu6BackwardGeneric(x, dy, dx []float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	for i, v := range x {
		if v > 0 && v < 6 {
			dx[i] += dy[i]
		}
	}
}

// reluBackwardSetGeneric and relu6BackwardSetGeneric mask dy's bits,
// which the compiler turns into conditional moves: a branch on the
// random signs of x measured three to five times slower.
func reluBackwardSetGeneric(x, dy, dx []float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	for i, v := range x {
		var m uint32
		if v > 0 {
			m = ^uint32(0)
		}
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & m)
	}
}

func relu6BackwardSetGeneric(x, dy, dx []float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	for i, v := range x {
		var m uint32
		if v > 0 {
			m = ^uint32(0)
		}
		if !(v < 6) { // not folded into the first: && branches
			m = 0
		}
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & m)
	}
}

// elementwiseGeneric is the generic path's elementwise table: the Go
// definitions every SIMD twin is tested against.
var elementwiseGeneric = elementwiseKernels{
	axpy: axpyGeneric, dot: dotGeneric, add: addGeneric, sub: subGeneric, mul: mulGeneric, scale: scaleGeneric,
	relu: reluGeneric, relu6: relu6Generic, reluBackward: reluBackwardGeneric, relu6Backward: relu6BackwardGeneric,
	reluBackwardSet: reluBackwardSetGeneric, relu6BackwardSet: relu6BackwardSetGeneric,
	sum: sumGeneric, sumSquares: sumSquaresGeneric, moments: momentsGeneric, momentsBackward: momentsBackwardGeneric,
	scaleShift: scaleShiftGeneric, scaleShiftBackward: scaleShiftBackwardGeneric, scaleShiftAdd: scaleShiftAddGeneric,
	bnMomentsBackward: bnMomentsBackwardComposed, resMomentsBackward: bnMomentsBackwardComposed,
}
