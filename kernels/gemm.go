package kernels

// SGEMM driver (docs/DESIGN.md, "Kernels": GEMM micro-kernels). The layout is
// the classic Goto/BLIS one: op(B) is packed kc x nc into column panels nr
// wide, op(A) is packed mc x kc into row panels mr tall (alpha folded in),
// and a register-blocked micro-kernel multiplies one A panel by one B
// panel into an mr x nr tile of C. Only the micro-kernel and its tile size
// depend on the kernel path.

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
)

// Cache blocking. A kc x nr B panel (16 KiB at nr=16) stays in L1, an
// mc x kc A block (120 KiB) in L2, the packed kc x nc B block in L3.
// gemmMC is a multiple of every path's mr (4, 6, 8).
const (
	gemmKC = 256
	gemmMC = 120
	gemmNC = 3072
)

// gemmKernels is the GEMM family's dispatch table: the micro-kernel, its
// tile and the packers around it. Only these depend on the path.
type gemmKernels struct {
	// mr x nr is the micro-kernel's tile (gemmMC is a multiple of every
	// path's mr, 48 of every nr).
	mr, nr int
	// micro(kc, a, b, c, ldc) adds the product of a packed mr x kc A
	// panel (a[p*mr+i]) and a packed kc x nr B panel (b[p*nr+j]) to the
	// tile c[i*ldc+j], i < mr, j < nr.
	micro func(kc int, a, b, c []float32, ldc int)
	// microSet is micro storing the product into the tile instead of
	// adding it, never reading C: a beta = 0 product uses it for its
	// first k block instead of zeroing all of C first and reading the
	// zeros back. Nil: the product zeroes C and micro adds.
	microSet func(kc int, a, b, c []float32, ldc int)
	// packB(nr, kc, b, ldb, dst, stride, panels) packs that many full
	// nr-column panels of kc rows of B, panel q at dst[q*stride:]:
	// dst[q*stride+p*nr+j] = b[p*ldb+q*nr+j].
	packB func(nr, kc int, b []float32, ldb int, dst []float32, stride, panels int)
	// packA6(kq, a, lda, alpha, dst) packs kq groups of four columns of
	// six A rows the way packRows6 does (mr = 6 only); packRows6 finishes
	// the rest. Nil: packRows6's loop does it all.
	packA6 func(kq int, a []float32, lda int, alpha float32, dst []float32)
	// packBT16(kq, b, offs, dst) packs 8*kq rows of a 16-column panel of
	// B read from its transpose, dst[p*16+j] = b[offs[j]+p] (every
	// offs[j]+8*kq within b); packCols16 finishes the rest. Nil:
	// packCols16 does it all.
	packBT16 func(kq int, b []float32, offs *[16]int, dst []float32)
	// gather packs one full 16-column panel of a gathered B (see
	// sgemmGather16AVX2); packGathered does edge panels and the rest, and
	// all of it where gather is nil. Convolutions build the tables'
	// segments (colGather.setSegments) only for a path that has it.
	gather func(kc int, src []float32, plane, kk, t0 int, tab []int32, ldt int, seg []int32, lds int, dst []float32)
	// packA24(kq, a, lda, alpha, dst) packs kq groups of eight columns of
	// 24 A rows the way packRowsScalar does (mr = 24 only), which
	// finishes the rest. Nil: packRowsScalar does it all.
	packA24 func(kq int, a []float32, lda int, alpha float32, dst []float32)
	// microRows, where set, holds micro-kernels for the first h < mr rows
	// of a packed A panel ([0][h] adds, [1][h] stores), which read and
	// write only those rows of C: an edge panel then costs its own rows,
	// not a whole tile's (a 16-row product on a 24-row tile would waste a
	// third). Nil: edge panels run micro on a scratch tile.
	microRows *[2][maxMR]func(kc int, a, b, c []float32, ldc int)
}

