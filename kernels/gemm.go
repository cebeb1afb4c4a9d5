package kernels

// SGEMM driver (SPEC section 1, kernels: GEMM micro-kernels). The layout is
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

// The micro-kernel in use and its tile; set by setGEMMPath.
//
// sgemmMicro(kc, a, b, c, ldc) adds the product of a packed mr x kc A panel
// (a[p*mr+i]) and a packed kc x nr B panel (b[p*nr+j]) to the tile
// c[i*ldc+j], i < mr, j < nr.
//
// sgemmPackB(nr, kc, b, ldb, dst, stride, panels) packs that many full
// nr-column panels of kc rows of B, panel q at dst[q*stride:]:
// dst[q*stride+p*nr+j] = b[p*ldb+q*nr+j].
var (
	sgemmMicro         = sgemmMicroGeneric
	sgemmPackB         = sgemmPackBGeneric
	gemmMR, gemmNR int = genericMR, genericNR
)

// sgemmPackA6, when set (by setGEMMPath), packs kq groups of four
// columns of six A rows the way packRows6 does; packRows6 finishes the
// rest. sgemmPackA24 likewise packs kq groups of eight columns of 24
// rows (packRows24).
var sgemmPackA6, sgemmPackA24 func(kq int, a []float32, lda int, alpha float32, dst []float32)

// sgemmMicroRows, when set, holds micro-kernels for the first h < mr rows
// of a packed A panel ([0][h] adds, [1][h] stores), which read and write
// only those rows of C: an edge panel then costs its own rows, not a
// whole tile's (a 16-row product on a 24-row tile would waste a third).
var sgemmMicroRows *[2][maxMR]func(kc int, a, b, c []float32, ldc int)

// packBT16On reports that packBT16 (gemm_amd64.go: the AVX2 kernel)
// packs 8*kq rows of a 16-column panel of B read from its transpose,
// dst[p*16+j] = b[offs[j]+p] (every offs[j]+8*kq within b). A plain
// function, not a variable like the other kernels: offs stays on the
// caller's stack only if the compiler sees the call.
var packBT16On bool

// sgemmGather, when set, packs one full nr-column panel of a gathered B
// (see sgemmGather16AVX2); packGathered does edge panels and the rest.
var sgemmGather func(kc int, src []float32, plane, kk, t0 int, tab []int32, ldt int, seg []int32, lds int, dst []float32)

// sgemmMicroSet, when set, is sgemmMicro storing the product into the
// tile instead of adding it, never reading C. A beta = 0 product uses it
// for its first k block instead of zeroing all of C first and reading the
// zeros back.
var sgemmMicroSet func(kc int, a, b, c []float32, ldc int)

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
	overwrite := beta == 0 && k > 0 && alpha != 0 && sgemmMicroSet != nil
	if !overwrite {
		scaleMatrix(m, n, beta, c, ldc)
	}
	if k == 0 || alpha == 0 {
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	j.overwrite, j.microSet = overwrite, sgemmMicroSet
	j.transA, j.transB = transA, transB
	j.m, j.n, j.k, j.alpha = m, n, k, alpha
	j.a, j.lda, j.b, j.ldb, j.c, j.ldc = a, lda, b, ldb, c, ldc
	j.mr, j.nr, j.micro, j.microRows = gemmMR, gemmNR, sgemmMicro, sgemmMicroRows
	j.run(parallel && m*n*k >= 48*48*48)
	j.a, j.b, j.c = nil, nil, nil
	j.overwrite, j.microSet = false, nil
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
	return (m + gemmMR - 1) / gemmMR * gemmMR * k
}

