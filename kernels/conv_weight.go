package kernels

// The backward pass to the weights (docs/DESIGN.md, "Kernels"):
// dw[g] += dy[n,g] col^T summed over images, with col read in place from
// the phase buffer (padded), taken from x itself (pointwise) or unfolded
// by im2col in slabs of output columns.

// backwardWeightGroups adds dw for groups [lo, hi), summing all images.
func (j *convJob) backwardWeightGroups(lo, hi int) {
	j.weightGrad(j.w, lo, hi, 0, j.p.N)
}

// backwardWeightImages adds image chunks [lo, hi) of j.chunks: chunk 0
// into dw itself, chunk c > 0 into its own zeroed partial buffer, which
// Conv2dBackwardWeight then adds to dw in chunk order (deterministic for
// a given GOMAXPROCS).
func (j *convJob) backwardWeightImages(lo, hi int) {
	size := j.p.wLen()
	for c := lo; c < hi; c++ {
		dw := j.w
		if c > 0 {
			dw = j.partial[(c-1)*size : c*size]
			clear(dw)
		}
		j.weightGrad(dw, 0, j.p.Groups, c*j.p.N/j.chunks, (c+1)*j.p.N/j.chunks)
	}
}

// reducePartials adds the image chunks' partial sums (chunks 1 and on)
// into dw, in chunk order, over blocks [lo, hi) of blockFloats weights:
// each element's sum is the serial loop's, for any thread count.
func (j *convJob) reducePartials(lo, hi int) {
	size := j.p.wLen()
	add := active.elementwise.add
	for b := lo; b < hi; b++ {
		i0, i1 := blockRange(b, size)
		dw := j.w[i0:i1]
		for c := 1; c < j.chunks; c++ {
			add(dw, dw, j.partial[(c-1)*size+i0:(c-1)*size+i1])
		}
	}
}

// weightGrad adds to dw (all groups) the gradient of groups [g0, g1) over
// images [n0, n1): dw[g] += dy[n,g] col^T, the product's k running over
// slabs of output columns across images (small images would otherwise
// give products a few dozen deep, each streaming all of dw). One factor
// is packed from its transpose, an element at a time; when col has more
// rows than dy it computes dw[g]^T += col dy^T instead, so the smaller
// one is (a 3x3 layer's col has nine times dy's rows), and adds its
// transpose into dw once per group.
func (j *convJob) weightGrad(dw []float32, g0, g1, n0, n1 int) {
	if j.wgRoute == routePadded {
		j.weightGradPadded(dw, g0, g1, n0, n1)
		return
	}
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	hw, ohw := p.H*p.W, p.OutH()*p.OutW()
	q0, q1 := n0*ohw, n1*ohw
	// Slabs within an image, or of whole small images (the plan's
	// depth), the latter with their dy copied next to each other.
	ns := j.wgDepth
	var slab, dyS, dwT *[]float32
	if j.wgAcrossImages {
		ns = min(q1-q0, ns)
		dyS = getScratch(kg * ns)
	}
	if j.wgRoute != routePointwise {
		slab = getScratch(rows * ns)
	}
	if j.wgTransposed {
		dwT = getScratch(rows * kg)
	}
	for g := g0; g < g1; g++ {
		dwg := dw[g*kg*rows:]
		if dwT != nil {
			clear(*dwT)
		}
		for s0 := q0; s0 < q1; {
			n, s := s0/ohw, s0%ohw
			nq := min(ns, q1-s0)
			if ns < ohw {
				nq = min(ns, ohw-s)
			}
			// The slab's columns of col and of dy, in place when they
			// lie in one image.
			var col, dy []float32
			var ldc, ldy int
			if s+nq <= ohw {
				dy, ldy = j.y[(n*p.K+g*kg)*ohw+s:], ohw
			} else {
				dy, ldy = *dyS, nq
				for q := s0; q < s0+nq; {
					n, s := q/ohw, q%ohw
					run := min(ohw-s, s0+nq-q)
					for k := range kg {
						copy(dy[k*nq+q-s0:][:run], j.y[(n*p.K+g*kg+k)*ohw+s:][:run])
					}
					q += run
				}
			}
			if slab == nil {
				col, ldc = j.x[(n*p.C+g*cg)*hw+s:], hw
			} else {
				im2col(p, j.x[g*cg*hw:], cg, s0, nq, *slab)
				col, ldc = *slab, nq
			}
			if dwT != nil {
				j.gemm(false, true, rows, kg, nq, col, ldc, dy, ldy, 1, *dwT, kg)
			} else {
				j.gemm(false, true, kg, rows, nq, dy, ldy, col, ldc, 1, dwg, rows)
			}
			s0 += nq
		}
		if dwT != nil {
			for r := range rows {
				for k, v := range (*dwT)[r*kg : (r+1)*kg] {
					dwg[k*rows+r] += v
				}
			}
		}
	}
	for _, b := range []*[]float32{slab, dyS, dwT} {
		if b != nil {
			putScratch(b)
		}
	}
}

// weightGradPadded is weightGrad for images wide enough for the phase
// buffer (as forwardPadded): dy laid on the buffer's output grid (row oh
// at column oh*dWq, the wrapped-around columns zero) times col^T, whose
// rows are read in place from the buffer at rowOff: no im2col.
func (j *convJob) weightGradPadded(dw []float32, g0, g1, n0, n1 int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	oh0, ow0 := p.OutH(), p.OutW()
	wq := j.dWq
	cols := oh0 * wq
	buf := getScratch(j.phaseSpan(cols))
	clear(*buf) // the frame stays zero; fillPhases rewrites the rest
	grid := getScratch(kg * cols)
	clear(*grid) // the wrapped-around columns stay zero
	packed := getScratch(packedASize(kg, cols))
	for g := g0; g < g1; g++ {
		for n := n0; n < n1; n++ {
			j.fillPhases(j.x[(n*p.C+g*cg)*p.H*p.W:], *buf)
			j.toGrid(*grid, cols, j.y[(n*p.K+g*kg)*oh0*ow0:])
			packWholeA(false, kg, cols, 1, *grid, cols, *packed)
			sgemmPrepackedT(kg, rows, cols, *packed, *buf, j.rowOff, dw[g*kg*rows:], rows, j.parallelGEMM)
		}
	}
	putScratch(buf)
	putScratch(grid)
	putScratch(packed)
}

// gemm is Sgemm with alpha 1, on the pool or not as the job decided.
func (j *convJob) gemm(transA, transB bool, m, n, k int, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc, j.parallelGEMM)
}
