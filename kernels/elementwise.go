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
func Add(dst, a, b []float32) {
	n := len(dst)
	addImpl(dst, a[:n], b[:n])
}

// Sub sets dst[i] = a[i] - b[i].
func Sub(dst, a, b []float32) {
	n := len(dst)
	subImpl(dst, a[:n], b[:n])
}

// Mul sets dst[i] = a[i] * b[i].
func Mul(dst, a, b []float32) {
	n := len(dst)
	mulImpl(dst, a[:n], b[:n])
}

// Scale sets dst[i] = alpha * x[i].
func Scale(dst []float32, alpha float32, x []float32) {
	scaleImpl(dst, alpha, x[:len(dst)])
}

// Axpy computes y += alpha*x over len(y) elements.
func Axpy(alpha float32, x, y []float32) {
	axpyImpl(alpha, x[:len(y)], y)
}

// Dot returns sum x[i]*y[i] over len(x) elements. The SIMD paths keep
// several float32 partial sums, so the last bits differ between paths.
func Dot(x, y []float32) float32 {
	return dotImpl(x, y[:len(x)])
}

// ReLU sets dst[i] = max(x[i], 0).
func ReLU(dst, x []float32) { reluImpl(dst, x[:len(dst)]) }

// ReLU6 sets dst[i] = min(max(x[i], 0), 6).
func ReLU6(dst, x []float32) { relu6Impl(dst, x[:len(dst)]) }

// ReLUBackward accumulates dx[i] += dy[i] where x[i] > 0, the subgradient
// PyTorch uses (zero at x == 0).
func ReLUBackward(x, dy, dx []float32) {
	n := len(dx)
	reluBackwardImpl(x[:n], dy[:n], dx)
}

// ReLU6Backward accumulates dx[i] += dy[i] where 0 < x[i] < 6, matching
// PyTorch's hardtanh backward (no gradient at either bound).
func ReLU6Backward(x, dy, dx []float32) {
	n := len(dx)
	relu6BackwardImpl(x[:n], dy[:n], dx)
}

// parallelMinWork is the number of element operations below which a
// kernel stays on the calling goroutine: smaller jobs finish before the
// pool would have woken up, and stay free of allocations.
const parallelMinWork = 1 << 16
