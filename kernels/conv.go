package kernels

// 2-D convolution, forward and both backwards (SPEC section 1, kernels).
//
// A convolution of group g of image n is the GEMM
// y[n,g] (Kg x OH*OW) = w[g] (Kg x Cg*KH*KW) * col (Cg*KH*KW x OH*OW),
// where col is the unfolded input. The weights are packed once per call;
// how col reaches the micro-kernel depends on the shape:
//   - output rows a multiple of 8 wide, planes of 16, or few output
//     channels and rows that groups of 8 fill well (AVX2): no col at all,
//     the micro-kernel reads the framed input in place and writes y (the
//     direct path, conv_direct.go);
//   - wide images: col's rows are shifted windows of the zero-padded
//     image, split by stride phase when strided, packed straight from it
//     (implicit GEMM);
//   - 1x1, stride 1, no padding (and wide): x already is col;
//   - otherwise (small images): a slab of columns at a time
//     across the batch, so no tile is left mostly empty by a small
//     image, gathered from x while packing through per-tap offset tables
//     (one table serves every channel); with few channels (the 7x7 stem)
//     im2col copies row segments into the slab instead.
//
// Backward to the input of a stride-1 convolution is a forward one of dy
// with the weights transposed per group and rotated 180 degrees; a
// strided 1x1 one is a pointwise one added back every stride; other
// strided ones compute dcol = w^T dy and add it back into dx: on wide
// images each row of dcol as one run into the phase buffer (the adjoint
// of the implicit GEMM's packing), on small ones through the forward
// gather's tables (or col2im). Backward to the weights
// is dy col^T summed over images. Depthwise convolutions (groups == C ==
// K) run direct kernels instead: their GEMMs would be 1 x 9 x OH*OW.

import (
	"fmt"
	"math"
	"slices"
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

// pointwiseMaxWeights bounds (1 MiB) the weights of one group for which a
// pointwise convolution on images of fewer than 256 pixels runs image by
// image rather than in slabs (measured on 2 AVX2 cores: 1.5-2x faster up
// to 1024x256 weights at 14x14 and 960x160 at 7x7, 1.2x slower at
// 2048x512 and 1280x320 at 7x7).
const pointwiseMaxWeights = 1 << 18

// convSlabFloats bounds one im2col slab (256 KiB), so it lives in L2
// next to the packed weights.
const convSlabFloats = 64 << 10

// gatherMinChannels is the fewest input channels per group for which
// the unfolded input is gathered through tap tables (built once per slab,
// used once per channel) rather than copied by im2col in row segments
// (measured on the 7x7 stem, 3 channels: the tables cost as much as
// the gathers, and im2col is 1.7x faster overall).
const gatherMinChannels = 16

// int32Offsets reports whether a gather table over cols output columns,
// images of ohw columns and perImage input elements apart, fits int32.
func int32Offsets(cols, ohw, perImage int) bool {
	return (cols/ohw+2)*perImage <= math.MaxInt32
}

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
	e := &epilogue{scale: scale, shift: shift, act: act}
	if p.depthwise() {
		j := newConvJob(&p, x, w, bias, y)
		j.epi = e
		parallelFor(p.N*p.C, j.dwForwardFn)
		j.release()
		return
	}
	convGEMMEpi(&p, x, w, bias, y, e)
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
		scaleShiftImpl(y, y, e.scale[k], e.shift[k], e.act)
	}
}

// convGEMM runs the forward convolution p as GEMMs, y = beta*y + conv,
// with the weights packed once for every image and slab. With flip set,
// w is instead the weight of the convolution p undoes, [C][K/G][KH][KW]
// seen from p, and is used transposed per group and rotated 180 degrees:
// the backward-data pass of a stride-1 convolution is such a forward one.
func convGEMM(p *ConvParams, x, w, bias, y []float32, beta float32, flip bool) {
	convGEMMFull(p, x, w, bias, y, beta, flip, nil)
}

// convGEMMEpi is convGEMM (beta 0, no flip) with an epilogue.
func convGEMMEpi(p *ConvParams, x, w, bias, y []float32, e *epilogue) {
	convGEMMFull(p, x, w, bias, y, 0, false, e)
}

