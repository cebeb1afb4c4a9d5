package kernels

// Slabs across the batch (docs/DESIGN.md, "Kernels"): on small images a
// slab of output columns spans several images, so no tile is left mostly
// empty. The gathered route packs the slab's unfolded input straight from
// x through per-tap offset tables (one table serves every channel); with
// few channels im2col copies row segments into the slab instead. Backward
// to the input, dcol = w^T dy is added back through the same tables, or
// image by image through col2im.

// forward computes (group, slab) tasks [lo, hi): one slab of columns of
// the unfolded input (across images) gathered from x, times the group's
// packed weights, into a scratch tile, then scattered into y.
func (j *convJob) forward(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	kk := p.KH * p.KW
	rows := cg * kk
	hw, ohw := p.H*p.W, p.OutH()*p.OutW()
	total := p.N * ohw
	ldo := j.slabMax
	tab := intScratch.get(kk * ldo)
	seg := intScratch.get(kk * ((ldo + 7) / 8))
	out := getScratch(roundUp(kg, active.gemm.mr) * ldo)
	for t := lo; t < hi; t++ {
		g, sl := t/j.slabs, t%j.slabs
		q0, q1 := j.slabRange(sl, total)
		nq := q1 - q0
		gth := colGather{tab: (*tab)[:kk*nq], kk: kk, plane: hw}
		gth.max = colTable(p, q0, nq, p.C*hw, gth.tab)
		if active.gemm.gather != nil {
			gth.setSegments(nq, *seg)
		}
		x := j.x[(q0/ohw*p.C+g*cg)*hw:]
		sgemmPrepacked(kg, nq, rows, j.w[g*j.packedSize:], x, 0, nil, gth, 0, *out, ldo, true, j.parallelGEMM)
		j.storeSlab(g, q0, q1, *out, ldo)
	}
	intScratch.put(tab)
	intScratch.put(seg)
	putScratch(out)
}

// forwardIm2col computes (group, slab) tasks [lo, hi): one slab of j.slab
// columns of the unfolded input (across images) times the group's packed
// weights into a scratch tile, then scattered into y.
func (j *convJob) forwardIm2col(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	ohw := p.OutH() * p.OutW()
	total := p.N * ohw
	col := getScratch(rows * j.slab)
	ldo := roundUp(j.slab, active.gemm.nr)
	out := getScratch(roundUp(kg, active.gemm.mr) * ldo)
	for t := lo; t < hi; t++ {
		g, sl := t/j.slabs, t%j.slabs
		q0 := sl * j.slab
		nq := min(j.slab, total-q0)
		im2col(p, j.x[g*cg*p.H*p.W:], cg, q0, nq, *col)
		sgemmPrepacked(kg, nq, rows, j.w[g*j.packedSize:], *col, nq, nil, colGather{}, 0, *out, ldo, true, j.parallelGEMM)
		j.storeSlab(g, q0, q0+nq, *out, ldo)
	}
	putScratch(col)
	putScratch(out)
}

// storeSlab scatters a slab's output tile (group g's channels, row
// stride ldo, column i holding output column q0+i of [q0, q1)) into y
// through store. Column q is (n, s); each image's run of columns is
// contiguous in y.
func (j *convJob) storeSlab(g, q0, q1 int, out []float32, ldo int) {
	p := &j.p
	kg := p.K / p.Groups
	ohw := p.OutH() * p.OutW()
	for q := q0; q < q1; {
		n, s := q/ohw, q%ohw
		run := min(ohw-s, q1-q)
		for k := range kg {
			src := out[k*ldo+q-q0:][:run]
			dst := j.y[(n*p.K+g*kg+k)*ohw+s:][:run]
			j.store(g*kg+k, src, dst)
		}
		q += run
	}
}

// slabRange returns the columns [q0, q1) of slab sl.
func (j *convJob) slabRange(sl, total int) (q0, q1 int) {
	nr := active.gemm.nr
	q0 = sl * j.slabPanels / j.slabs * nr
	q1 = min(total, (sl+1)*j.slabPanels/j.slabs*nr)
	return q0, q1
}

