package kernels

// Packing a convolution's weights on the worker pool. A convolution packs
// all its weights before its tasks start (the GEMMs' A panels or the
// direct kernels' panels, rotated and transposed first for a backward
// pass); on the calling goroutine alone that left the other workers idle
// for about 80 ms of a 650 ms DGH step of resnet18 at 16 threads on the
// Xeon server, which packs every weight three times a step
// (docs/DESIGN.md, "Kernels"). The tasks are groups x k blocks x runs of
// panels; every element lands where the serial packers put it.

import "sync"

// weightPack is one convolution's packing: op(A) is each group's m x k
// weight, a's group g at a[g*aStride:] (row stride lda, transposed with
// transA), packed for the GEMMs (packWholeA's layout) or, with direct,
// for the direct kernels (packDirect's), group g at dst[g*size:].
type weightPack struct {
	transA, direct  bool
	m, k, lda       int
	a, dst          []float32
	aStride, size   int
	kb, blocks, run int // k block depth, blocks per group, panel runs per block
	packFn, flipFn  func(lo, hi int)
	// The flip: w[g][c][k'][kk] rotated into a[g][k'][c][kk] (cg, kg, kk
	// of the convolution undone).
	w          []float32
	cg, kg, kk int
}

var weightPacks = sync.Pool{New: func() any {
	wp := new(weightPack)
	wp.packFn, wp.flipFn = wp.pack, wp.flip
	return wp
}}

// packConvWeights packs groups weights into dst as described at
// weightPack, on the pool.
func packConvWeights(transA, direct bool, groups, m, k int, a []float32, lda, aStride int, dst []float32, size int) {
	wp := weightPacks.Get().(*weightPack)
	wp.transA, wp.direct, wp.m, wp.k, wp.lda = transA, direct, m, k, lda
	wp.a, wp.aStride, wp.dst, wp.size = a, aStride, dst, size
	wp.kb = kBlock(k)
	wp.blocks = (k + wp.kb - 1) / wp.kb
	wp.run = 1
	if !direct {
		// Runs of panels enough to give every worker a few tasks.
		panels := (m + active.gemm.mr - 1) / active.gemm.mr
		wp.run = max(1, min(panels, (4*parWorkers()+groups*wp.blocks-1)/(groups*wp.blocks)))
	}
	parallelFor(groups*wp.blocks*wp.run, wp.packFn)
	wp.a, wp.dst = nil, nil
	weightPacks.Put(wp)
}

// pack packs tasks [lo, hi): group, k block, run of panels.
func (wp *weightPack) pack(lo, hi int) {
	for t := lo; t < hi; t++ {
		g, b, r := t/(wp.blocks*wp.run), t/wp.run%wp.blocks, t%wp.run
		pc := b * wp.kb
		kc := min(wp.kb, wp.k-pc)
		a, dst := wp.a[g*wp.aStride:], wp.dst[g*wp.size:]
		if wp.direct {
			packDirect(&active.conv, wp.m, wp.k, pc, kc, a, dst)
			continue
		}
		j := gemmJobs.Get().(*gemmJob)
		j.transA, j.m, j.k, j.alpha, j.a, j.lda = wp.transA, wp.m, wp.k, 1, a, wp.lda
		j.kern, j.mr = &active.gemm, active.gemm.mr
		j.pc, j.kc = pc, kc
		mPad := roundUp(wp.m, j.mr)
		panels := mPad / j.mr
		p0, p1 := r*panels/wp.run, (r+1)*panels/wp.run
		i0 := p0 * j.mr
		if p1 > p0 {
			j.packA(dst[mPad*pc+i0*kc:], i0, min(p1*j.mr, wp.m)-i0)
		}
		j.a, j.kern = nil, nil
		gemmJobs.Put(j)
	}
}

// flipConvWeights writes into dst, on the pool, each group's weights w
// ([cg][kg][kk] per group, of the convolution a backward pass undoes)
// transposed per group and rotated 180 degrees: dst[g][k][c][kk-1-i] =
// w[g][c][k][i].
func flipConvWeights(groups, cg, kg, kk int, w, dst []float32) {
	wp := weightPacks.Get().(*weightPack)
	wp.w, wp.a, wp.cg, wp.kg, wp.kk = w, dst, cg, kg, kk
	parallelFor(groups*cg, wp.flipFn)
	wp.w, wp.a = nil, nil
	weightPacks.Put(wp)
}

// flip flips rows [lo, hi) of (group, input channel) pairs, reading w
// in order (strided reads of a large w miss the cache every time).
func (wp *weightPack) flip(lo, hi int) {
	cg, kg, kk := wp.cg, wp.kg, wp.kk
	for t := lo; t < hi; t++ {
		g, c := t/cg, t%cg
		for k := range kg {
			src := wp.w[((g*cg+c)*kg+k)*kk:][:kk]
			dst := wp.a[((g*kg+k)*cg+c)*kk:][:kk]
			for i, v := range src {
				dst[kk-1-i] = v
			}
		}
	}
}
