package kernels

// 2-D convolution, forward and both backwards (docs/DESIGN.md, "Kernels").
//
// A convolution of group g of image n is the GEMM
// y[n,g] (Kg x OH*OW) = w[g] (Kg x Cg*KH*KW) * col (Cg*KH*KW x OH*OW),
// where col is the unfolded input. The weights are packed once per call;
// how col reaches the micro-kernel depends on the shape, and planConv
// (conv_plan.go) decides it: the route of each pass and its parameters.
// The routes, one file each:
//   - direct (conv_direct.go): no col at all, the micro-kernel reads the
//     framed input in place and writes y;
//   - padded implicit GEMM (conv_padded.go): col's rows are shifted
//     windows of the phase buffer (conv_phase.go), the zero-padded image
//     split by stride phase, packed straight from it;
//   - pointwise and strided 1x1 (conv_pointwise.go): x already is col,
//     subsampled first when strided;
//   - gathered and im2col slabs (conv_gathered.go): on small images, a
//     slab of columns at a time across the batch, gathered from x while
//     packing through per-tap tables, or with few channels (the 7x7
//     stem) copied by im2col;
//   - depthwise (conv_depthwise.go): direct per-plane kernels, whose
//     GEMMs would be 1 x KH*KW x OH*OW.
//
// Backward to the input of a stride-1 convolution is a forward one of dy
// with the weights transposed per group and rotated 180 degrees; a
// strided 1x1 one is a pointwise one added back every stride; other
// strided ones compute dcol = w^T dy and add it back into dx: on wide
// images each row of dcol as one run into the phase buffer (the adjoint
// of the implicit GEMM's packing), on small ones through the forward
// gather's tables (or col2im). Backward to the weights is dy col^T summed
// over images (conv_weight.go).

import (
	"fmt"
	"sync"
)

// convKernels is the convolution family's dispatch table: the direct
// micro-kernels, the depthwise plane and row kernels, and im2col's
// stride-2 gather.
type convKernels struct {
	// direct[set][tail] and directMasked[set][tail] are the direct
	// micro-kernels (conv_direct.go), all nil where the path has none:
	// the direct routes are then never planned.
	direct       [2][directMR]directKernel
	directMasked [2][directMR]directMaskedKernel
	// dwPlane(k, s, rows, cols, y, ldy, x, ldx, w, acc) computes rows x
	// cols outputs of a k x k (3 or 5) depthwise convolution with stride
	// s over the zero-framed plane x (see dwPlaneGeneric).
	dwPlane func(k, s, rows, cols int, y []float32, ldy int, x []float32, ldx int, w *dwTaps, acc bool)
	// dwPlaneGrad(k, s, rows, n, dy, x, ldx, g) adds the filter gradient
	// of rows output rows of n outputs (dy's rows n apart; n a multiple
	// of dwLanes at stride 1, of 8 at stride 2) to the lane sums g (see
	// dwPlaneGradGeneric).
	dwPlaneGrad func(k, s, rows, n int, dy, x []float32, ldx int, g *dwGradSums)
	// dwRow and dwRowGrad are the row kernels of the forward pass and of
	// the filter gradient over the k rows x[kh*ldx:] (see dwRowGeneric,
	// dwRowGradGeneric).
	dwRow     func(k, s int, y, x []float32, ldx int, w *dwTaps, acc bool)
	dwRowGrad func(k, s int, dy, x []float32, ldx int, g *dwGradSums)
	// gatherEven sets dst[i] = src[2*i]: an im2col row of stride 2.
	gatherEven func(dst, src []float32)
	// directRows[set][pair][h], where set, are the direct kernels of any
	// panel height up to maxDirectRows (conv_direct_rows.go), which the
	// direct routes then run instead of direct and directMasked.
	directRows *[2][2][maxDirectRows + 1]directRowsFunc
	// dwLanes is the floats a vector of dwPlane (and of dwPlaneGrad at
	// stride 1) reads, for which the depthwise frame and dy's rows make
	// room (8 where zero).
	dwLanes int
}

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