// convGEMMFull is convGEMM with an optional epilogue (only with beta 0).
func convGEMMFull(p *ConvParams, x, w, bias, y []float32, beta float32, flip bool, e *epilogue) {
	cg, kg := p.C/p.Groups, p.K/p.Groups
	kk := p.KH * p.KW
	rows := cg * kk
	size := packedASize(kg, rows) // also packDirectA's size
	packed := getScratch(size * p.Groups)
	// The direct path packs its own panels (directSplit); a 1x1 kernel
	// never takes it (pointwise or subsampled to pointwise below).
	direct := kk > 1 && useDirect(p)
	var wf *[]float32
	switch {
	case flip && kk == 1:
		// A 1x1 kernel needs no rotation: the flipped weight is each
		// group's [C/G][K/G] block transposed, which the packer reads
		// as is (a transposing copy of a large w misses the cache on
		// every write).
		for g := range p.Groups {
			packWholeA(true, kg, rows, 1, w[g*kg*rows:], kg, (*packed)[g*size:])
		}
	case flip:
		// wf[g][k][c][kh][kw] = w[g][c][k][KH-1-kh][KW-1-kw], reading w
		// in order (strided reads of a large w miss the cache every time).
		wf = getScratch(p.K * rows)
		for g := range p.Groups {
			for c := range cg {
				for k := range kg {
					src := w[((g*cg+c)*kg+k)*kk:][:kk]
					dst := (*wf)[((g*kg+k)*cg+c)*kk:][:kk]
					for i, v := range src {
						dst[kk-1-i] = v
					}
				}
			}
		}
		w = *wf
		fallthrough
	default:
		for g := range p.Groups {
			if direct {
				packDirect(kg, rows, kBlock(rows), w[g*kg*rows:], (*packed)[g*size:])
				continue
			}
			packWholeA(false, kg, rows, 1, w[g*kg*rows:], rows, (*packed)[g*size:])
		}
	}
	var sub *[]float32
	if kk == 1 && p.PadH == 0 && p.PadW == 0 && (p.StrideH > 1 || p.StrideW > 1) {
		// A strided 1x1 convolution (ResNet's downsampling shortcut) is
		// a pointwise one on the subsampled input: one strided copy
		// rather than a table gather per packed element.
		q := *p
		q.H, q.W, q.StrideH, q.StrideW = p.OutH(), p.OutW(), 1, 1
		sub = getScratch(p.N * p.C * q.H * q.W)
		j := newConvJob(p, x, nil, nil, *sub)
		parallelFor(p.N*p.C, j.subsampleFn)
		j.release()
		p, x = &q, *sub
	}
	j := newConvJob(p, x, *packed, bias, y)
	j.beta, j.packedSize, j.epi = beta, size, e
	ohw := p.OutH() * p.OutW()
	switch {
	case direct:
		j.setDirect()
		j.overTasks(p.N*p.Groups*j.tileChunks, j.forwardDirectFn)
	case !p.pointwise() && paddedWaste(p) <= 1.0/14:
		// Rows of the unfolded input are shifted windows of the
		// zero-framed image (split by stride phase when strided):
		// packed straight from it, no im2col. Narrower images would
		// waste too many wrapped-around columns.
		j.setPhases()
		j.overTasks(p.N*p.Groups, j.forwardPaddedFn)
	case p.pointwise() && (ohw >= 256 || ohw >= 32 && kg*rows <= pointwiseMaxWeights):
		// x already is the unfolded input, image by image, and its
		// rows are wide enough that the last tile wastes little. A
		// small image (MobileNet's and ResNet's 14x14 and 7x7 stages)
		// still gains from skipping im2col while the group's weights
		// stay cache-resident from one image to the next; larger
		// weights are better streamed once per slab across the batch.
		j.overTasks(p.N*p.Groups, j.pointwiseFn)
	case cg >= gatherMinChannels && int32Offsets(slabCols(rows, p.N*ohw)+gemmNR, ohw, p.C*p.H*p.W):
		// Slabs of columns across the batch, gathered from the input
		// as they are packed (no im2col buffer): no tile is left
		// mostly empty by a small image, and the slabs are the
		// parallel tasks.
		j.setSlabs(p.N*ohw, slabCols(rows, p.N*ohw))
		j.overTasks(p.Groups*j.slabs, j.forwardFn)
	default:
		// Few channels (the stem): a gather table would serve only
		// cg rows, so im2col copies whole row segments into slabs.
		j.slab = slabCols(rows, p.N*ohw)
		j.slabs = (p.N*ohw + j.slab - 1) / j.slab
		j.overTasks(p.Groups*j.slabs, j.forwardIm2colFn)
	}
	j.release()
	putScratch(packed)
	if wf != nil {
		putScratch(wf)
	}
	if sub != nil {
		putScratch(sub)
	}
}

