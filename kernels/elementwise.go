package kernels

// Elementwise kernels on equal-length slices (docs/DESIGN.md, "Kernels").
// Every exported function checks lengths with a slice expression, so a
// short input panics with an index error instead of reading past its end;
// kernels are called by library code that has already validated shapes.

import "math"

// Activation selects the activation fused into ScaleShift.
type Activation int

// The fusable activations.
const (
	ActNone Activation = iota
	ActReLU
	ActReLU6
)

// elementwiseKernels is the dispatch table of the elementwise family:
// elementwise kernels, reductions and the per-plane batch-norm kernels
// (bn.go). Every entry is set on every path. The per-plane kernels work
// on one plane of hw floats; bnMomentsBackward and resMomentsBackward are
// one plane of ScaleShiftMomentsBackward and of
// ScaleShiftAddMomentsBackward (y unread by the first, shift by the
// second).
type elementwiseKernels struct {
	axpy               func(alpha float32, x, y []float32)
	dot                func(x, y []float32) float32
	add, sub, mul      func(dst, a, b []float32)
	scale              func(dst []float32, alpha float32, x []float32)
	relu, relu6        func(dst, x []float32)
	reluBackward       func(x, dy, dx []float32)
	relu6Backward      func(x, dy, dx []float32)
	reluBackwardSet    func(x, dy, dx []float32)
	relu6BackwardSet   func(x, dy, dx []float32)
	sum, sumSquares    func(x []float32) float64
	moments            func(x []float32) (s, ss float64)
	momentsBackward    func(x, dx []float32, a, b float32)
	scaleShift         func(y, x []float32, scale, shift float32, act Activation)
	scaleShiftBackward func(y, dy, dx []float32, scale float32, act Activation)
	scaleShiftAdd      func(y, x, r []float32, scale, shift float32, act Activation)
	bnMomentsBackward  func(x, y, dy, dx []float32, scale, shift, a, b float32, act Activation, set bool)
	resMomentsBackward func(x, y, dy, dx []float32, scale, shift, a, b float32, act Activation, set bool)
}

// actBounds is the clamp an activation is: [lo, hi] = (-Inf, +Inf) for
// none, [0, +Inf) for ReLU, [0, 6] for ReLU6.
func actBounds(act Activation) (lo, hi float32) {
	switch act {
	case ActReLU:
		return 0, float32(math.Inf(1))
	case ActReLU6:
		return 0, 6
	}
	return float32(math.Inf(-1)), float32(math.Inf(1))
}

// scaleShiftBackwardWith runs the input-gradient kernel of the fused
// activation, relu or relu6; without one the gradient is an axpy. The
// SIMD paths' scaleShiftBackward entries are this over their kernels.
func scaleShiftBackwardWith(relu, relu6 func(y, dy, dx []float32, scale float32), axpy func(alpha float32, x, y []float32),
	y, dy, dx []float32, scale float32, act Activation) {
	switch act {
	case ActReLU:
		relu(y, dy, dx, scale)
	case ActReLU6:
		relu6(y, dy, dx, scale)
	default:
		axpy(scale, dy, dx)
	}
}

// Add sets dst[i] = a[i] + b[i].
func Add(dst, a, b []float32) { map3(active.elementwise.add, dst, a, b) }

// Sub sets dst[i] = a[i] - b[i].
func Sub(dst, a, b []float32) { map3(active.elementwise.sub, dst, a, b) }

// Mul sets dst[i] = a[i] * b[i].
func Mul(dst, a, b []float32) { map3(active.elementwise.mul, dst, a, b) }

// Scale sets dst[i] = alpha * x[i].
func Scale(dst []float32, alpha float32, x []float32) { mapScalar(scaleInto, alpha, x, dst) }

// scaleInto adapts the scale kernel to mapScalar's argument order.
func scaleInto(alpha float32, x, dst []float32) { active.elementwise.scale(dst, alpha, x) }

// Axpy computes y += alpha*x over len(y) elements.
func Axpy(alpha float32, x, y []float32) { mapScalar(active.elementwise.axpy, alpha, x, y) }

// Dot returns sum x[i]*y[i] over len(x) elements. The SIMD paths keep
// several float32 partial sums per block, so the last bits differ between
// paths (never between runs or thread counts).
func Dot(x, y []float32) float32 {
	n := len(x)
	if n <= blockFloats {
		return active.elementwise.dot(x, y[:n])
	}
	t := newTask(dotBlocks)
	t.s[0], t.s[1] = x, y[:n]
	t.partials(numBlocks(n))
	t.spread(numBlocks(n), n)
	s := t.sumPartials()
	t.release()
	return float32(s)
}

func dotBlocks(t *task, lo, hi int) {
	x, y := t.s[0], t.s[1]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(x))
		t.part[k] = float64(active.elementwise.dot(x[i:j], y[i:j]))
	}
}

// ReLU sets dst[i] = max(x[i], 0).
func ReLU(dst, x []float32) { map2(active.elementwise.relu, dst, x) }

// ReLU6 sets dst[i] = min(max(x[i], 0), 6).
func ReLU6(dst, x []float32) { map2(active.elementwise.relu6, dst, x) }

// ReLUBackward accumulates dx[i] += dy[i] where x[i] > 0, the subgradient
// PyTorch uses (zero at x == 0).
func ReLUBackward(x, dy, dx []float32) { map3(reluBackwardInto, dx, x, dy) }

// ReLU6Backward accumulates dx[i] += dy[i] where 0 < x[i] < 6, matching
// PyTorch's hardtanh backward (no gradient at either bound).
func ReLU6Backward(x, dy, dx []float32) { map3(relu6BackwardInto, dx, x, dy) }

// ReLUBackwardSet is ReLUBackward storing instead of adding: dx[i] =
// dy[i] where x[i] > 0, else 0. dx is not read, so it may hold anything:
// the first contribution to a gradient takes two streams in and one out
// instead of a clear and then three in and one out.
func ReLUBackwardSet(x, dy, dx []float32) { map3(reluBackwardSetInto, dx, x, dy) }

// ReLU6BackwardSet is ReLU6Backward storing instead of adding: dx[i] =
// dy[i] where 0 < x[i] < 6, else 0; dx is not read.
func ReLU6BackwardSet(x, dy, dx []float32) { map3(relu6BackwardSetInto, dx, x, dy) }

// reluBackwardInto and its siblings put the output first for map3.
func reluBackwardInto(dx, x, dy []float32)     { active.elementwise.reluBackward(x, dy, dx) }
func relu6BackwardInto(dx, x, dy []float32)    { active.elementwise.relu6Backward(x, dy, dx) }
func reluBackwardSetInto(dx, x, dy []float32)  { active.elementwise.reluBackwardSet(x, dy, dx) }
func relu6BackwardSetInto(dx, x, dy []float32) { active.elementwise.relu6BackwardSet(x, dy, dx) }

// parallelMinWork is the number of element operations below which a
// kernel stays on the calling goroutine: smaller jobs finish before the
// pool would have woken up, and stay free of allocations.
const parallelMinWork = 1 << 16
