package kernels

import "sync"

// Splitting this package's memory-bound kernels (elementwise, reductions,
// per-channel, pooling, fake quantization) over the worker pool.
//
// Work is cut into fixed blocks whose size does not depend on the number
// of workers, and reductions add their per-block partial sums in block
// order, so every result is the same for any GOMAXPROCS. Operands travel
// in a pooled task with a cached method value instead of a closure, so a
// parallel call allocates nothing once warm.

// blockFloats is the block of a split slice: 64 KB per operand.
const blockFloats = 1 << 14

// numBlocks is the number of blocks covering n floats.
func numBlocks(n int) int { return (n + blockFloats - 1) / blockFloats }

// blockRange is the float range of block b of n floats.
func blockRange(b, n int) (lo, hi int) { return b * blockFloats, min((b+1)*blockFloats, n) }

// task carries one kernel call's operands to the workers.
type task struct {
	s     [7][]float32
	f     [4]float32
	n     [3]int
	win   [6]int // CopyWindows: dst plane, offset, row stride; src the same
	flag  bool   // CopyWindows, FlipRows: add rather than store; max-pool backward: clear first
	act   Activation
	pool  PoolParams
	arg   []int32
	fn2   func(a, b []float32)
	fn3   func(a, b, c []float32)
	fnS   func(alpha float32, a, b []float32)
	fnR   func(x []float32) float64
	part  []float64 // per-item partial sums
	adam  AdamRule
	radam RAdamRule
	body  func(t *task, lo, hi int)
	run   func(lo, hi int) // t.exec, bound once when the task is made
}

var tasks = sync.Pool{New: func() any {
	t := new(task)
	t.run = t.exec
	return t
}}

func (t *task) exec(lo, hi int) { t.body(t, lo, hi) }

// newTask returns a pooled task that will run body.
func newTask(body func(t *task, lo, hi int)) *task {
	t := tasks.Get().(*task)
	t.body = body
	return t
}

// partials sizes the task's partial sums for items items, zeroed.
func (t *task) partials(items int) {
	if cap(t.part) < items {
		t.part = make([]float64, items)
	}
	t.part = t.part[:items]
	clear(t.part)
}

// sumPartials adds the partial sums in item order.
func (t *task) sumPartials() float64 {
	var s float64
	for _, v := range t.part {
		s += v
	}
	return s
}

// spread runs the task over items [0, items): on the pool when work (the
// element count behind them) is worth it, else on the caller.
func (t *task) spread(items, work int) {
	if work < parallelMinWork || items < 2 {
		t.body(t, 0, items)
	} else {
		parallelFor(items, t.run)
	}
}

// release returns the task to its pool without holding on to operands.
func (t *task) release() {
	t.s, t.arg = [7][]float32{}, nil
	t.fn2, t.fn3, t.fnS, t.fnR, t.body = nil, nil, nil, nil, nil
	tasks.Put(t)
}

// map2 runs fn over equal blocks of a and b (len(a) floats).
func map2(fn func(a, b []float32), a, b []float32) {
	n := len(a)
	if n <= blockFloats {
		fn(a, b[:n])
		return
	}
	t := newTask(map2Blocks)
	t.fn2, t.s[0], t.s[1] = fn, a, b[:n]
	t.spread(numBlocks(n), n)
	t.release()
}

func map2Blocks(t *task, lo, hi int) {
	a, b := t.s[0], t.s[1]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(a))
		t.fn2(a[i:j], b[i:j])
	}
}

// map3 runs fn over equal blocks of a, b and c (len(a) floats).
func map3(fn func(a, b, c []float32), a, b, c []float32) {
	n := len(a)
	if n <= blockFloats {
		fn(a, b[:n], c[:n])
		return
	}
	t := newTask(map3Blocks)
	t.fn3, t.s[0], t.s[1], t.s[2] = fn, a, b[:n], c[:n]
	t.spread(numBlocks(n), n)
	t.release()
}

func map3Blocks(t *task, lo, hi int) {
	a, b, c := t.s[0], t.s[1], t.s[2]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(a))
		t.fn3(a[i:j], b[i:j], c[i:j])
	}
}

// mapScalar runs fn(alpha, ., .) over equal blocks of a and b (len(b)
// floats).
func mapScalar(fn func(alpha float32, a, b []float32), alpha float32, a, b []float32) {
	n := len(b)
	if n <= blockFloats {
		fn(alpha, a[:n], b)
		return
	}
	t := newTask(mapScalarBlocks)
	t.fnS, t.f[0], t.s[0], t.s[1] = fn, alpha, a[:n], b
	t.spread(numBlocks(n), n)
	t.release()
}

func mapScalarBlocks(t *task, lo, hi int) {
	a, b := t.s[0], t.s[1]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(b))
		t.fnS(t.f[0], a[i:j], b[i:j])
	}
}