// Conv2dForward computes y = conv(x, w) + bias (bias may be nil),
// overwriting y.
func Conv2dForward(p ConvParams, x, w, bias, y []float32) {
	p.check("Conv2dForward", sliceLen{"x", len(x), p.xLen()}, sliceLen{"w", len(w), p.wLen()},
		sliceLen{"y", len(y), p.yLen()})
	if bias != nil && len(bias) < p.K {
		panic(fmt.Sprintf("kernels.Conv2dForward: bias has %d elements, want %d", len(bias), p.K))
	}
	convForward(&p, x, w, bias, y, nil, nil)
}

// Conv2dForwardScaleShift computes y = act(conv(x, w)*scale[k] + shift[k])
// (bias may be nil): Conv2dForward followed by ScaleShift, an eval-mode
// BatchNorm and its activation, with the epilogue run on each piece of
// an output plane right after it is written, while it is in cache. The
// result is bit for bit that of the two calls (the same per-element
// kernel runs on the same values).
func Conv2dForwardScaleShift(p ConvParams, x, w, bias, scale, shift, y []float32, act Activation) {
	p.check("Conv2dForwardScaleShift", sliceLen{"x", len(x), p.xLen()}, sliceLen{"w", len(w), p.wLen()},
		sliceLen{"y", len(y), p.yLen()}, sliceLen{"scale", len(scale), p.K}, sliceLen{"shift", len(shift), p.K})
	if bias != nil && len(bias) < p.K {
		panic(fmt.Sprintf("kernels.Conv2dForwardScaleShift: bias has %d elements, want %d", len(bias), p.K))
	}
	convForward(&p, x, w, bias, y, &epilogue{scale: scale, shift: shift, act: act}, nil)
}

// Conv2dForwardMoments computes c = conv(x, w) + bias as Conv2dForward
// does, then y and c's per-channel mean and mean of squares as
// ScaleShiftMoments(N, K, OH*OW, c, scale, shift, y, act, mean, meanSq)
// does, or ScaleShiftAddMoments with r where r is not nil: a training
// step's convolution and the batch norm after it. Where each task of the
// convolution's plan writes whole planes on a worker of its own (the
// padded, pointwise and depthwise routes, the direct one on whole images)
// it runs the moments and the scale-and-shift on them right after, while
// they are in cache, rather than reading c back from memory in a second
// pass; elsewhere the two calls run in turn. Either way the result is
// bit for bit that of the two calls: the same kernels run on each plane,
// and a channel's planes add up in image order. c is written in full (the
// backward pass reads it).
func Conv2dForwardMoments(p ConvParams, x, w, bias, c, scale, shift, r, y []float32, act Activation, mean, meanSq []float32) {
	p.check("Conv2dForwardMoments", sliceLen{"x", len(x), p.xLen()}, sliceLen{"w", len(w), p.wLen()},
		sliceLen{"c", len(c), p.yLen()}, sliceLen{"y", len(y), p.yLen()}, sliceLen{"scale", len(scale), p.K},
		sliceLen{"shift", len(shift), p.K}, sliceLen{"mean", len(mean), p.K}, sliceLen{"meanSq", len(meanSq), p.K})
	if bias != nil && len(bias) < p.K {
		panic(fmt.Sprintf("kernels.Conv2dForwardMoments: bias has %d elements, want %d", len(bias), p.K))
	}
	if r != nil && len(r) < p.yLen() {
		panic(fmt.Sprintf("kernels.Conv2dForwardMoments: r has %d elements, want %d", len(r), p.yLen()))
	}
	hw := p.OutH() * p.OutW()
	t := newScaleShiftMoments(p.N, p.K, hw, c, scale, shift, r, y, act)
	if !convForward(&p, x, w, bias, c, nil, t) {
		t.spread(p.N*p.K, p.N*p.K*hw)
	}
	t.endMoments(mean, meanSq)
}

// convForward runs the forward pass of p as its plan says. planes, when
// not nil, is a task over y's N*K planes (plane n*K+k) that the pass
// runs on each run of planes once written, where its plan writes whole
// planes a task (wholePlanes); it reports whether it did.
func convForward(p *ConvParams, x, w, bias, y []float32, e *epilogue, planes *task) bool {
	pl := p.plan(passForward)
	if !pl.wholePlanes() {
		planes = nil
	}
	if pl.route == routeDepthwise {
		j := newConvJob(p, x, w, bias, y)
		j.epi, j.dwK, j.planes = e, pl.dwKernel, planes
		parallelFor(pl.tasks, j.dwForwardFn)
		j.release()
		return planes != nil
	}
	convGEMM(p, &pl.gemm, x, w, bias, y, 0, false, e, planes)
	return planes != nil
}

