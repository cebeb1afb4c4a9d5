package kernels

// The padded implicit GEMM (docs/DESIGN.md, "Kernels"): output (oh, ow)
// is column oh*dWq+ow of a GEMM whose rows are shifted windows of the
// phase buffer (conv_phase.go), so packing reads contiguous runs and
// nothing is unfolded; backward to the input, dcol's rows add into the
// buffer as contiguous runs, which then folds back into dx.

// forwardPadded computes (image, group) tasks [lo, hi) of a convolution
// through the phase buffer (setPhases; for stride 1 simply the zero-framed
// image): output (oh, ow) is column oh*dWq+ow of a GEMM whose row
// (c, kh, kw) is the buffer read from offset rowOff[r] on, so the packing
// reads contiguous runs. The dWq-OW columns per row that wrap around are
// computed and dropped.
func (j *convJob) forwardPadded(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	oh0, ow0 := p.OutH(), p.OutW()
	wq := j.dWq
	cols := oh0 * wq
	// A kc x ns packed B block, the A block and the output tile share L2.
	ns := min(cols, 240)
	ldo := roundUp(ns, active.gemm.nr)
	// The last rows' reads run past the planes into the wrapped columns.
	xp := getScratch(j.phaseSpan(cols))
	out := getScratch(roundUp(kg, active.gemm.mr) * ldo)
	clear(*xp) // the frame stays zero; only the interior is rewritten
	for t := lo; t < hi; t++ {
		n, g := t/p.Groups, t%p.Groups
		j.fillPhases(j.x[(n*p.C+g*cg)*p.H*p.W:], *xp)
		y := j.y[(n*p.K+g*kg)*oh0*ow0:]
		for s0 := 0; s0 < cols; s0 += ns {
			nq := min(ns, cols-s0)
			sgemmPrepacked(kg, nq, rows, j.w[g*j.packedSize:], (*xp)[s0:], 0, j.rowOff, colGather{}, 0, *out, ldo, true, j.parallelGEMM)
			for q := s0; q < s0+nq; {
				oh, ow := q/wq, q%wq
				if ow >= ow0 {
					q += wq - ow
					continue
				}
				run := min(ow0-ow, s0+nq-q)
				for k := range kg {
					src := (*out)[k*ldo+q-s0:][:run]
					dst := y[k*oh0*ow0+oh*ow0+ow:][:run]
					j.store(g*kg+k, src, dst)
				}
				q += run
			}
		}
		j.planesDone(n*p.K+g*kg, kg)
	}
	putScratch(xp)
	putScratch(out)
}

// backwardDataPadded adds dx for tasks [lo, hi) of (group, chunk of
// imgChunk images) of a strided convolution through the phase buffer,
// the adjoint of forwardPadded: dy is laid out on the buffer's output
// grid (output row oh at column oh*dWq, the wrapped-around columns zero),
// so row (c, kh, kw) of dcol = w[g]^T dy adds into the buffer as one
// contiguous run from dOff[c,kh,kw] on; each image's buffer is then
// folded back into dx.
func (j *convJob) backwardDataPadded(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	oh0, ow0 := p.OutH(), p.OutW()
	wq := j.dWq
	cols := oh0 * wq // one image's columns
	span := j.phaseSpan(cols)
	chunks := (p.N + j.imgChunk - 1) / j.imgChunk
	ldb := j.imgChunk * cols
	ns := min(slabCols(rows, ldb), ldb)
	ldo := roundUp(ns, active.gemm.nr)
	grid := getScratch(kg * ldb)
	clear(*grid) // the wrapped-around columns stay zero
	slab := getScratch(roundUp(rows, active.gemm.mr) * ldo)
	buf := getScratch(j.imgChunk * span)
	for t := lo; t < hi; t++ {
		g, ch := t/chunks, t%chunks
		n0, n1 := ch*j.imgChunk, min(p.N, (ch+1)*j.imgChunk)
		for n := n0; n < n1; n++ {
			j.toGrid((*grid)[(n-n0)*cols:], ldb, j.y[(n*p.K+g*kg)*oh0*ow0:])
		}
		b := (*buf)[:(n1-n0)*span]
		clear(b)
		total := (n1 - n0) * cols
		for s0 := 0; s0 < total; s0 += ns {
			nq := min(ns, total-s0)
			sgemmPrepacked(rows, nq, kg, j.w[g*j.packedSize:], (*grid)[s0:], ldb, nil, colGather{}, 0, *slab, ldo, true, j.parallelGEMM)
			for q := s0; q < s0+nq; {
				s := q % cols
				run := min(cols-s, s0+nq-q)
				img := b[q/cols*span+s:]
				for r, o := range j.dOff {
					d := img[o:][:run]
					active.elementwise.add(d, d, (*slab)[r*ldo+q-s0:][:run])
				}
				q += run
			}
		}
		for n := n0; n < n1; n++ {
			j.foldPhases(b[(n-n0)*span:], j.x[(n*p.C+g*cg)*p.H*p.W:])
		}
	}
	putScratch(grid)
	putScratch(slab)
	putScratch(buf)
}