// paddedWaste is the share of the GEMM columns forwardPadded computes
// and drops: the phase rows' width past the output's.
func paddedWaste(p *ConvParams) float64 {
	wq := (p.W + 2*p.PadW + p.StrideW - 1) / p.StrideW
	return float64(wq-p.OutW()) / float64(wq)
}

// upsampleMinWidth is the narrowest output for which the backward to the
// input of a strided 1x1 convolution runs the pointwise one and adds it
// back every stride, rather than scattering dcol through tap tables
// (one AVX2 core, medians of alternated runs: 1.0-1.6x at 8 to 28 wide,
// 0.8x at resnet18's 7 wide, where the pointwise GEMM on 49-column
// images is the slower one).
const upsampleMinWidth = 8

// subsample copies input planes [lo, hi) of x, every StrideH-th row and
// StrideW-th column, into y (OH x OW planes).
func (j *convJob) subsample(lo, hi int) { j.strideRows(lo, hi, false) }

// upsample adds the OH x OW planes [lo, hi) of y into x every
// StrideH-th row and StrideW-th column: the adjoint of subsample.
func (j *convJob) upsample(lo, hi int) { j.strideRows(lo, hi, true) }

// strideRows pairs every StrideH-th row of planes [lo, hi) of x with a
// row of y and copies it there, or with fold adds y's row back into it.
func (j *convJob) strideRows(lo, hi int, fold bool) {
	p := &j.p
	oh0, ow0 := p.OutH(), p.OutW()
	for pl := lo; pl < hi; pl++ {
		x := j.x[pl*p.H*p.W:][:p.H*p.W]
		y := j.y[pl*oh0*ow0:][:oh0*ow0]
		for oh := range oh0 {
			if fold {
				foldRow(x[oh*p.StrideH*p.W:], y[oh*ow0:][:ow0], p.StrideW)
			} else {
				fillRow(y[oh*ow0:][:ow0], x[oh*p.StrideH*p.W:], p.StrideW)
			}
		}
	}
}

// Conv2dBackwardData adds the gradient with respect to the input to dx.
func Conv2dBackwardData(p ConvParams, dy, w, dx []float32) {
	conv2dBackwardData(p, dy, w, dx, true)
}

// Conv2dBackwardDataSet overwrites dx with the gradient with respect to
// the input; dx's contents are never read (a fresh gradient buffer needs
// no clearing, and stride-1 convolutions store instead of adding).
func Conv2dBackwardDataSet(p ConvParams, dy, w, dx []float32) {
	conv2dBackwardData(p, dy, w, dx, false)
}