// wholePlanes reports whether each task of the forward plan pl writes
// whole output planes, an image-group's or (depthwise) one, and the tasks
// run on the pool: a task over those planes can then follow each one on
// the same worker while its planes are in cache. Slabs across the batch
// and the direct route's runs of tiles end no plane a task, and with
// parallelGEMM the tasks run in turn on the calling goroutine, which
// would run a memory-bound pass on one thread.
func (pl *convPlan) wholePlanes() bool {
	switch pl.gemm.route {
	case routeDirect, routeDirectMasked:
		return pl.gemm.tileChunks == 1 && !pl.gemm.parallelGEMM
	case routePadded, routePointwise:
		return !pl.gemm.parallelGEMM
	}
	return pl.route == routeDepthwise
}

// epilogue is the per-output-channel y = act(y*scale[k] + shift[k]) a
// forward convolution applies to its output (nil: none).
type epilogue struct {
	scale, shift []float32
	act          Activation
}

// apply runs the epilogue of channel k over y in place.
func (e *epilogue) apply(k int, y []float32) {
	if e != nil {
		active.elementwise.scaleShift(y, y, e.scale[k], e.shift[k], e.act)
	}
}

// convGEMM runs the forward convolution p as the GEMMs of plan g, y =
// beta*y + conv (+ bias, then the epilogue e, only with beta 0), with the
// weights packed once for every image and slab, then planes (see
// convForward), which only a route of wholePlanes may be given. p is g.q, or the strided
// 1x1 convolution g.q is the subsampled form of. With flip set, w is
// instead the weight of the convolution p undoes, [C][K/G][KH][KW] seen
// from p, and is used transposed per group and rotated 180 degrees: the
// backward to the input of a stride-1 convolution is such a forward one.
func convGEMM(p *ConvParams, g *gemmConvPlan, x, w, bias, y []float32, beta float32, flip bool, e *epilogue, planes *task) {
	cg, kg := p.C/p.Groups, p.K/p.Groups
	kk := p.KH * p.KW
	rows := cg * kk
	size := packedASize(kg, rows) // also packDirectA's size
	// The direct routes pack their own panels (directSplit).
	direct := g.route == routeDirect || g.route == routeDirectMasked
	key := packKey{site: packForward, direct: direct, path: active.path, c: p.C, k: p.K, kh: p.KH, kw: p.KW, groups: p.Groups}
	if flip {
		key.site = packFlipped
	}
	packed := packedFor(w, key, size*p.Groups)
	var wf *[]float32
	switch {
	case !packed.fresh:
	case flip && kk == 1:
		// A 1x1 kernel needs no rotation: the flipped weight is each
		// group's [C/G][K/G] block transposed, which the packer reads
		// as is (a transposing copy of a large w misses the cache on
		// every write).
		packConvWeights(true, false, p.Groups, kg, rows, w, kg, kg*rows, packed.a, size)
	case flip:
		// wf[g][k][c][kh][kw] = w[g][c][k][KH-1-kh][KW-1-kw].
		wf = getScratch(p.K * rows)
		flipConvWeights(p.Groups, cg, kg, kk, w, *wf)
		packConvWeights(false, direct, p.Groups, kg, rows, *wf, rows, kg*rows, packed.a, size)
	default:
		packConvWeights(false, direct, p.Groups, kg, rows, w, rows, kg*rows, packed.a, size)
	}
	var sub *[]float32
	if g.subsample {
		sub = getScratch(p.N * p.C * g.q.H * g.q.W)
		j := newConvJob(p, x, nil, nil, *sub)
		parallelFor(p.N*p.C, j.subsampleFn)
		j.release()
		x = *sub
	}
	j := newConvJob(&g.q, x, packed.a, bias, y)
	j.beta, j.packedSize, j.epi, j.planes = beta, size, e, planes
	switch g.route {
	case routeDirect, routeDirectMasked:
		j.setDirect(g.tileChunks)
		j.run(g.tasks, g.parallelGEMM, j.forwardDirectFn)
	case routePadded:
		j.setPhases()
		j.run(g.tasks, g.parallelGEMM, j.forwardPaddedFn)
	case routePointwise:
		j.run(g.tasks, g.parallelGEMM, j.pointwiseFn)
	case routeGathered:
		j.slabs, j.slabPanels, j.slabMax = g.slabs, g.slabPanels, g.slabWidth
		j.run(g.tasks, g.parallelGEMM, j.forwardFn)
	case routeIm2col:
		j.slabs, j.slab = g.slabs, g.slabWidth
		j.run(g.tasks, g.parallelGEMM, j.forwardIm2colFn)
	default:
		panic(fmt.Sprintf("kernels: forward convolution planned on the %s route", g.route))
	}
	j.release()
	packed.done(w, key)
	if wf != nil {
		putScratch(wf)
	}
	if sub != nil {
		putScratch(sub)
	}
}

