package kernels

// 2-D convolution, forward and both backwards (SPEC section 1, kernels).
//
// A convolution of group g of image n is the GEMM
// y[n,g] (Kg x OH*OW) = w[g] (Kg x Cg*KH*KW) * col (Cg*KH*KW x OH*OW),
// where col is the unfolded input (im2col). col is built a slab of output
// columns at a time so it stays in cache and the scratch stays small; a
// 1x1 stride-1 unpadded convolution skips it (x already is col). Depthwise
// convolutions (groups == C == K) run direct kernels instead: their GEMMs
// would be 1 x 9 x OH*OW.

import (
	"fmt"
	"sync"
)

// ConvParams describes a 2-D convolution: input N x C x H x W, weight
// K x C/Groups x KH x KW, output N x K x OutH() x OutW(), all NCHW.
type ConvParams struct {
	N, C, H, W                               int
	K                                        int
	KH, KW                                   int
	StrideH, StrideW, PadH, PadW, DilH, DilW int
	Groups                                   int
}

// OutH is the output height.
func (p ConvParams) OutH() int {
	return (p.H+2*p.PadH-p.DilH*(p.KH-1)-1)/p.StrideH + 1
}

// OutW is the output width.
func (p ConvParams) OutW() int {
	return (p.W+2*p.PadW-p.DilW*(p.KW-1)-1)/p.StrideW + 1
}

// Validate reports the first inconsistency in p.
func (p ConvParams) Validate() error {
	switch {
	case p.N < 1 || p.C < 1 || p.H < 1 || p.W < 1 || p.K < 1 || p.KH < 1 || p.KW < 1:
		return fmt.Errorf("conv2d: sizes must be positive (N=%d C=%d H=%d W=%d K=%d kernel %dx%d)",
			p.N, p.C, p.H, p.W, p.K, p.KH, p.KW)
	case p.StrideH < 1 || p.StrideW < 1:
		return fmt.Errorf("conv2d: stride %dx%d must be positive", p.StrideH, p.StrideW)
	case p.DilH < 1 || p.DilW < 1:
		return fmt.Errorf("conv2d: dilation %dx%d must be positive", p.DilH, p.DilW)
	case p.PadH < 0 || p.PadW < 0:
		return fmt.Errorf("conv2d: padding %dx%d must not be negative", p.PadH, p.PadW)
	case p.Groups < 1 || p.C%p.Groups != 0 || p.K%p.Groups != 0:
		return fmt.Errorf("conv2d: groups=%d must divide in channels %d and out channels %d", p.Groups, p.C, p.K)
	case (p.H+2*p.PadH-p.DilH*(p.KH-1)-1) < 0 || (p.W+2*p.PadW-p.DilW*(p.KW-1)-1) < 0:
		return fmt.Errorf("conv2d: dilated kernel %dx%d larger than padded input %dx%d",
			p.DilH*(p.KH-1)+1, p.DilW*(p.KW-1)+1, p.H+2*p.PadH, p.W+2*p.PadW)
	}
	return nil
}

// check panics on invalid params or short slices: a caller bug (layers
// validate user-supplied shapes before calling).
func (p *ConvParams) check(op string, lens ...sliceLen) {
	if err := p.Validate(); err != nil {
		panic(fmt.Sprintf("kernels.%s: %v", op, err))
	}
	for _, l := range lens {
		if l.have < l.want {
			panic(fmt.Sprintf("kernels.%s: %s has %d elements, want %d", op, l.name, l.have, l.want))
		}
	}
}

// sliceLen is one slice argument's length and the length p needs.
type sliceLen struct {
	name string
	have int
	want int
}

func (p *ConvParams) xLen() int { return p.N * p.C * p.H * p.W }
func (p *ConvParams) yLen() int { return p.N * p.K * p.OutH() * p.OutW() }
func (p *ConvParams) wLen() int { return p.K * (p.C / p.Groups) * p.KH * p.KW }

// depthwise reports whether p gets the direct depthwise kernels.
func (p *ConvParams) depthwise() bool {
	return p.Groups > 1 && p.Groups == p.C && p.K == p.C
}

// pointwise reports whether x itself is the im2col matrix.
func (p *ConvParams) pointwise() bool {
	return p.KH == 1 && p.KW == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0
}