// gemmParallelMinWork is the m*n*k below which a product stays on the
// calling goroutine: a 48^3 product finishes before the pool wakes up.
const gemmParallelMinWork = 48 * 48 * 48

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices,
// where op(X) is X or its transpose. op(A) is m x k, op(B) is k x n, C is
// m x n; lda, ldb, ldc are the row strides of the stored A, B and C. When
// beta is 0, C is overwritten without being read (NaNs in C do not leak).
// It uses the worker pool for large products.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, true)
}

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int, parallel bool) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels.Sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	checkMatrix("A", transA, m, k, a, lda)
	checkMatrix("B", transB, k, n, b, ldb)
	checkMatrix("C", false, m, n, c, ldc)
	kern := &active.gemm
	overwrite := beta == 0 && k > 0 && alpha != 0 && kern.microSet != nil
	if !overwrite {
		scaleMatrix(m, n, beta, c, ldc)
	}
	if k == 0 || alpha == 0 {
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	j.overwrite, j.kern = overwrite, kern
	j.transA, j.transB = transA, transB
	j.m, j.n, j.k, j.alpha = m, n, k, alpha
	j.a, j.lda, j.b, j.ldb, j.c, j.ldc = a, lda, b, ldb, c, ldc
	j.mr, j.nr = kern.mr, kern.nr
	j.run(parallel && m*n*k >= gemmParallelMinWork)
	j.a, j.b, j.c = nil, nil, nil
	j.overwrite, j.kern = false, nil
	gemmJobs.Put(j)
}

// kBlock is the depth of the k blocks of a product of depth k: at most
// gemmKC, as even as possible (576 = 3 x 192 rather than 256+256+64,
// whose short last block pays the tile's load and store for few steps),
// a multiple of 4 (the micro-kernels' unroll) unless k is smaller.
func kBlock(k int) int {
	blocks := (k + gemmKC - 1) / gemmKC
	return min(gemmKC, roundUp((k+blocks-1)/max(blocks, 1), 4))
}

// packedASize is the length packWholeA needs for an m x k op(A).
func packedASize(m, k int) int {
	return roundUp(m, active.gemm.mr) * k
}

// packWholeA packs alpha*op(A) (m x k) once, for sgemmPrepacked to reuse
// across many products with the same A (a convolution's weights against
// every slab of unfolded input). Block pc of kc rows of k starts at
// mPad*pc and holds its mr-row panels in order, each kc*mr long.
func packWholeA(transA bool, m, k int, alpha float32, a []float32, lda int, dst []float32) {
	checkMatrix("A", transA, m, k, a, lda)
	j := gemmJobs.Get().(*gemmJob)
	j.transA, j.m, j.k, j.alpha, j.a, j.lda = transA, m, k, alpha, a, lda
	j.kern, j.mr = &active.gemm, active.gemm.mr
	mPad := roundUp(m, j.mr)
	kb := kBlock(k)
	for pc := 0; pc < k; pc += kb {
		j.pc, j.kc = pc, min(kb, k-pc)
		j.packA(dst[mPad*pc:], 0, m)
	}
	j.a, j.kern = nil, nil
	gemmJobs.Put(j)
}

// colGather describes a B that is gathered rather than stored: element
// (r, q) is b[(r/kk)*plane + tab[(r%kk)*n+q]], or 0 where that entry is
// -1, n being the product's column count. Row r = c*kk+t of an unfolded
// convolution input is tap t of channel c; tab holds, per tap, where
// each output position's input sits in a channel plane (-1 in the
// padding), so packing B is the whole im2col.
type colGather struct {
	tab       []int32 // nil: B is stored, not gathered
	kk, plane int
	max       int // the largest entry of tab
	// seg, when set, holds for each tap t and each group of 8 columns
	// h the base of the group's indices at seg[t*((n+7)/8)+h] when they
	// run consecutively (ignoring -1), else math.MinInt32 (setSegments).
	seg []int32
}