func conv2dBackwardData(p ConvParams, dy, w, dx []float32, accumulate bool) {
	p.check("Conv2dBackwardData", sliceLen{"dy", len(dy), p.yLen()}, sliceLen{"w", len(w), p.wLen()},
		sliceLen{"dx", len(dx), p.xLen()})
	stride1 := p.StrideH == 1 && p.StrideW == 1 && p.PadH <= p.DilH*(p.KH-1) && p.PadW <= p.DilW*(p.KW-1)
	if p.depthwise() {
		j := newConvJob(&p, dx, w, nil, dy)
		j.beta = 0 // dwBackwardData: store rather than add
		if accumulate {
			j.beta = 1
		}
		parallelFor(p.N*p.C, j.dwBackwardDataFn)
		j.release()
		return
	}
	if !accumulate && !stride1 {
		clear(dx[:p.xLen()]) // the strided paths add into dx
	}
	if stride1 {
		// Stride 1: dx += conv(dy, rotated transposed w) with the
		// complementary padding, which keeps the GEMM output at C rows
		// and needs no col2im.
		q := ConvParams{N: p.N, C: p.K, H: p.OutH(), W: p.OutW(), K: p.C, KH: p.KH, KW: p.KW,
			StrideH: 1, StrideW: 1, PadH: p.DilH*(p.KH-1) - p.PadH, PadW: p.DilW*(p.KW-1) - p.PadW,
			DilH: p.DilH, DilW: p.DilW, Groups: p.Groups}
		beta := float32(1)
		if !accumulate {
			beta = 0
		}
		convGEMM(&q, dy, w, nil, dx, beta, true)
		return
	}
	if p.KH*p.KW == 1 && p.PadH == 0 && p.PadW == 0 && p.OutW() >= upsampleMinWidth {
		// A strided 1x1 convolution is a pointwise one on the
		// subsampled input (see convGEMM): its backward is the
		// pointwise one's, added back every stride.
		q := p
		q.H, q.W, q.StrideH, q.StrideW = p.OutH(), p.OutW(), 1, 1
		sub := getScratch(q.xLen())
		conv2dBackwardData(q, dy, w, *sub, false)
		j := newConvJob(&p, dx, nil, nil, *sub)
		parallelFor(p.N*p.C, j.upsampleFn)
		j.release()
		putScratch(sub)
		return
	}
	// Strided: dcol = w^T dy per group, folded back into dx.
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	size := packedASize(rows, kg)
	packed := getScratch(size * p.Groups)
	for g := range p.Groups {
		packWholeA(true, rows, kg, 1, w[g*kg*rows:], rows, (*packed)[g*size:])
	}
	j := newConvJob(&p, dx, *packed, nil, dy)
	j.packedSize = size
	ohw := p.OutH() * p.OutW()
	j.imgChunk = max(1, min((384+ohw-1)/ohw, p.N/parWorkers()))
	switch {
	case p.KH*p.KW > 1 && paddedWaste(&p) <= 1.0/14:
		// dcol's rows add into the phase buffer as contiguous runs
		// (as in the forward pass, narrower images waste too many
		// wrapped-around columns: 0.85-1.0x at resnet20's 8 wide;
		// 1.0-1.1x at resnet18's 14 and 28 wide, 1.5-2x for the 7x7
		// and 3x3 stems and resnet20's 16 wide, on one AVX2 core).
		j.setPhases()
		j.overTasks(p.Groups*((p.N+j.imgChunk-1)/j.imgChunk), j.backwardDataPaddedFn)
	case cg < gatherMinChannels || !int32Offsets(j.imgChunk*ohw, ohw, max(p.C*p.H*p.W, p.K*ohw)):
		j.overTasks(p.N*p.Groups, j.backwardDataCol2imFn)
	default:
		// Tasks of whole images (imgChunk above: whose dx no other
		// task touches), enough of them to give each a few hundred
		// columns, but at least one per worker.
		j.overTasks(p.Groups*((p.N+j.imgChunk-1)/j.imgChunk), j.backwardDataFn)
	}
	j.release()
	putScratch(packed)
}