// Conv2dBackwardData adds the gradient with respect to the input to dx.
func Conv2dBackwardData(p ConvParams, dy, w, dx []float32) {
	conv2dBackwardData(p, dy, w, dx, true, nil)
}

// Conv2dBackwardDataSet overwrites dx with the gradient with respect to
// the input; dx's contents are never read (a fresh gradient buffer needs
// no clearing, and stride-1 convolutions store instead of adding).
func Conv2dBackwardDataSet(p ConvParams, dy, w, dx []float32) {
	conv2dBackwardData(p, dy, w, dx, false, nil)
}

// Conv2dBackwardDataMomentsBackward stores dc, the gradient with respect
// to the input, as Conv2dBackwardDataSet(p, dy, w, dc) does, then adds
// into dx (or, with set, overwrites dx with) what
// ScaleShiftMomentsBackward(N, C, H*W, x, scale, shift, y, dc, dx,
// dMoments, act, set) would: the backward pass of a depthwise
// convolution whose input y is a training step's batch norm of x (with
// its activation), and of that batch norm. On the depthwise route each
// task runs the batch norm's backward on each plane of dc right after
// writing it, while it is in cache, rather than reading dc back from
// memory in a second pass; elsewhere the two calls run in turn. Either
// way the result is bit for bit that of the two calls: the same kernels
// run on each plane.
func Conv2dBackwardDataMomentsBackward(p ConvParams, dy, w, dc, x, scale, shift, y, dx, dMoments []float32, act Activation, set bool) {
	n := p.xLen()
	p.check("Conv2dBackwardDataMomentsBackward", sliceLen{"dc", len(dc), n}, sliceLen{"x", len(x), n}, sliceLen{"y", len(y), n}, sliceLen{"dx", len(dx), n},
		sliceLen{"scale", len(scale), p.C}, sliceLen{"shift", len(shift), p.C}, sliceLen{"dMoments", len(dMoments), 2 * p.C})
	hw := p.H * p.W
	t := newScaleShiftMomentsBackward(p.N, p.C, hw, x, scale, shift[:p.C], y, dc[:n], dx, dMoments, act, set)
	if !conv2dBackwardData(p, dy, w, dc, false, t) {
		t.spread(p.N*p.C, n)
	}
	t.release()
}