// colTable writes, for each tap t = kh*KW+kw and each of the nq output
// positions q0, q0+1, ... (flattened over images as (n, oh, ow)), where
// that tap reads in a channel plane: tab[t*nq+i] is ih*W+iw plus
// imgStride times the image's index counted from image q0/(OH*OW), or
// -1 in the padding. It returns the largest entry.
func colTable(p *ConvParams, q0, nq, imgStride int, tab []int32) int {
	oh0, ow0 := p.OutH(), p.OutW()
	ohw := oh0 * ow0
	largest := -1
	for kh := range p.KH {
		for kw := range p.KW {
			row := tab[(kh*p.KW+kw)*nq:][:nq]
			n, s := 0, q0%ohw
			oh, ow := s/ow0, s%ow0
			dh, dw := kh*p.DilH-p.PadH, kw*p.DilW-p.PadW
			for i := range row {
				ih, iw := oh*p.StrideH+dh, ow*p.StrideW+dw
				o := -1
				if uint(ih) < uint(p.H) && uint(iw) < uint(p.W) {
					o = n*imgStride + ih*p.W + iw
					largest = max(largest, o)
				}
				row[i] = int32(o)
				if ow++; ow == ow0 {
					if ow, oh = 0, oh+1; oh == oh0 {
						oh, n = 0, n+1
					}
				}
			}
		}
	}
	return largest
}

// backwardData adds dx for tasks [lo, hi) of (group, chunk of imgChunk
// images) of a strided convolution: dcol = w[g]^T dy (packed in j.w) over
// slabs of the chunk's columns, dy gathered across images, each slab
// added into dx through the same tap tables as the forward gather.
func (j *convJob) backwardData(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	kk := p.KH * p.KW
	rows := cg * kk
	hw, ohw := p.H*p.W, p.OutH()*p.OutW()
	chunks := (p.N + j.imgChunk - 1) / j.imgChunk
	ns := min(slabCols(rows, j.imgChunk*ohw), j.imgChunk*ohw)
	ldo := roundUp(ns, active.gemm.nr)
	slab := getScratch(roundUp(rows, active.gemm.mr) * ldo)
	dyTab := intScratch.get(ns)
	dySeg := intScratch.get((ns + 7) / 8)
	tab := intScratch.get(kk * ns)
	for t := lo; t < hi; t++ {
		g, ch := t/chunks, t%chunks
		n0, n1 := ch*j.imgChunk, min(p.N, (ch+1)*j.imgChunk)
		cols := (n1 - n0) * ohw
		dy := j.y[(n0*p.K+g*kg)*ohw:]
		dx := j.x[(n0*p.C+g*cg)*hw:]
		for s0 := 0; s0 < cols; s0 += ns {
			nq := min(ns, cols-s0)
			// dy row k, column q = (n, s) is dy[n*K*ohw + k*ohw + s].
			gth := colGather{tab: (*dyTab)[:nq], kk: 1, plane: ohw}
			for i := range gth.tab {
				q := s0 + i
				gth.tab[i] = int32(q/ohw*p.K*ohw + q%ohw)
			}
			gth.max = int(gth.tab[nq-1])
			if active.gemm.gather != nil {
				gth.setSegments(nq, *dySeg)
			}
			sgemmPrepacked(rows, nq, kg, j.w[g*j.packedSize:], dy, 0, nil, gth, 0, *slab, ldo, true, j.parallelGEMM)
			// The table counts images from the slab's first one.
			colTable(p, s0, nq, p.C*hw, (*tab)[:kk*nq])
			dxs := dx[s0/ohw*p.C*hw:]
			for r := range rows {
				c, tap := r/kk, r%kk
				scatterAddRow(dxs[c*hw:], (*slab)[r*ldo:][:nq], (*tab)[tap*nq:][:nq])
			}
		}
	}
	putScratch(slab)
	intScratch.put(dyTab)
	intScratch.put(dySeg)
	intScratch.put(tab)
}

// backwardDataCol2im adds dx for tasks [lo, hi) of (image, group) pairs
// of a strided convolution: dcol = w[g]^T dy (packed in j.w), folded back by
// col2im.
func (j *convJob) backwardDataCol2im(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	ohw := p.OutH() * p.OutW()
	ns := slabCols(rows, ohw)
	slab := getScratch(rows * ns)
	for t := lo; t < hi; t++ {
		n, g := t/p.Groups, t%p.Groups
		dx := j.x[(n*p.C+g*cg)*p.H*p.W:]
		w := j.w[g*j.packedSize:]
		dy := j.y[(n*p.K+g*kg)*ohw:]
		for s0 := 0; s0 < ohw; s0 += ns {
			w0 := min(ns, ohw-s0)
			sgemmPrepacked(rows, w0, kg, w, dy[s0:], ohw, nil, colGather{}, 0, *slab, w0, false, j.parallelGEMM)
			col2im(p, *slab, cg, s0, w0, dx)
		}
	}
	putScratch(slab)
}

// scatterAddRow adds v[i] to dst[idx[i]] where idx[i] is not -1 (the
// other indices are distinct).
func scatterAddRow(dst, v []float32, idx []int32) {
	v = v[:len(idx)]
	for i, o := range idx {
		if o >= 0 {
			dst[o] += v[i]
		}
	}
}
