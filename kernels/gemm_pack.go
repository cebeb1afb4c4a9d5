package kernels

// The SGEMM driver's packers (docs/DESIGN.md, "Kernels"): op(B) into
// nr-column panels, stored, at row offsets, transposed or gathered, and
// op(A) into mr-row panels times alpha.

import "sync"

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
				j.kern.packB(nr, 1, j.b[j.rowOff[j.pc+p]+c0:], 0, j.bp[lo*kc*nr+p*nr:], kc*nr, full)
			}
		} else {
			j.kern.packB(nr, kc, j.b[base:], j.ldb, j.bp[lo*kc*nr:], kc*nr, full)
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
	// The kernel gets the rows' offsets through a function value, which
	// the compiler cannot see into: on the stack they would escape, an
	// allocation per panel.
	offs := panelOffsets.Get().(*[16]int)
	for panel := lo; panel < hi; panel++ {
		dst := j.bp[panel*kc*nr : (panel+1)*kc*nr]
		col0 := j.jc + panel*nr
		w := min(nr, j.jc+j.nc-col0)
		if w == 16 && nr == 16 {
			var rows [16][]float32
			for jj := range rows {
				offs[jj] = start(col0 + jj)
				rows[jj] = j.b[offs[jj]:][:kc] // bounds-checks the whole row
			}
			p0 := 0
			if kq := kc / 8; j.kern.packBT16 != nil && kq > 0 {
				j.kern.packBT16(kq, j.b, offs, dst)
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
	panelOffsets.Put(offs)
}

// panelOffsets pools packB's row offsets of a transposed panel.
var panelOffsets = sync.Pool{New: func() any { return new([16]int) }}

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
		if w == nr && nr == 16 && j.kern.gather != nil && g.seg != nil {
			// In bounds: sgemmPrepacked checked the largest entry
			// against b for the last row, and a consecutive group's
			// masked load touches only its valid lanes.
			groups := (j.n + 7) / 8
			j.kern.gather(kc, j.b[c*g.plane:], g.plane, g.kk, t, g.tab[col0:], j.n, g.seg[col0/8:], groups, dst)
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
				packRows6(dst, j.a[base:], j.lda, kc, alpha, j.kern.packA6)
				continue
			case h == 24 && mr == 24 && j.kern.packA24 != nil && kc >= 8:
				// The last row, bounds-checked, ends what the kernel reads.
				_ = j.a[base+23*j.lda : base+23*j.lda+kc]
				kq := kc / 8
				j.kern.packA24(kq, j.a[base:], j.lda, alpha, dst)
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
// assembly packer packA6, when the path has one, does whole groups of
// four columns and the unrolled loop below the rest.
func packRows6(dst, a []float32, lda, kc int, alpha float32, packA6 func(kq int, a []float32, lda int, alpha float32, dst []float32)) {
	r0, r1, r2 := a[:kc], a[lda:lda+kc], a[2*lda:2*lda+kc]
	r3, r4, r5 := a[3*lda:3*lda+kc], a[4*lda:4*lda+kc], a[5*lda:5*lda+kc]
	dst = dst[:6*kc]
	p0 := 0
	if kq := kc / 4; packA6 != nil && kq > 0 {
		// r5 (bounds-checked above) ends the last row the assembly reads.
		packA6(kq, a, lda, alpha, dst)
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