// Conv2dBackwardWeight adds the gradient with respect to the weight to dw.
func Conv2dBackwardWeight(p ConvParams, x, dy, dw []float32) {
	p.check("Conv2dBackwardWeight", sliceLen{"x", len(x), p.xLen()}, sliceLen{"dy", len(dy), p.yLen()},
		sliceLen{"dw", len(dw), p.wLen()})
	j := newConvJob(&p, x, dw, nil, dy)
	// Where the phase buffer's wasted columns cost less than unfolding,
	// nothing is unfolded: col^T's rows are read from the buffer in
	// place. One AVX2 core, against im2col: 1.15-1.3x on
	// resnet18's 3x3 at 56 and 28, 1.3-2x on resnet20's at 32; at 14
	// wide (an eighth wasted) 1.3x with 256 output channels, 1.6-2.6x
	// with 32 and 64; at 7 wide (2/9 wasted) 1.5x with 64 channels but
	// 0.9x with 512 (im2col weighs less against more output channels).
	// 1x1 strided ones and the stems (few channels) were slower
	// (0.5-0.85x).
	waste := paddedWaste(&p)
	j.wgPadded = p.KH*p.KW > 1 && p.C/p.Groups >= gatherMinChannels && !p.depthwise() &&
		(waste <= 1.0/8 || waste <= 1.0/4 && p.K/p.Groups <= 64)
	if j.wgPadded {
		j.setPhases()
	}
	workers := parWorkers()
	switch {
	case p.depthwise():
		parallelFor(p.C, j.dwBackwardWeightFn)
	case p.Groups >= workers:
		// Groups own disjoint slices of dw: one serial GEMM chain each.
		j.parallelGEMM = false
		parallelFor(p.Groups, j.backwardWeightGroupsFn)
	case p.N >= 2 && workers >= 2:
		// Every image adds into all of dw: chunks of images into
		// separate buffers, so the unfolding runs in parallel too.
		j.parallelGEMM = false
		j.chunks = min(p.N, workers)
		partial := getScratch((j.chunks - 1) * p.wLen())
		j.partial = *partial
		parallelFor(j.chunks, j.backwardWeightImagesFn)
		for c := 1; c < j.chunks; c++ {
			for i, v := range j.partial[(c-1)*p.wLen() : c*p.wLen()] {
				dw[i] += v
			}
		}
		j.partial = nil
		putScratch(partial)
	default:
		j.parallelGEMM = true
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
	// epi, when set, is applied to each output piece once written.
	epi *epilogue

	// The forward pass's slabs of the N*OH*OW output columns: slabs of
	// them, each slab columns wide (im2col), or each a run of whole
	// nr-column panels of the slabPanels, at most slabMax columns
	// (gathered).
	slab, slabs, slabPanels, slabMax int
	// Images per task of the strided backward to the input.
	imgChunk int
	// dOff as ints (setPhases), for the GEMMs that read the phase
	// buffer's rows in place (forwardPadded, weightGradPadded).
	rowOff []int
	// The phase buffer (conv_direct.go, setPhases): a phase plane's rows
	// and width, each tap's offset, the buffer's length; the direct
	// path's tasks per image.
	dHq, dWq, dLen int
	dOff           []int32
	dFill          []phaseFill
	// The weight gradient goes through the phase buffer.
	wgPadded bool
	// The direct path: tiles of two groups of 8 outputs per plane, the
	// tiles' chunks per image, the groups of an output row, the phase
	// buffer's length with the room its widest reads need.
	tiles, tileChunks, rowGroups, dCap int
	// Image chunks of the weight gradient and their partial sums.
	chunks  int
	partial []float32

	forwardFn, forwardPaddedFn, pointwiseFn, backwardDataFn func(lo, hi int)
	forwardIm2colFn, backwardDataCol2imFn, subsampleFn      func(lo, hi int)
	upsampleFn                                              func(lo, hi int)
	forwardDirectFn, backwardDataPaddedFn                   func(lo, hi int)
	backwardWeightGroupsFn, backwardWeightImagesFn          func(lo, hi int)
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
	j.x, j.w, j.bias, j.y, j.epi = nil, nil, nil, nil, nil
	convJobs.Put(j)
}

// overTasks runs fn over tasks [0, n): spread over the pool when there
// are enough of them, else in turn with each GEMM spread over the pool.
func (j *convJob) overTasks(n int, fn func(lo, hi int)) {
	if n >= parWorkers() {
		j.parallelGEMM = false
		parallelFor(n, fn)
		return
	}
	j.parallelGEMM = true
	fn(0, n)
}

// pointwise computes (image, group) tasks [lo, hi) of a 1x1 stride-1
// unpadded convolution: y[n,g] = beta*y[n,g] + w[g] x[n,g] (+ bias).
func (j *convJob) pointwise(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	hw := p.H * p.W
	for t := lo; t < hi; t++ {
		n, g := t/p.Groups, t%p.Groups
		y := j.y[(n*p.K+g*kg)*hw:]
		sgemmPrepacked(kg, hw, cg, j.w[g*j.packedSize:], j.x[(n*p.C+g*cg)*hw:], hw, nil, colGather{}, j.beta, y, hw, false, j.parallelGEMM)
		if j.bias != nil {
			for k := range kg {
				b := j.bias[g*kg+k]
				yk := y[k*hw : (k+1)*hw]
				for i := range yk {
					yk[i] += b
				}
			}
		}
		if j.epi != nil {
			for k := range kg {
				j.epi.apply(g*kg+k, y[k*hw:(k+1)*hw])
			}
		}
	}
}

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
	ldo := roundUp(ns, gemmNR)
	// The last rows' reads run past the planes into the wrapped columns.
	xp := getScratch(j.phaseSpan(cols))
	out := getScratch(roundUp(kg, gemmMR) * ldo)
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
	}
	putScratch(xp)
	putScratch(out)
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
		scaleShiftImpl(dst, src, j.epi.scale[ch], j.epi.shift[ch], j.epi.act)
		return
	case j.beta == 0 && b == 0:
		copy(dst, src)
	case j.beta == 0:
		addScalarRange(b, src, dst)
	case j.beta == 1 && b == 0:
		addImpl(dst, dst, src)
	default:
		for i, v := range src {
			dst[i] = j.beta*dst[i] + v + b
		}
	}
	j.epi.apply(ch, dst)
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