// convSlabFloats bounds one im2col slab (256 KiB), so it lives in L2
// next to the packed weights.
const convSlabFloats = 64 << 10

// slabCols is how many output columns one im2col slab covers: a multiple
// of 48 (every path's nr divides it), at least 96, at most all of them.
func slabCols(rows, cols int) int {
	ns := convSlabFloats / rows / 48 * 48
	return min(cols, max(ns, 96))
}

// Conv2dForward computes y = conv(x, w) + bias (bias may be nil),
// overwriting y.
func Conv2dForward(p ConvParams, x, w, bias, y []float32) {
	p.check("Conv2dForward", sliceLen{"x", len(x), p.xLen()}, sliceLen{"w", len(w), p.wLen()},
		sliceLen{"y", len(y), p.yLen()})
	if bias != nil && len(bias) < p.K {
		panic(fmt.Sprintf("kernels.Conv2dForward: bias has %d elements, want %d", len(bias), p.K))
	}
	if p.depthwise() {
		j := newConvJob(&p, x, w, bias, y)
		parallelFor(p.N*p.C, j.dwForwardFn)
		j.release()
		return
	}
	convGEMM(&p, x, w, bias, y, 0, false)
}

// convGEMM runs the forward convolution p as GEMMs, y = beta*y + conv,
// with the weights packed once for every image and slab. With flip set,
// w is instead the weight of the convolution p undoes, [C][K/G][KH][KW]
// seen from p, and is used transposed per group and rotated 180 degrees:
// the backward-data pass of a stride-1 convolution is such a forward one.
func convGEMM(p *ConvParams, x, w, bias, y []float32, beta float32, flip bool) {
	cg, kg := p.C/p.Groups, p.K/p.Groups
	kk := p.KH * p.KW
	rows := cg * kk
	size := packedASize(kg, rows)
	wp := getScratch(size * p.Groups)
	var wf *[]float32
	if flip {
		// wf[g][k][c][kh][kw] = w[g][c][k][KH-1-kh][KW-1-kw]
		wf = getScratch(p.K * rows)
		for g := range p.Groups {
			for k := range kg {
				for c := range cg {
					src := w[((g*cg+c)*kg+k)*kk:][:kk]
					dst := (*wf)[((g*kg+k)*cg+c)*kk:][:kk]
					for i, v := range src {
						dst[kk-1-i] = v
					}
				}
			}
		}
		w = *wf
	}
	for g := range p.Groups {
		packWholeA(false, kg, rows, 1, w[g*kg*rows:], rows, (*wp)[g*size:])
	}
	j := newConvJob(p, x, *wp, bias, y)
	j.beta, j.packedSize = beta, size
	j.overImages(j.forwardFn)
	j.release()
	gemmScratch.Put(wp)
	if wf != nil {
		gemmScratch.Put(wf)
	}
}

// Conv2dBackwardData adds the gradient with respect to the input to dx.
func Conv2dBackwardData(p ConvParams, dy, w, dx []float32) {
	p.check("Conv2dBackwardData", sliceLen{"dy", len(dy), p.yLen()}, sliceLen{"w", len(w), p.wLen()},
		sliceLen{"dx", len(dx), p.xLen()})
	if p.depthwise() {
		j := newConvJob(&p, dx, w, nil, dy)
		parallelFor(p.N*p.C, j.dwBackwardDataFn)
		j.release()
		return
	}
	if p.StrideH == 1 && p.StrideW == 1 && p.PadH <= p.DilH*(p.KH-1) && p.PadW <= p.DilW*(p.KW-1) {
		// Stride 1: dx += conv(dy, rotated transposed w) with the
		// complementary padding, which keeps the GEMM output at C rows
		// and needs no col2im.
		q := ConvParams{N: p.N, C: p.K, H: p.OutH(), W: p.OutW(), K: p.C, KH: p.KH, KW: p.KW,
			StrideH: 1, StrideW: 1, PadH: p.DilH*(p.KH-1) - p.PadH, PadW: p.DilW*(p.KW-1) - p.PadW,
			DilH: p.DilH, DilW: p.DilW, Groups: p.Groups}
		convGEMM(&q, dy, w, nil, dx, 1, true)
		return
	}
	// Strided: dcol = w^T dy per group, folded back by col2im.
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	size := packedASize(rows, kg)
	wp := getScratch(size * p.Groups)
	for g := range p.Groups {
		packWholeA(true, rows, kg, 1, w[g*kg*rows:], rows, (*wp)[g*size:])
	}
	j := newConvJob(&p, dx, *wp, nil, dy)
	j.packedSize = size
	j.overImages(j.backwardDataFn)
	j.release()
	gemmScratch.Put(wp)
}