// setSegments fills g.seg (kk*ceil(n/8) entries) from g.tab, for a
// product of n columns: groups of eight consecutive indices are packed
// with one masked load instead of a gather.
func (g *colGather) setSegments(n int, seg []int32) {
	groups := (n + 7) / 8
	g.seg = seg[:g.kk*groups]
	for t := range g.kk {
		for h := range groups {
			lanes := g.tab[t*n+8*h : t*n+min(8*h+8, n)]
			base, ok := int32(0), true
			found := false
			for j, o := range lanes {
				switch {
				case o < 0:
				case !found:
					base, found = o-int32(j), true
				case o != base+int32(j):
					ok = false
				}
			}
			if !ok {
				base = math.MinInt32
			}
			g.seg[t*groups+h] = base
		}
	}
}

// sgemmPrepacked is sgemm with op(A) already packed by packWholeA
// (alpha included) on the current path. With rowOff set, row p of B
// starts at b[rowOff[p]] (ldb unused): a convolution's rows are shifted
// windows of its padded input. With gather set, B is gathered from b
// (ldb and rowOff unused). With tiled set, C is scratch with room
// for whole tiles (ceil(m/mr)*mr rows, ldc >= ceil(n/nr)*nr) whose
// padding the caller ignores, so edge tiles need no detour.
func sgemmPrepacked(m, n, k int, pre []float32, b []float32, ldb int, rowOff []int, gather colGather,
	beta float32, c []float32, ldc int, tiled, parallel bool) {
	if m == 0 || n == 0 {
		return
	}
	switch {
	case gather.tab != nil:
		if k > 0 && (len(gather.tab) < gather.kk*n || (k-1)/gather.kk*gather.plane+gather.max >= len(b)) {
			panic(fmt.Sprintf("kernels.sgemm: gathered B of %d rows reaches element %d of %d",
				k, (k-1)/gather.kk*gather.plane+gather.max, len(b)))
		}
	case rowOff == nil:
		checkMatrix("B", false, k, n, b, ldb)
	case k > 0 && (len(rowOff) < k || slices.Max(rowOff[:k])+n > len(b)):
		panic(fmt.Sprintf("kernels.sgemm: B rows at offsets up to %d, %d long, overrun %d elements",
			slices.Max(rowOff[:k]), n, len(b)))
	}
	kern := &active.gemm
	if tiled {
		mPad, nPad := roundUp(m, kern.mr), roundUp(n, kern.nr)
		if ldc < nPad {
			panic(fmt.Sprintf("kernels.sgemm: tiled C has ldc %d < %d", ldc, nPad))
		}
		checkMatrix("C", false, mPad, nPad, c, ldc)
	}
	checkMatrix("C", false, m, n, c, ldc)
	// As in sgemm: a beta = 0 product stores its first k block rather
	// than clearing C and adding to the zeros.
	overwrite := beta == 0 && k > 0 && kern.microSet != nil
	if !overwrite {
		scaleMatrix(m, n, beta, c, ldc)
	}
	if k == 0 {
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	j.transB, j.m, j.n, j.k, j.tiled = false, m, n, k, tiled
	j.overwrite, j.kern = overwrite, kern
	j.pre, j.b, j.ldb, j.rowOff, j.gather, j.c, j.ldc = pre, b, ldb, rowOff, gather, c, ldc
	j.mr, j.nr = kern.mr, kern.nr
	j.run(parallel && m*n*k >= gemmParallelMinWork)
	j.pre, j.b, j.rowOff, j.gather, j.c, j.tiled = nil, nil, nil, colGather{}, nil, false
	j.overwrite, j.kern = false, nil
	gemmJobs.Put(j)
}

// sgemmPrepackedT is sgemmPrepacked (beta 1, C stored, not tiled) with
// B read from its transpose, stored row j (B's column j) starting at
// b[colOff[j]]: a convolution's unfolded input, transposed, whose rows
// are shifted windows of its padded image (the weight gradient).
func sgemmPrepackedT(m, n, k int, pre []float32, b []float32, colOff []int, c []float32, ldc int, parallel bool) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	if len(colOff) < n || slices.Max(colOff[:n])+k > len(b) {
		panic(fmt.Sprintf("kernels.sgemm: B^T rows at offsets up to %d, %d long, overrun %d elements",
			slices.Max(colOff[:n]), k, len(b)))
	}
	checkMatrix("C", false, m, n, c, ldc)
	j := gemmJobs.Get().(*gemmJob)
	j.transB, j.m, j.n, j.k, j.tiled = true, m, n, k, false
	j.overwrite, j.kern = false, &active.gemm
	j.pre, j.b, j.ldb, j.rowOff, j.gather, j.c, j.ldc = pre, b, 0, colOff, colGather{}, c, ldc
	j.mr, j.nr = j.kern.mr, j.kern.nr
	j.run(parallel && m*n*k >= gemmParallelMinWork)
	j.pre, j.b, j.rowOff, j.c, j.kern = nil, nil, nil, nil, nil
	j.transB = false
	gemmJobs.Put(j)
}