// packWholeA packs alpha*op(A) (m x k) once, for sgemmPrepacked to reuse
// across many products with the same A (a convolution's weights against
// every slab of unfolded input). Block pc of kc rows of k starts at
// mPad*pc and holds its mr-row panels in order, each kc*mr long.
func packWholeA(transA bool, m, k int, alpha float32, a []float32, lda int, dst []float32) {
	checkMatrix("A", transA, m, k, a, lda)
	j := gemmJobs.Get().(*gemmJob)
	j.transA, j.m, j.k, j.alpha, j.a, j.lda, j.mr = transA, m, k, alpha, a, lda, gemmMR
	mPad := (m + gemmMR - 1) / gemmMR * gemmMR
	kb := kBlock(k)
	for pc := 0; pc < k; pc += kb {
		j.pc, j.kc = pc, min(kb, k-pc)
		j.packA(dst[mPad*pc:], 0, m)
	}
	j.a = nil
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
	if tiled {
		mPad, nPad := (m+gemmMR-1)/gemmMR*gemmMR, (n+gemmNR-1)/gemmNR*gemmNR
		if ldc < nPad {
			panic(fmt.Sprintf("kernels.sgemm: tiled C has ldc %d < %d", ldc, nPad))
		}
		checkMatrix("C", false, mPad, nPad, c, ldc)
	}
	checkMatrix("C", false, m, n, c, ldc)
	// As in sgemm: a beta = 0 product stores its first k block rather
	// than clearing C and adding to the zeros.
	overwrite := beta == 0 && k > 0 && sgemmMicroSet != nil
	if !overwrite {
		scaleMatrix(m, n, beta, c, ldc)
	}
	if k == 0 {
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	j.transB, j.m, j.n, j.k, j.tiled = false, m, n, k, tiled
	j.overwrite, j.microSet = overwrite, sgemmMicroSet
	j.pre, j.b, j.ldb, j.rowOff, j.gather, j.c, j.ldc = pre, b, ldb, rowOff, gather, c, ldc
	j.mr, j.nr, j.micro, j.microRows = gemmMR, gemmNR, sgemmMicro, sgemmMicroRows
	j.run(parallel && m*n*k >= 48*48*48)
	j.pre, j.b, j.rowOff, j.gather, j.c, j.tiled = nil, nil, nil, colGather{}, nil, false
	j.overwrite, j.microSet = false, nil
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
	j.overwrite, j.microSet = false, nil
	j.pre, j.b, j.ldb, j.rowOff, j.gather, j.c, j.ldc = pre, b, 0, colOff, colGather{}, c, ldc
	j.mr, j.nr, j.micro, j.microRows = gemmMR, gemmNR, sgemmMicro, sgemmMicroRows
	j.run(parallel && m*n*k >= 48*48*48)
	j.pre, j.b, j.rowOff, j.c = nil, nil, nil, nil
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
	mr, nr         int
	micro          func(kc int, a, b, c []float32, ldc int)
	microRows      *[2][maxMR]func(kc int, a, b, c []float32, ldc int) // see sgemmMicroRows
	// overwrite: beta is 0 and C was not zeroed, so the first k block
	// (pc = 0) stores its tiles with microSet instead of adding them.
	overwrite bool
	microSet  func(kc int, a, b, c []float32, ldc int)

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

// packB packs column panels [lo, hi) of the current op(B) block:
// bp[panel*kc*nr + p*nr + jj] = op(B)[pc+p][jc+panel*nr+jj], zero padded.
// Both loops read the stored B sequentially, so the hardware prefetchers
// hide the memory latency.
func (j *gemmJob) packB(lo, hi int) {
	kc, nr := j.kc, j.nr
	if j.gather.tab != nil {
		j.packGathered(lo, hi)
		return
	}
	c0, c1 := j.jc+lo*nr, min(j.jc+hi*nr, j.jc+j.nc) // stored columns covered
	full := (c1 - c0) / nr                           // panels with nr columns
	if !j.transB {
		base := j.pc*j.ldb + c0
		if j.rowOff != nil {
			// Rows at arbitrary offsets (a convolution's padded input).
			for p := range kc {
				sgemmPackB(nr, 1, j.b[j.rowOff[j.pc+p]+c0:], 0, j.bp[lo*kc*nr+p*nr:], kc*nr, full)
			}
		} else {
			sgemmPackB(nr, kc, j.b[base:], j.ldb, j.bp[lo*kc*nr:], kc*nr, full)
		}
		if w := c1 - c0 - full*nr; w > 0 {
			for p := range kc {
				row := base + p*j.ldb
				if j.rowOff != nil {
					row = j.rowOff[j.pc+p] + c0
				}
				off := (lo+full)*kc*nr + p*nr
				d := j.bp[off : off+nr]
				copy(d, j.b[row+full*nr:][:w])
				clear(d[w:])
			}
		}
		return
	}
	// Stored row j of B^T starts at j*ldb, or at rowOff[j] when set.
	start := func(col int) int {
		if j.rowOff != nil {
			return j.rowOff[col] + j.pc
		}
		return col*j.ldb + j.pc
	}
	for panel := lo; panel < hi; panel++ {
		dst := j.bp[panel*kc*nr : (panel+1)*kc*nr]
		col0 := j.jc + panel*nr
		w := min(nr, j.jc+j.nc-col0)
		if w == 16 && nr == 16 {
			var offs [16]int
			var rows [16][]float32
			for jj := range rows {
				offs[jj] = start(col0 + jj)
				rows[jj] = j.b[offs[jj]:][:kc] // bounds-checks the whole row
			}
			p0 := 0
			if kq := kc / 8; packBT16On && kq > 0 {
				packBT16(kq, j.b, &offs, dst)
				p0 = 8 * kq
			}
			for jj := range rows {
				rows[jj] = rows[jj][p0:]
			}
			packCols16(dst[p0*16:], &rows)
			continue
		}
		if w < nr {
			clear(dst)
		}
		for jj := range w {
			src := j.b[start(col0+jj):]
			src = src[:kc]
			for p, v := range src {
				dst[p*nr+jj] = v
			}
		}
	}
}

// packCols16 packs sixteen stored rows of B^T, each kc long, as one
// panel: dst[p*16+jj] = rows[jj][p]. Sixteen loads and one contiguous
// run of stores per p, unrolled: the loop over each row with a strided
// store per element took about 1 ns an element, as long as the products
// of a convolution's weight gradient (B = im2col^T, 16 to 64 rows of A).
// Where packBT16 runs it packs the last kc%8 rows only.
func packCols16(dst []float32, rows *[16][]float32) {
	kc := len(rows[0])
	r0, r1, r2, r3 := rows[0][:kc], rows[1][:kc], rows[2][:kc], rows[3][:kc]
	r4, r5, r6, r7 := rows[4][:kc], rows[5][:kc], rows[6][:kc], rows[7][:kc]
	r8, r9, r10, r11 := rows[8][:kc], rows[9][:kc], rows[10][:kc], rows[11][:kc]
	r12, r13, r14, r15 := rows[12][:kc], rows[13][:kc], rows[14][:kc], rows[15][:kc]
	dst = dst[:16*kc]
	for p := range kc {
		d := dst[p*16 : p*16+16 : p*16+16]
		d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
		d[4], d[5], d[6], d[7] = r4[p], r5[p], r6[p], r7[p]
		d[8], d[9], d[10], d[11] = r8[p], r9[p], r10[p], r11[p]
		d[12], d[13], d[14], d[15] = r12[p], r13[p], r14[p], r15[p]
	}
}

// packGathered is packB for a gathered B (colGather).
func (j *gemmJob) packGathered(lo, hi int) {
	g, kc, nr := &j.gather, j.kc, j.nr
	for panel := lo; panel < hi; panel++ {
		dst := j.bp[panel*kc*nr : (panel+1)*kc*nr]
		col0 := j.jc + panel*nr
		w := min(nr, j.jc+j.nc-col0)
		c, t := j.pc/g.kk, j.pc%g.kk // row pc is tap t of channel c
		if w == nr && nr == 16 && sgemmGather != nil && g.seg != nil {
			// In bounds: sgemmPrepacked checked the largest entry
			// against b for the last row, and a consecutive group's
			// masked load touches only its valid lanes.
			groups := (j.n + 7) / 8
			sgemmGather(kc, j.b[c*g.plane:], g.plane, g.kk, t, g.tab[col0:], j.n, g.seg[col0/8:], groups, dst)
			continue
		}
		for p := range kc {
			src := j.b[c*g.plane:]
			d := dst[p*nr : p*nr+nr]
			gatherRow(d[:w], src, g.tab[t*j.n+col0:][:w])
			clear(d[w:])
			if t++; t == g.kk {
				c, t = c+1, 0
			}
		}
	}
}

// gatherRow sets d[i] = src[idx[i]], or 0 where idx[i] is -1.
func gatherRow(d, src []float32, idx []int32) {
	d = d[:len(idx)]
	for i, o := range idx {
		var v float32
		if o >= 0 {
			v = src[o]
		}
		d[i] = v
	}
}

// packA packs rows [i0, i0+mc) of the current op(A) block, times alpha:
// ap[panel*kc*mr + p*mr + ii] = alpha*op(A)[i0+panel*mr+ii][pc+p].
func (j *gemmJob) packA(ap []float32, i0, mc int) {
	kc, mr, alpha := j.kc, j.mr, j.alpha
	for panel := 0; panel*mr < mc; panel++ {
		dst := ap[panel*kc*mr : (panel+1)*kc*mr]
		row0 := i0 + panel*mr
		h := min(mr, i0+mc-row0)
		if h < mr {
			clear(dst)
		}
		if !j.transA {
			// Walk k once, reading the panel's rows side by side, so the
			// packed panel is written sequentially.
			base := row0*j.lda + j.pc
			switch {
			case h == 6 && mr == 6:
				packRows6(dst, j.a[base:], j.lda, kc, alpha)
				continue
			case h == 24 && mr == 24 && sgemmPackA24 != nil && kc >= 8:
				// The last row, bounds-checked, ends what the kernel reads.
				_ = j.a[base+23*j.lda : base+23*j.lda+kc]
				kq := kc / 8
				sgemmPackA24(kq, j.a[base:], j.lda, alpha, dst)
				if p0 := 8 * kq; p0 < kc {
					packRowsScalar(dst[p0*mr:], j.a[base+p0:], j.lda, kc-p0, h, mr, alpha)
				}
				continue
			}
			packRowsScalar(dst, j.a[base:], j.lda, kc, h, mr, alpha)
			continue
		}
		if h == 6 && mr == 6 {
			packCols6(dst, j.a[j.pc*j.lda+row0:], j.lda, kc, alpha)
			continue
		}
		for p := range kc {
			src := j.a[(j.pc+p)*j.lda+row0:]
			src = src[:h]
			d := dst[p*mr : p*mr+h]
			for ii, v := range src {
				d[ii] = alpha * v
			}
		}
	}
}

// packRowsScalar packs h rows of kc floats (row stride lda) times alpha
// into a panel of mr rows: dst[p*mr+i] = alpha*a[i*lda+p], i < h.
func packRowsScalar(dst, a []float32, lda, kc, h, mr int, alpha float32) {
	var rows [maxMR][]float32
	for ii := range h {
		rows[ii] = a[ii*lda:][:kc]
	}
	for p := range kc {
		d := dst[p*mr : p*mr+h]
		for ii := range d {
			d[ii] = alpha * rows[ii][p]
		}
	}
}

// packCols6 packs six columns of kc rows (row stride lda) times alpha:
// dst[p*6+i] = alpha*a[p*lda+i], unrolled (the loop over a slice of six
// per row took 2.5 ns a float, 0.9 ns now: a strided convolution's
// backward to the input packs all its weights this way on every call).
func packCols6(dst, a []float32, lda, kc int, alpha float32) {
	dst = dst[:6*kc]
	for p := range kc {
		s := a[p*lda:][:6:6]
		d := dst[p*6:][:6:6]
		d[0], d[1], d[2] = alpha*s[0], alpha*s[1], alpha*s[2]
		d[3], d[4], d[5] = alpha*s[3], alpha*s[4], alpha*s[5]
	}
}

// packRows6 packs six rows of kc floats (row stride lda) times alpha,
// interleaved: dst[p*6+i] = alpha*a[i*lda+p]. It is the AVX2 path's hot
// packing loop (a tenth of a 512 SGEMM's time in scalar Go): the
// assembly packer, when present, does whole groups of four columns and the
// unrolled loop below the rest.
func packRows6(dst, a []float32, lda, kc int, alpha float32) {
	r0, r1, r2 := a[:kc], a[lda:lda+kc], a[2*lda:2*lda+kc]
	r3, r4, r5 := a[3*lda:3*lda+kc], a[4*lda:4*lda+kc], a[5*lda:5*lda+kc]
	dst = dst[:6*kc]
	p0 := 0
	if kq := kc / 4; sgemmPackA6 != nil && kq > 0 {
		// r5 (bounds-checked above) ends the last row the assembly reads.
		sgemmPackA6(kq, a, lda, alpha, dst)
		p0 = 4 * kq
	}
	for p := p0; p < kc; p++ {
		d := dst[p*6 : p*6+6 : p*6+6]
		d[0] = alpha * r0[p]
		d[1] = alpha * r1[p]
		d[2] = alpha * r2[p]
		d[3] = alpha * r3[p]
		d[4] = alpha * r4[p]
		d[5] = alpha * r5[p]
	}
}

// maxMR bounds every path's mr.
const maxMR = 24

// copyRow copies one packed B row of len(d) floats, with fixed-size array
// copies for the tile widths in use (a memmove call per 64 bytes costs
// more than the copy).
func copyRow(d, s []float32) {
	switch len(d) {
	case 16:
		*(*[16]float32)(d) = *(*[16]float32)(s)
	case 12:
		*(*[12]float32)(d) = *(*[12]float32)(s)
	case 4:
		*(*[4]float32)(d) = *(*[4]float32)(s)
	default:
		copy(d, s)
	}
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
	micro, set := j.micro, j.overwrite && j.pc == 0
	var rows *[maxMR]func(kc int, a, b, c []float32, ldc int)
	if j.microRows != nil {
		rows = &j.microRows[0]
	}
	if set {
		micro = j.microSet
		if j.microRows != nil {
			rows = &j.microRows[1]
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
				k, add := micro, j.micro
				if h < mr && rows != nil {
					// Only the panel's rows: C past them is not touched.
					k, add = rows[h], j.microRows[0][h]
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