// setSlabs splits total output columns into j.slabs slabs of whole
// panels, each at most about maxCols wide, as even as possible and, for
// an ungrouped convolution, as many as a multiple of the worker count,
// so no worker idles while another finishes a last slab.
func (j *convJob) setSlabs(total, maxCols int) {
	panels := (total + gemmNR - 1) / gemmNR
	j.slabPanels = panels
	j.slabs = (total + maxCols - 1) / maxCols
	if w := parWorkers(); j.p.Groups == 1 && w > 1 {
		j.slabs = roundUp(j.slabs, w)
	}
	j.slabs = min(j.slabs, panels)
	j.slabMax = (panels + j.slabs - 1) / j.slabs * gemmNR
}

// slabRange returns the columns [q0, q1) of slab sl.
func (j *convJob) slabRange(sl, total int) (q0, q1 int) {
	q0 = sl * j.slabPanels / j.slabs * gemmNR
	q1 = min(total, (sl+1)*j.slabPanels/j.slabs*gemmNR)
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
	out := getScratch(roundUp(kg, gemmMR) * ldo)
	for t := lo; t < hi; t++ {
		g, sl := t/j.slabs, t%j.slabs
		q0, q1 := j.slabRange(sl, total)
		nq := q1 - q0
		gth := colGather{tab: (*tab)[:kk*nq], kk: kk, plane: hw}
		gth.max = colTable(p, q0, nq, p.C*hw, gth.tab)
		if sgemmGather != nil {
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
	ldo := roundUp(ns, gemmNR)
	slab := getScratch(roundUp(rows, gemmMR) * ldo)
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
			if sgemmGather != nil {
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
	ldo := roundUp(ns, gemmNR)
	grid := getScratch(kg * ldb)
	clear(*grid) // the wrapped-around columns stay zero
	slab := getScratch(roundUp(rows, gemmMR) * ldo)
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
					addImpl(d, d, (*slab)[r*ldo+q-s0:][:run])
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

// phaseSpan is the phase buffer's length for a GEMM over cols columns
// an image that reads the buffer's rows in place: the row of the last
// tap starts at the largest offset and a wrapped-around column reaches
// up to a row past the planes.
func (j *convJob) phaseSpan(cols int) int {
	return max(j.dLen, int(slices.Max(j.dOff))+cols)
}

// toGrid lays the K/Groups output planes dy of one image-group on the
// phase buffer's output grid: row oh of plane k at grid[k*ld+oh*dWq:].
// The wrapped-around columns between rows are not written (they stay
// zero).
func (j *convJob) toGrid(grid []float32, ld int, dy []float32) {
	oh0, ow0 := j.p.OutH(), j.p.OutW()
	for k := range j.p.K / j.p.Groups {
		for oh := range oh0 {
			copy(grid[k*ld+oh*j.dWq:][:ow0], dy[(k*oh0+oh)*ow0:][:ow0])
		}
	}
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
	ldo := roundUp(j.slab, gemmNR)
	out := getScratch(roundUp(kg, gemmMR) * ldo)
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

// weightGrad adds to dw (all groups) the gradient of groups [g0, g1) over
// images [n0, n1): dw[g] += dy[n,g] col^T, the product's k running over
// slabs of output columns across images (small images would otherwise
// give products a few dozen deep, each streaming all of dw). One factor
// is packed from its transpose, an element at a time; when col has more
// rows than dy it computes dw[g]^T += col dy^T instead, so the smaller
// one is (a 3x3 layer's col has nine times dy's rows), and adds its
// transpose into dw once per group.
func (j *convJob) weightGrad(dw []float32, g0, g1, n0, n1 int) {
	if j.wgPadded {
		j.weightGradPadded(dw, g0, g1, n0, n1)
		return
	}
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	hw, ohw := p.H*p.W, p.OutH()*p.OutW()
	q0, q1 := n0*ohw, n1*ohw
	// Slabs within an image, or of whole small images when copying
	// their dy next to each other costs less than unfolding their x
	// (a pointwise x needs no unfolding within an image).
	ns := slabCols(rows, ohw)
	var slab, dyS, dwT *[]float32
	if ohw < weightGradMinDepth && kg < rows && !p.pointwise() {
		ns = min(q1-q0, (weightGradMinDepth+ohw-1)/ohw*ohw)
		dyS = getScratch(kg * ns)
	}
	if !p.pointwise() {
		slab = getScratch(rows * ns)
	}
	if rows > kg && kg <= weightGradMaxTransposed {
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

// weightGradMinDepth is the fewest output columns (the depth of its
// products) weightGrad takes at a time when there are that many, in
// whole images, even past the slab's cache budget: each product reads
// and writes all of dw.
const weightGradMinDepth = 256

// weightGradMaxTransposed bounds the output channels for which weightGrad
// computes dw^T: with more, packing col^T costs little beside the
// product, and dw^T's products re-read their B panels more often.
const weightGradMaxTransposed = 128

// dwForward computes depthwise planes [lo, hi) of the N*C planes.
func (j *convJob) dwForward(lo, hi int) {
	p := &j.p
	hw, ohw, kk := p.H*p.W, p.OutH()*p.OutW(), p.KH*p.KW
	g := newDWGeom(p)
	sc := getDWScratch(&g)
	for t := lo; t < hi; t++ {
		c := t % p.C
		var b float32
		if j.bias != nil {
			b = j.bias[c]
		}
		x, w, y := j.x[t*hw:(t+1)*hw], j.w[c*kk:(c+1)*kk], j.y[t*ohw:(t+1)*ohw]
		if dw3x3(p) {
			dw3x3Forward(&g, x, w, b, y, sc, false)
		} else {
			dwPlaneForwardGeneric(p, x, w, b, y)
		}
		j.epi.apply(c, y)
	}
	dwScratches.Put(sc)
}

// dwBackwardData adds (beta 1) or stores (beta 0) dx for depthwise
// planes [lo, hi). Both 3x3 strides become stride-1 passes with the taps
// rotated: over dy itself (with the complementary padding) or over dy
// spread out (stride 2).
func (j *convJob) dwBackwardData(lo, hi int) {
	p := &j.p
	hw, ohw, kk := p.H*p.W, p.OutH()*p.OutW(), p.KH*p.KW
	g := newDWGeom(p)
	q, flipped := dwFlipped3x3(p)
	flipped = flipped && dw3x3(p)
	spread := dw3x3(p) && p.StrideH == 2
	var gq dwGeom
	switch {
	case flipped:
		gq = newDWGeom(&q)
	case spread:
		q = ConvParams{N: 1, C: 1, H: p.H, W: p.W, K: 1, KH: 3, KW: 3, StrideH: 1, StrideW: 1,
			PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1}
		gq = newDWGeom(&q)
	}
	sc := getDWScratch(&gq)
	var rot [9]float32
	acc := j.beta != 0
	for t := lo; t < hi; t++ {
		c := t % p.C
		dy, w, dx := j.y[t*ohw:(t+1)*ohw], j.w[c*kk:(c+1)*kk], j.x[t*hw:(t+1)*hw]
		switch {
		case flipped:
			for i := range rot {
				rot[i] = w[8-i]
			}
			dw3x3Forward(&gq, dy, rot[:], 0, dx, sc, acc)
		case spread:
			dw3x3S2BackwardData(&g, &gq, dy, w, dx, sc, acc)
		default:
			if !acc {
				clear(dx)
			}
			dwPlaneBackwardDataGeneric(p, dy, w, dx)
		}
	}
	dwScratches.Put(sc)
}

// dwBackwardWeight adds dw for channels [lo, hi), summing over images.
func (j *convJob) dwBackwardWeight(lo, hi int) {
	p := &j.p
	hw, ohw, kk := p.H*p.W, p.OutH()*p.OutW(), p.KH*p.KW
	g := newDWGeom(p)
	sc := getDWScratch(&g)
	for c := lo; c < hi; c++ {
		for n := range p.N {
			t := n*p.C + c
			x, dy, dw := j.x[t*hw:(t+1)*hw], j.y[t*ohw:(t+1)*ohw], j.w[c*kk:(c+1)*kk]
			if dw3x3(p) {
				dw3x3BackwardWeight(&g, x, dy, dw, sc)
			} else {
				dwPlaneBackwardWeightGeneric(p, x, dy, dw)
			}
		}
	}
	dwScratches.Put(sc)
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// gemm is Sgemm with alpha 1, on the pool or not as the job decided.
func (j *convJob) gemm(transA, transB bool, m, n, k int, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc, j.parallelGEMM)
}