// checkMatrix panics when a stored matrix is too short for its shape:
// a caller bug, reported before any memory is touched.
func checkMatrix(name string, trans bool, rows, cols int, x []float32, ld int) {
	if trans {
		rows, cols = cols, rows
	}
	if rows == 0 || cols == 0 {
		return
	}
	if ld < cols || len(x) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("kernels.Sgemm: %s is %dx%d with ld=%d but has %d elements", name, rows, cols, ld, len(x)))
	}
}

// scaleMatrix sets C = beta*C; beta 0 writes zeros.
func scaleMatrix(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemmJob carries one Sgemm call; its method values are bound once so
// handing them to parallelFor allocates nothing.
type gemmJob struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
	pre            []float32 // op(A) packed by packWholeA, or nil
	rowOff         []int     // B row p starts at b[rowOff[p]] instead of b[p*ldb]
	gather         colGather // B gathered (sgemmPrepacked), or tab nil
	tiled          bool      // C has room for whole edge tiles (sgemmPrepacked)
	// kern is the path's table, read once per call; mr, nr its tile.
	kern   *gemmKernels
	mr, nr int
	// overwrite: beta is 0 and C was not zeroed, so the first k block
	// (pc = 0) stores its tiles with kern.microSet instead of adding them.
	overwrite bool

	// The current (jc, pc) block and how its compute is split.
	jc, nc, pc, kc int
	bp             []float32 // packed op(B) block
	mBlocks        int
	nSplit         int // panel groups per A block
	panels         int

	packFn, computeFn func(lo, hi int)
}

var gemmJobs = sync.Pool{New: func() any {
	j := new(gemmJob)
	j.packFn = j.packB
	j.computeFn = j.compute
	return j
}}

// scratchPool pools buffers (packed blocks, padded images, gather
// tables, edge tiles) by power-of-two capacity, so buffers of different
// sizes do not evict each other and warm calls allocate nothing.
type scratchPool[T any] [64]sync.Pool

func (sp *scratchPool[T]) get(n int) *[]T {
	class := bits.Len(uint(max(n, 1) - 1))
	p, _ := sp[class].Get().(*[]T)
	if p == nil {
		b := make([]T, 1<<class)
		p = &b
	}
	*p = (*p)[:n]
	return p
}

func (sp *scratchPool[T]) put(p *[]T) {
	sp[bits.Len(uint(cap(*p)-1))].Put(p)
}

var (
	scratch    scratchPool[float32]
	intScratch scratchPool[int32]
)

func getScratch(n int) *[]float32 { return scratch.get(n) }
func putScratch(p *[]float32)     { scratch.put(p) }

