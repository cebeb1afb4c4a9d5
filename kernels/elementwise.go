package kernels

// Elementwise kernels on equal-length slices (SPEC section 1, kernels).
// Every exported function checks lengths with a slice expression, so a
// short input panics with an index error instead of reading past its end;
// kernels are called by library code that has already validated shapes.

// Activation selects the activation fused into ScaleShift.
type Activation int

// The fusable activations.
const (
	ActNone Activation = iota
	ActReLU
	ActReLU6
)

// Implementation variables of the elementwise family; setElementwisePath
// points them at one kernel path.
var (
	axpyImpl          = axpyGeneric
	dotImpl           = dotGeneric
	addImpl           = addGeneric
	subImpl           = subGeneric
	mulImpl           = mulGeneric
	scaleImpl         = scaleGeneric
	reluImpl          = reluGeneric
	relu6Impl         = relu6Generic
	reluBackwardImpl  = reluBackwardGeneric
	relu6BackwardImpl = relu6BackwardGeneric
)

// Add sets dst[i] = a[i] + b[i].
func Add(dst, a, b []float32) { map3(addImpl, dst, a, b) }

// Sub sets dst[i] = a[i] - b[i].
func Sub(dst, a, b []float32) { map3(subImpl, dst, a, b) }

// Mul sets dst[i] = a[i] * b[i].
func Mul(dst, a, b []float32) { map3(mulImpl, dst, a, b) }

// Scale sets dst[i] = alpha * x[i].
func Scale(dst []float32, alpha float32, x []float32) { mapScalar(scaleInto, alpha, x, dst) }

// scaleInto adapts scaleImpl to mapScalar's argument order.
func scaleInto(alpha float32, x, dst []float32) { scaleImpl(dst, alpha, x) }

// Axpy computes y += alpha*x over len(y) elements.
func Axpy(alpha float32, x, y []float32) { mapScalar(axpyImpl, alpha, x, y) }

// Dot returns sum x[i]*y[i] over len(x) elements. The SIMD paths keep
// several float32 partial sums per block, so the last bits differ between
// paths (never between runs or thread counts).
func Dot(x, y []float32) float32 {
	n := len(x)
	if n <= blockFloats {
		return dotImpl(x, y[:n])
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
		t.part[k] = float64(dotImpl(x[i:j], y[i:j]))
	}
}

// ReLU sets dst[i] = max(x[i], 0).
func ReLU(dst, x []float32) { map2(reluImpl, dst, x) }

// ReLU6 sets dst[i] = min(max(x[i], 0), 6).
func ReLU6(dst, x []float32) { map2(relu6Impl, dst, x) }

// ReLUBackward accumulates dx[i] += dy[i] where x[i] > 0, the subgradient
// PyTorch uses (zero at x == 0).
func ReLUBackward(x, dy, dx []float32) { map3(reluBackwardInto, dx, x, dy) }

// ReLU6Backward accumulates dx[i] += dy[i] where 0 < x[i] < 6, matching
// PyTorch's hardtanh backward (no gradient at either bound).
func ReLU6Backward(x, dy, dx []float32) { map3(relu6BackwardInto, dx, x, dy) }

// reluBackwardInto and relu6BackwardInto put the output first for map3.
func reluBackwardInto(dx, x, dy []float32)  { reluBackwardImpl(x, dy, dx) }
func relu6BackwardInto(dx, x, dy []float32) { relu6BackwardImpl(x, dy, dx) }

// parallelMinWork is the number of element operations below which a
// kernel stays on the calling goroutine: smaller jobs finish before the
// pool would have woken up, and stay free of allocations.
const parallelMinWork = 1 << 16