// Conv2dBackwardWeight adds the gradient with respect to the weight to dw.
func Conv2dBackwardWeight(p ConvParams, x, dy, dw []float32) {
	p.check("Conv2dBackwardWeight", sliceLen{"x", len(x), p.xLen()}, sliceLen{"dy", len(dy), p.yLen()},
		sliceLen{"dw", len(dw), p.wLen()})
	j := newConvJob(&p, x, dw, nil, dy)
	switch {
	case p.depthwise():
		parallelFor(p.C, j.dwBackwardWeightFn)
	case p.Groups >= parWorkers():
		// Groups own disjoint slices of dw: one serial GEMM chain each.
		j.parallelGEMM = false
		parallelFor(p.Groups, j.backwardWeightFn)
	default:
		// Every image adds into all of dw: images in turn, GEMMs parallel.
		j.parallelGEMM = true
		j.backwardWeight(0, p.Groups)
	}
	j.release()
}

// Conv2dBackwardBias adds the gradient with respect to the bias to db.
func Conv2dBackwardBias(p ConvParams, dy, db []float32) {
	p.check("Conv2dBackwardBias", sliceLen{"dy", len(dy), p.yLen()}, sliceLen{"db", len(db), p.K})
	hw := p.OutH() * p.OutW()
	for k := range p.K {
		var s float64
		for n := range p.N {
			for _, v := range dy[(n*p.K+k)*hw : (n*p.K+k+1)*hw] {
				s += float64(v)
			}
		}
		db[k] += float32(s)
	}
}

// convJob carries one convolution call. Its method values are bound once
// per pooled job, so passing them to parallelFor allocates nothing.
type convJob struct {
	p ConvParams
	// x is the input (or dx), w the weight (or dw), y the output (or dy).
	x, w, bias, y []float32
	parallelGEMM  bool
	// For the GEMM passes: w holds per-group packed weights, packedSize
	// apart; forward computes y = beta*y + conv.
	packedSize int
	beta       float32

	forwardFn, backwardDataFn, backwardWeightFn       func(lo, hi int)
	dwForwardFn, dwBackwardDataFn, dwBackwardWeightFn func(lo, hi int)
}

var convJobs = sync.Pool{New: func() any {
	j := new(convJob)
	j.forwardFn = j.forward
	j.backwardDataFn = j.backwardData
	j.backwardWeightFn = j.backwardWeight
	j.dwForwardFn = j.dwForward
	j.dwBackwardDataFn = j.dwBackwardData
	j.dwBackwardWeightFn = j.dwBackwardWeight
	return j
}}

func newConvJob(p *ConvParams, x, w, bias, y []float32) *convJob {
	j := convJobs.Get().(*convJob)
	j.p, j.x, j.w, j.bias, j.y = *p, x, w, bias, y
	return j
}

func (j *convJob) release() {
	j.x, j.w, j.bias, j.y = nil, nil, nil, nil
	convJobs.Put(j)
}

// overImages runs fn over the N*Groups (image, group) tasks: spread over
// the pool when there are enough of them, else in turn with each GEMM
// spread over the pool.
func (j *convJob) overImages(fn func(lo, hi int)) {
	tasks := j.p.N * j.p.Groups
	if tasks >= parWorkers() {
		j.parallelGEMM = false
		parallelFor(tasks, fn)
		return
	}
	j.parallelGEMM = true
	fn(0, tasks)
}

func (j *convJob) gemm(transA, transB bool, m, n, k int, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc, j.parallelGEMM)
}