func (j *gemmJob) run(parallel bool) {
	workers := 1
	if parallel {
		workers = parWorkers()
	}
	bpBuf := getScratch(gemmKC * ((min(j.n, gemmNC) + j.nr - 1) / j.nr * j.nr))
	j.bp = *bpBuf
	for jc := 0; jc < j.n; jc += gemmNC {
		j.jc, j.nc = jc, min(gemmNC, j.n-jc)
		j.panels = (j.nc + j.nr - 1) / j.nr
		kb := kBlock(j.k)
		for pc := 0; pc < j.k; pc += kb {
			j.pc, j.kc = pc, min(kb, j.k-pc)
			// A blocks of whole mr-row panels, as even as possible, and
			// a multiple of the worker count so every worker gets the
			// same number of rows (a ragged last block of 32 rows left
			// one of two workers idle for a third of the time).
			mPanels := (j.m + j.mr - 1) / j.mr
			j.mBlocks = (mPanels + gemmMC/j.mr - 1) / (gemmMC / j.mr)
			if workers > 1 {
				j.mBlocks = min(mPanels, (j.mBlocks+workers-1)/workers*workers)
			}
			// Enough tasks to keep every worker busy: split the panels
			// of each A block when there are few A blocks.
			j.nSplit = 1
			if workers > 1 && j.mBlocks < 2*workers {
				j.nSplit = min(j.panels, (2*workers+j.mBlocks-1)/j.mBlocks)
			}
			if workers > 1 {
				parallelFor(j.panels, j.packFn)
				parallelFor(j.mBlocks*j.nSplit, j.computeFn)
			} else {
				j.packB(0, j.panels)
				j.compute(0, j.mBlocks)
			}
		}
	}
	j.bp = nil
	putScratch(bpBuf)
}

// block returns the first row and the row count of A block ib: the
// ceil(m/mr) row panels are dealt out evenly over the mBlocks blocks,
// each at most gemmMC rows.
func (j *gemmJob) block(ib int) (i0, mc int) {
	mPanels := (j.m + j.mr - 1) / j.mr
	lo, hi := ib*mPanels/j.mBlocks, (ib+1)*mPanels/j.mBlocks
	i0 = lo * j.mr
	return i0, min(hi*j.mr, j.m) - i0
}

// compute runs tasks [lo, hi): task t multiplies A block t/nSplit by
// panel group t%nSplit of the packed B block.
func (j *gemmJob) compute(lo, hi int) {
	mr, nr, kc := j.mr, j.nr, j.kc
	apBuf := getScratch(gemmMC*kc + mr*nr)
	ap := (*apBuf)[:gemmMC*kc]
	tile := (*apBuf)[gemmMC*kc:]
	packed := -1
	micro, set := j.kern.micro, j.overwrite && j.pc == 0
	var rows *[maxMR]func(kc int, a, b, c []float32, ldc int)
	if j.kern.microRows != nil {
		rows = &j.kern.microRows[0]
	}
	if set {
		micro = j.kern.microSet
		if j.kern.microRows != nil {
			rows = &j.kern.microRows[1]
		}
	}
	for t := lo; t < hi; t++ {
		ib, js := t/j.nSplit, t%j.nSplit
		i0, mc := j.block(ib)
		switch {
		case j.pre != nil:
			mPad := (j.m + mr - 1) / mr * mr
			ap = j.pre[mPad*j.pc+i0*kc:]
		case ib != packed:
			j.packA(ap, i0, mc)
			packed = ib
		}
		p0 := js * j.panels / j.nSplit
		p1 := (js + 1) * j.panels / j.nSplit
		for panel := p0; panel < p1; panel++ {
			bpan := j.bp[panel*kc*nr : (panel+1)*kc*nr]
			col0 := j.jc + panel*nr
			w := min(nr, j.jc+j.nc-col0)
			for ir := 0; ir < mc; ir += mr {
				apan := ap[ir*kc : ir*kc+mr*kc]
				h := min(mr, mc-ir)
				row0 := i0 + ir
				k, add := micro, j.kern.micro
				if h < mr && rows != nil {
					// Only the panel's rows: C past them is not touched.
					k, add = rows[h], j.kern.microRows[0][h]
				}
				if w == nr && (h == mr || rows != nil) || j.tiled {
					k(kc, apan, bpan, j.c[row0*j.ldc+col0:], j.ldc)
					continue
				}
				// Edge tile: compute into a full tile, add (or store)
				// the valid part.
				clear(tile)
				add(kc, apan, bpan, tile, nr)
				for ii := range h {
					crow := j.c[(row0+ii)*j.ldc+col0 : (row0+ii)*j.ldc+col0+w]
					if set {
						copy(crow, tile[ii*nr:])
						continue
					}
					for jj := range crow {
						crow[jj] += tile[ii*nr+jj]
					}
				}
			}
		}
	}
	putScratch(apBuf)
}