// conv2dBackwardData runs the backward pass to the input, adding into dx
// (accumulate) or storing. planes, when not nil, is a task over dx's
// N*C planes that the depthwise route runs on each plane once written;
// it reports whether it did.
func conv2dBackwardData(p ConvParams, dy, w, dx []float32, accumulate bool, planes *task) bool {
	p.check("Conv2dBackwardData", sliceLen{"dy", len(dy), p.yLen()}, sliceLen{"w", len(w), p.wLen()},
		sliceLen{"dx", len(dx), p.xLen()})
	pl := p.plan(passBackwardData)
	switch pl.route {
	case routeDepthwise:
		j := newConvJob(&p, dx, w, nil, dy)
		j.beta, j.dwK, j.planes = 0, pl.dwKernel, planes // dwBackwardData: store rather than add
		if accumulate {
			j.beta = 1
		}
		parallelFor(pl.tasks, j.dwBackwardDataFn)
		j.release()
		return planes != nil
	case routeFlipped:
		beta := float32(1)
		if !accumulate {
			beta = 0
		}
		convGEMM(&pl.gemm.q, &pl.gemm, dy, w, nil, dx, beta, true, nil, nil)
		return false
	}
	if !accumulate {
		Fill(dx[:p.xLen()], 0) // the strided routes add into dx (on the pool: a batch of images at the stem)
	}
	if pl.route == routeStrided1x1 {
		// The pointwise convolution's gradient, into the subsampled
		// planes, added back every stride.
		sub := getScratch(pl.gemm.q.yLen())
		convGEMM(&pl.gemm.q, &pl.gemm, dy, w, nil, *sub, 0, true, nil, nil)
		j := newConvJob(&p, dx, nil, nil, *sub)
		parallelFor(p.N*p.C, j.upsampleFn)
		j.release()
		putScratch(sub)
		return false
	}
	// Strided: dcol = w^T dy per group, folded back into dx.
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	size := packedASize(rows, kg)
	key := packKey{site: packStridedTrans, path: active.path, c: p.C, k: p.K, kh: p.KH, kw: p.KW, groups: p.Groups}
	packed := packedFor(w, key, size*p.Groups)
	if packed.fresh {
		packConvWeights(true, false, p.Groups, rows, kg, w, rows, kg*rows, packed.a, size)
	}
	j := newConvJob(&p, dx, packed.a, nil, dy)
	j.packedSize, j.imgChunk = size, pl.imgChunk
	switch pl.route {
	case routePadded:
		j.setPhases()
		j.run(pl.tasks, pl.parallelGEMM, j.backwardDataPaddedFn)
	case routeCol2im:
		j.run(pl.tasks, pl.parallelGEMM, j.backwardDataCol2imFn)
	case routeGathered:
		j.run(pl.tasks, pl.parallelGEMM, j.backwardDataFn)
	default:
		panic(fmt.Sprintf("kernels: backward-data convolution planned on the %s route", pl.route))
	}
	j.release()
	packed.done(w, key)
	return false
}