// forward computes tasks [lo, hi) of (image, group) pairs.
func (j *convJob) forward(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	ohw := p.OutH() * p.OutW()
	var slab *[]float32
	ns := ohw
	if !p.pointwise() {
		ns = slabCols(rows, ohw)
		slab = getScratch(rows * ns)
	}
	for t := lo; t < hi; t++ {
		n, g := t/p.Groups, t%p.Groups
		x := j.x[(n*p.C+g*cg)*p.H*p.W:]
		w := j.w[g*j.packedSize:]
		y := j.y[(n*p.K+g*kg)*ohw:]
		if slab == nil {
			sgemmPrepacked(kg, ohw, rows, w, x, ohw, j.beta, y, ohw, j.parallelGEMM)
		} else {
			for s0 := 0; s0 < ohw; s0 += ns {
				w0 := min(ns, ohw-s0)
				im2col(p, x, cg, s0, w0, *slab)
				sgemmPrepacked(kg, w0, rows, w, *slab, w0, j.beta, y[s0:], ohw, j.parallelGEMM)
			}
		}
		if j.bias != nil {
			for k := range kg {
				b := j.bias[g*kg+k]
				yk := y[k*ohw : (k+1)*ohw]
				for i := range yk {
					yk[i] += b
				}
			}
		}
	}
	if slab != nil {
		gemmScratch.Put(slab)
	}
}

// backwardData adds dx for tasks [lo, hi) of (image, group) pairs of a
// strided convolution: dcol = w[g]^T dy (packed in j.w), folded back by
// col2im.
func (j *convJob) backwardData(lo, hi int) {
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
			sgemmPrepacked(rows, w0, kg, w, dy[s0:], ohw, 0, *slab, w0, j.parallelGEMM)
			col2im(p, *slab, cg, s0, w0, dx)
		}
	}
	gemmScratch.Put(slab)
}

// backwardWeight adds dw for groups [lo, hi), summing over all images:
// dw[g] += dy[n,g] col^T.
func (j *convJob) backwardWeight(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	ohw := p.OutH() * p.OutW()
	var slab *[]float32
	ns := ohw
	if !p.pointwise() {
		ns = slabCols(rows, ohw)
		slab = getScratch(rows * ns)
	}
	for g := lo; g < hi; g++ {
		dw := j.w[g*kg*rows:]
		for n := range p.N {
			x := j.x[(n*p.C+g*cg)*p.H*p.W:]
			dy := j.y[(n*p.K+g*kg)*ohw:]
			if slab == nil {
				j.gemm(false, true, kg, rows, ohw, dy, ohw, x, ohw, 1, dw, rows)
				continue
			}
			for s0 := 0; s0 < ohw; s0 += ns {
				w0 := min(ns, ohw-s0)
				im2col(p, x, cg, s0, w0, *slab)
				j.gemm(false, true, kg, rows, w0, dy[s0:], ohw, *slab, w0, 1, dw, rows)
			}
		}
	}
	if slab != nil {
		gemmScratch.Put(slab)
	}
}

// dwForward computes depthwise planes [lo, hi) of the N*C planes.
func (j *convJob) dwForward(lo, hi int) {
	p := &j.p
	hw, ohw, kk := p.H*p.W, p.OutH()*p.OutW(), p.KH*p.KW
	for t := lo; t < hi; t++ {
		c := t % p.C
		var b float32
		if j.bias != nil {
			b = j.bias[c]
		}
		dwPlaneForward(p, j.x[t*hw:(t+1)*hw], j.w[c*kk:(c+1)*kk], b, j.y[t*ohw:(t+1)*ohw])
	}
}

// dwBackwardData adds dx for depthwise planes [lo, hi).
func (j *convJob) dwBackwardData(lo, hi int) {
	p := &j.p
	hw, ohw, kk := p.H*p.W, p.OutH()*p.OutW(), p.KH*p.KW
	for t := lo; t < hi; t++ {
		c := t % p.C
		dwPlaneBackwardData(p, j.y[t*ohw:(t+1)*ohw], j.w[c*kk:(c+1)*kk], j.x[t*hw:(t+1)*hw])
	}
}

// dwBackwardWeight adds dw for channels [lo, hi), summing over images.
func (j *convJob) dwBackwardWeight(lo, hi int) {
	p := &j.p
	hw, ohw, kk := p.H*p.W, p.OutH()*p.OutW(), p.KH*p.KW
	for c := lo; c < hi; c++ {
		for n := range p.N {
			t := n*p.C + c
			dwPlaneBackwardWeight(p, j.x[t*hw:(t+1)*hw], j.y[t*ohw:(t+1)*ohw], j.w[c*kk:(c+1)*kk])
		}
	}
}