// Conv2dBackwardWeight adds the gradient with respect to the weight to dw.
func Conv2dBackwardWeight(p ConvParams, x, dy, dw []float32) {
	p.check("Conv2dBackwardWeight", sliceLen{"x", len(x), p.xLen()}, sliceLen{"dy", len(dy), p.yLen()},
		sliceLen{"dw", len(dw), p.wLen()})
	pl := p.plan(passBackwardWeight)
	j := newConvJob(&p, x, dw, nil, dy)
	j.wgRoute, j.wgTransposed, j.wgDepth, j.wgAcrossImages = pl.route, pl.transposed, pl.depth, pl.acrossImages
	j.dwK = pl.dwKernel
	if pl.route == routePadded {
		j.setPhases()
	}
	j.parallelGEMM = pl.parallelGEMM
	switch pl.split {
	case splitChannels:
		parallelFor(pl.tasks, j.dwBackwardWeightFn)
	case splitGroups:
		parallelFor(pl.tasks, j.backwardWeightGroupsFn)
	case splitImages:
		j.chunks = pl.chunks
		partial := getScratch((j.chunks - 1) * p.wLen())
		j.partial = *partial
		parallelFor(j.chunks, j.backwardWeightImagesFn)
		// The partial sums added in chunk order, blocks of dw on the
		// pool (serial, 15 partials of resnet18's largest weights took
		// tens of ms at 16 threads).
		parallelFor(numBlocks(p.wLen()), j.reducePartialsFn)
		j.partial = nil
		putScratch(partial)
	default:
		j.weightGrad(dw, 0, p.Groups, 0, p.N)
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
// per pooled job, so passing them to parallelFor allocates nothing. Its
// fields are grouped by the routes that use them; the plan set the
// parameters among them.
type convJob struct {
	// Every route: the convolution, x the input (or dx), w the weight
	// (or dw, or the packed weights), y the output (or dy), and whether
	// each GEMM is split over the pool.
	p             ConvParams
	x, w, bias, y []float32
	parallelGEMM  bool

	// The GEMM routes: w holds per-group packed weights, packedSize
	// apart; forward ones compute y = beta*y + conv and apply epi, when
	// set, to each output piece once written.
	packedSize int
	beta       float32
	epi        *epilogue

	// Forward routes whose tasks write whole planes (wholePlanes): a
	// task run over each task's planes once they are written (planesDone),
	// or nil.
	planes *task

	// Gathered and im2col slabs (forward): slabs of the N*OH*OW output
	// columns, each slab columns wide (im2col), or each a run of whole
	// nr-column panels of the slabPanels, at most slabMax columns
	// (gathered).
	slab, slabs, slabPanels, slabMax int

	// Padded and gathered backward to the input: images per task.
	imgChunk int

	// Depthwise: the size of the direct kernels, 0 for the Go loops.
	dwK int

	// The phase buffer of the direct and padded routes (conv_phase.go):
	// a phase plane's rows and width, the buffer's length, each tap's
	// offset (and as ints, rowOff, for the GEMMs that read the buffer's
	// rows in place), and what each input row fills.
	dHq, dWq, dLen int
	dOff           []int32
	rowOff         []int
	dFill          []phaseFill

	// Direct: tiles of two groups of 8 outputs per plane, the tiles'
	// runs per image, the groups of an output row, the phase buffer's
	// length with the room its widest reads need.
	tiles, tileChunks, rowGroups, dCap int

	// The weight gradient: its route (padded, pointwise or im2col),
	// dw^T or not, its products' depth (in whole images or not), and
	// the image chunks of splitImages with their partial sums.
	wgRoute        convRoute
	wgTransposed   bool
	wgDepth        int
	wgAcrossImages bool
	chunks         int
	partial        []float32

	forwardFn, forwardPaddedFn, pointwiseFn, backwardDataFn func(lo, hi int)
	forwardIm2colFn, backwardDataCol2imFn, subsampleFn      func(lo, hi int)
	upsampleFn                                              func(lo, hi int)
	forwardDirectFn, backwardDataPaddedFn                   func(lo, hi int)
	backwardWeightGroupsFn, backwardWeightImagesFn          func(lo, hi int)
	reducePartialsFn                                        func(lo, hi int)
	dwForwardFn, dwBackwardDataFn, dwBackwardWeightFn       func(lo, hi int)
}

var convJobs = sync.Pool{New: func() any {
	j := new(convJob)
	j.forwardFn = j.forward
	j.forwardIm2colFn = j.forwardIm2col
	j.backwardDataCol2imFn = j.backwardDataCol2im
	j.subsampleFn = j.subsample
	j.pointwiseFn = j.pointwise
	j.forwardPaddedFn = j.forwardPadded
	j.forwardDirectFn = j.forwardDirect
	j.backwardDataFn = j.backwardData
	j.backwardDataPaddedFn = j.backwardDataPadded
	j.upsampleFn = j.upsample
	j.backwardWeightGroupsFn = j.backwardWeightGroups
	j.backwardWeightImagesFn = j.backwardWeightImages
	j.reducePartialsFn = j.reducePartials
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
	j.x, j.w, j.bias, j.y, j.epi, j.planes = nil, nil, nil, nil, nil, nil
	convJobs.Put(j)
}

// run runs fn over tasks [0, n): spread over the pool, or with
// parallelGEMM in turn, each GEMM spread over the pool instead.
func (j *convJob) run(n int, parallelGEMM bool, fn func(lo, hi int)) {
	j.parallelGEMM = parallelGEMM
	if parallelGEMM {
		fn(0, n)
		return
	}
	parallelFor(n, fn)
}

// store writes one run of output channel ch from the GEMM tile src into
// dst: adds the bias, blends with beta*dst and applies the epilogue, in
// one vector pass for the common cases (a scalar loop here was an eighth
// of a small-image convolution's time).
func (j *convJob) store(ch int, src, dst []float32) {
	var b float32
	if j.bias != nil {
		b = j.bias[ch]
	}
	switch {
	case j.beta == 0 && b == 0 && j.epi != nil:
		active.elementwise.scaleShift(dst, src, j.epi.scale[ch], j.epi.shift[ch], j.epi.act)
		return
	case j.beta == 0 && b == 0:
		copy(dst, src)
	case j.beta == 0:
		addScalarRange(b, src, dst)
	case j.beta == 1 && b == 0:
		active.elementwise.add(dst, dst, src)
	default:
		for i, v := range src {
			dst[i] = j.beta*dst[i] + v + b
		}
	}
	j.epi.apply(ch, dst)
}

// planesDone runs the planes task, if any, over output planes [pl,
// pl+n), which the calling task has just finished.
func (j *convJob) planesDone(pl, n int) {
	if j.planes != nil {
		j.planes.run(pl, pl+n)
	}
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }
