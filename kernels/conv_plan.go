package kernels

// The convolution plan (docs/DESIGN.md, "Kernels"). One function,
// planConv, decides how a pass of a convolution runs on a kernel path
// with a number of workers: a named route (the algorithm) and the
// route's parameters (how its work is cut into tasks). The passes run
// what it returns and decide nothing themselves, so the plan can be
// printed (TraceConv) and tested (testdata/conv_plans.txt) as it runs.
// Every threshold it reads is a constant below, beside the measurement
// that set it.

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
)

// convPass names a pass of a convolution.
type convPass uint8

const (
	passForward        convPass = iota // y = conv(x, w)
	passBackwardData                   // dx from dy and w
	passBackwardWeight                 // dw from x and dy
)

func (s convPass) String() string {
	return [...]string{"forward", "backward-data", "backward-weight"}[s]
}

// convRoute names an algorithm that runs a convolution pass.
type convRoute uint8

const (
	// Per-plane direct kernels of a depthwise convolution (groups ==
	// C == K), whose GEMMs would be 1 x KH*KW x OH*OW (conv_depthwise.go).
	routeDepthwise convRoute = iota + 1
	// The direct micro-kernel reads the framed input in place and
	// writes y, on whole runs of 16 outputs (conv_direct.go) ...
	routeDirect
	// ... or with masked tiles, on rows not a multiple of 8 wide.
	routeDirectMasked
	// Implicit GEMM: the unfolded input's rows are shifted windows of
	// the phase buffer, packed (or, for the weight gradient, read) in
	// place (conv_padded.go, conv_weight.go).
	routePadded
	// A 1x1, stride-1, unpadded convolution: x already is the unfolded
	// input (conv_pointwise.go).
	routePointwise
	// Slabs of output columns across the batch, gathered from x through
	// per-tap tables while packing; backward to the input, added back
	// through the same tables (conv_gathered.go).
	routeGathered
	// Slabs across the batch unfolded by im2col (conv_gathered.go).
	routeIm2col
	// A strided 1x1 convolution: a pointwise one on the subsampled
	// input; backward, the pointwise one's, added back every stride
	// (conv_pointwise.go).
	routeStrided1x1
	// Backward to the input of a stride-1 convolution: a forward one of
	// dy with the weights transposed per group, rotated 180 degrees and
	// the complementary padding.
	routeFlipped
	// Backward to the input, image by image: dcol = w^T dy folded back
	// by col2im (conv_gathered.go).
	routeCol2im
)

func (r convRoute) String() string {
	return [...]string{"none", "depthwise", "direct", "direct masked", "padded implicit GEMM", "pointwise",
		"gathered slabs", "im2col slabs", "strided 1x1", "flipped forward", "col2im"}[r]
}

// weightSplit names how the weight gradient's work is shared out.
type weightSplit uint8

const (
	splitChannels weightSplit = iota // depthwise: a channel a task
	splitGroups                      // a group a task, its GEMMs serial
	splitImages                      // chunks of images into partial sums
	splitNone                        // one chain of GEMMs on the pool
)

// convPlan is how one pass of one convolution runs.
type convPlan struct {
	pass    convPass
	route   convRoute
	path    Path
	workers int
	// tasks is how many parallel tasks the route cuts its work into;
	// with fewer than workers they run in turn, each GEMM on the pool
	// (parallelGEMM).
	tasks        int
	parallelGEMM bool

	// gemm is the forward convolution a GEMM route computes: the pass
	// itself (forward), or for backward to the input the forward pass
	// over dy it becomes (routeFlipped, routeStrided1x1).
	gemm gemmConvPlan

	// Backward to the input, padded and gathered: images per task.
	imgChunk int

	// Depthwise: the size k of the direct k x k kernels, or 0 for the Go
	// loops of any size.
	dwKernel int

	// Backward to the weights.
	split      weightSplit
	chunks     int  // splitImages: image chunks
	transposed bool // im2col, pointwise: dw^T += col dy^T
	// depth is the output columns one product takes, within an image,
	// or (acrossImages) in whole images, at most a task's.
	depth        int
	acrossImages bool
}

// gemmConvPlan is how a forward convolution runs as GEMMs.
type gemmConvPlan struct {
	// q is the convolution the GEMMs compute: the planned one, its
	// flipped twin (backward to the input), or with subsample the
	// pointwise one on its subsampled input.
	q         ConvParams
	route     convRoute // direct, direct masked, padded, pointwise, gathered or im2col
	subsample bool      // the route runs on x subsampled every stride (strided 1x1)
	tasks     int
	// parallelGEMM: fewer tasks than workers, so each GEMM is split.
	parallelGEMM bool
	// Direct: each image-group's tiles cut into tileChunks runs.
	tileChunks int
	// Gathered and im2col: slabs of the N*OH*OW output columns, each of
	// slabPanels/slabs whole nr-column panels, at most slabWidth columns
	// (gathered), or slabWidth columns each (im2col).
	slabs, slabPanels, slabWidth int
}

// Thresholds of the plan. The measurements were taken on 2 shared AVX2
// cores (AMD Zen 3) unless they say otherwise: medians of alternated
// runs, new route against the one it replaced.
const (
	// directMaskedMaxK is the most output channels per group for which a
	// plane that needs masked tiles takes the direct path. One core, 3x3
	// stride 1, forward and backward to the input, alternated: 16
	// channels at 28 wide 1.3-2.3x, 32 at 14 1.1-1.6x, 48 at 28
	// 1.0-1.5x, 64 at 28 1.0-1.2x, 64 at 14 0.7-1.3x, 96 at 14
	// 0.8-1.0x, 128 at 28 0.8-1.2x.
	directMaskedMaxK = 64
	// directMaskedMaxIdle is the most of a masked plane's lanes that
	// may idle (7x7 planes idle a quarter): beyond it, and with more
	// channels than directMaskedMaxK, packing B costs the GEMM routes
	// less than the idle lanes and masked stores.
	directMaskedMaxIdle = 1.0 / 8
	// directTasksPerWorker: with fewer image-groups than this many per
	// worker, each image's tiles are cut into runs, so no worker idles.
	directTasksPerWorker = 2

	// paddedMaxWaste is the largest share of wrapped-around columns
	// (the phase rows' width past the output's) for which the forward
	// pass runs the padded implicit GEMM; narrower images waste too many.
	paddedMaxWaste = 1.0 / 14
	// paddedBackwardMaxWaste is its bound for the backward to the input
	// of a strided convolution, whose dcol rows add into the phase
	// buffer as contiguous runs: 0.85-1.0x at resnet20's 8 wide; 1.0-1.1x
	// at resnet18's 14 and 28 wide, 1.5-2x for the 7x7 and 3x3 stems
	// and resnet20's 16 wide (one AVX2 core).
	paddedBackwardMaxWaste = 1.0 / 14

	// pointwiseMinPixels: a pointwise convolution on images of at least
	// this many pixels runs image by image, wide enough that the last
	// tile wastes little.
	pointwiseMinPixels = 256
	// pointwiseSmallMinPixels and pointwiseMaxWeights (1 MiB): on a
	// smaller image (MobileNet's and ResNet's 14x14 and 7x7 stages) it
	// still runs image by image while the group's weights stay
	// cache-resident from one image to the next (measured on 2 AVX2
	// cores: 1.5-2x faster up to 1024x256 weights at 14x14 and 960x160
	// at 7x7, 1.2x slower at 2048x512 and 1280x320 at 7x7); larger
	// weights are better streamed once per slab across the batch.
	pointwiseSmallMinPixels = 32
	pointwiseMaxWeights     = 1 << 18

	// gatherMinChannels is the fewest input channels per group for
	// which the unfolded input is gathered through tap tables (built
	// once per slab, used once per channel) rather than copied by
	// im2col in row segments (measured on the 7x7 stem, 3 channels: the
	// tables cost as much as the gathers, and im2col is 1.7x faster
	// overall). The weight gradient's padded route needs as many.
	gatherMinChannels = 16
	// convSlabFloats bounds one slab of the unfolded input (256 KiB),
	// so it lives in L2 next to the packed weights.
	convSlabFloats = 64 << 10

	// upsampleMinWidth is the narrowest output for which the backward to
	// the input of a strided 1x1 convolution runs the pointwise one and
	// adds it back every stride, rather than scattering dcol through
	// tap tables (one AVX2 core: 1.0-1.6x at 8 to 28 wide, 0.8x at
	// resnet18's 7 wide, where the pointwise GEMM on 49-column images
	// is the slower one).
	upsampleMinWidth = 8
	// backwardDataChunkColumns: a task of the strided backward to the
	// input takes whole images (whose dx no other task touches), enough
	// for this many columns, but at least one task per worker.
	backwardDataChunkColumns = 384

	// Where the phase buffer's wasted columns cost less than unfolding,
	// the weight gradient unfolds nothing: col^T's rows are read from
	// the buffer in place. One AVX2 core, against im2col: 1.15-1.3x on
	// resnet18's 3x3 at 56 and 28, 1.3-2x on resnet20's at 32; at 14
	// wide (an eighth wasted) 1.3x with 256 output channels, 1.6-2.6x
	// with 32 and 64; at 7 wide (2/9 wasted) 1.5x with 64 channels but
	// 0.9x with 512 (im2col weighs less against more output channels).
	// 1x1 strided ones and the stems (few channels) were slower
	// (0.5-0.85x).
	weightPaddedMaxWaste      = 1.0 / 8
	weightPaddedFewKMaxWaste  = 1.0 / 4
	weightPaddedFewKMaxOutput = 64
	// weightGradMinDepth is the fewest output columns (the depth of its
	// products) the im2col weight gradient takes at a time when there
	// are that many, in whole images, even past the slab's cache
	// budget: each product reads and writes all of dw.
	weightGradMinDepth = 256
	// weightGradMaxTransposed bounds the output channels for which the
	// weight gradient computes dw^T (when col has more rows than dy):
	// with more, packing col^T costs little beside the product, and
	// dw^T's products re-read their B panels more often.
	weightGradMaxTransposed = 128
)

// planConv returns the plan of pass of the convolution p on path (one
// of Available()) with that many workers.
func planConv(p *ConvParams, pass convPass, path Path, workers int) convPlan {
	k := kernelsOf(path)
	pl := convPlan{pass: pass, path: path, workers: workers}
	if p.depthwise() {
		pl.route, pl.dwKernel, pl.tasks = routeDepthwise, dwKernel(p), p.N*p.C
		if _, flips := dwFlipped(p); pass == passBackwardData && p.StrideH == 1 && !flips {
			// A frame wider than k-1 has no complementary padding.
			pl.dwKernel = 0
		}
		if pass == passBackwardWeight {
			pl.split, pl.tasks = splitChannels, p.C
		}
		return pl
	}
	switch pass {
	case passForward:
		pl.gemm = planGEMMConv(p, &k, workers)
		pl.route, pl.tasks, pl.parallelGEMM = pl.gemm.route, pl.gemm.tasks, pl.gemm.parallelGEMM
		if pl.gemm.subsample {
			pl.route = routeStrided1x1
		}
	case passBackwardData:
		planBackwardData(&pl, p, &k)
	case passBackwardWeight:
		planBackwardWeight(&pl, p)
	}
	return pl
}

// planGEMMConv plans the forward convolution p as GEMMs.
func planGEMMConv(p *ConvParams, k *pathKernels, workers int) gemmConvPlan {
	g := gemmConvPlan{q: *p}
	if r := directRoute(p, k); r != 0 {
		g.route = r
		// Whole images when there are enough to share out, else runs
		// of tiles (each task then fills its image's buffer itself).
		images := p.N * p.Groups
		tiles := (p.OutH()*((p.OutW()+7)/8) + 1) / 2
		g.tileChunks = 1
		if images < directTasksPerWorker*workers {
			g.tileChunks = min(tiles, (directTasksPerWorker*workers+images-1)/images)
		}
		g.tasks = images * g.tileChunks
		g.parallelGEMM = g.tasks < workers
		return g
	}
	if p.KH*p.KW == 1 && p.PadH == 0 && p.PadW == 0 && (p.StrideH > 1 || p.StrideW > 1) {
		// One strided copy rather than a table gather per packed element.
		g.subsample = true
		g.q.H, g.q.W, g.q.StrideH, g.q.StrideW = p.OutH(), p.OutW(), 1, 1
	}
	q := &g.q
	cg, kg := q.C/q.Groups, q.K/q.Groups
	rows := cg * q.KH * q.KW
	ohw := q.OutH() * q.OutW()
	total := q.N * ohw
	switch {
	case !q.pointwise() && paddedWaste(q) <= paddedMaxWaste:
		g.route, g.tasks = routePadded, q.N*q.Groups
	case q.pointwise() && (ohw >= pointwiseMinPixels || ohw >= pointwiseSmallMinPixels && kg*rows <= pointwiseMaxWeights):
		g.route, g.tasks = routePointwise, q.N*q.Groups
	case cg >= gatherMinChannels && int32Offsets(slabCols(rows, total)+k.gemm.nr, ohw, q.C*q.H*q.W):
		// Slabs of whole panels, as even as possible and, for an
		// ungrouped convolution, as many as a multiple of the worker
		// count, so no worker idles while another finishes a last slab.
		nr := k.gemm.nr
		maxCols := slabCols(rows, total)
		g.route, g.slabPanels = routeGathered, (total+nr-1)/nr
		g.slabs = (total + maxCols - 1) / maxCols
		if q.Groups == 1 && workers > 1 {
			g.slabs = roundUp(g.slabs, workers)
		}
		g.slabs = min(g.slabs, g.slabPanels)
		g.slabWidth = (g.slabPanels + g.slabs - 1) / g.slabs * nr
		g.tasks = q.Groups * g.slabs
	default:
		// Few channels (the stem): a gather table would serve only cg
		// rows, so im2col copies whole row segments into slabs.
		g.route, g.slabWidth = routeIm2col, slabCols(rows, total)
		g.slabs = (total + g.slabWidth - 1) / g.slabWidth
		g.tasks = q.Groups * g.slabs
	}
	g.parallelGEMM = g.tasks < workers
	return g
}

// directKernels reports whether k has direct kernels for whole tiles and
// for masked ones: the variable-height ones (directRows), or the 6-row
// ones when the GEMM tile is as tall (they share its packed size).
func directKernels(k *pathKernels) (whole, masked bool) {
	if k.conv.directRows != nil {
		return true, true
	}
	if k.conv.direct[0][0] == nil || k.gemm.mr != directMR {
		return false, false
	}
	return true, k.conv.directMasked[0][0] != nil
}

// directRoute is routeDirect or routeDirectMasked when the forward
// convolution p runs on the direct kernels of k, else 0.
func directRoute(p *ConvParams, k *pathKernels) convRoute {
	whole, masked := directKernels(k)
	if !whole || p.KH*p.KW == 1 || p.pointwise() || p.depthwise() {
		return 0
	}
	oh0, ow0 := p.OutH(), p.OutW()
	route := routeDirect
	if ow0%8 != 0 || oh0*ow0%16 != 0 { // not whole runs of 16
		lanes := 16 * ((oh0*((ow0+7)/8) + 1) / 2) // the tiles'
		idle := float64(lanes - oh0*ow0)
		if !masked || idle > directMaskedMaxIdle*float64(lanes) || p.K/p.Groups > directMaskedMaxK {
			return 0
		}
		route = routeDirectMasked
	}
	// The phase buffer (setPhases) must be indexable with int32.
	sh, sw := p.StrideH, p.StrideW
	hq, wq := (p.H+2*p.PadH+sh-1)/sh, (p.W+2*p.PadW+sw-1)/sw
	if int64(p.C/p.Groups)*int64(sh*sw)*int64(hq)*int64(wq) >= 1<<31 {
		return 0
	}
	return route
}

// planBackwardData plans the backward pass to the input of p.
func planBackwardData(pl *convPlan, p *ConvParams, k *pathKernels) {
	if p.StrideH == 1 && p.StrideW == 1 && p.PadH <= p.DilH*(p.KH-1) && p.PadW <= p.DilW*(p.KW-1) {
		// dx += conv(dy, rotated transposed w) with the complementary
		// padding, which keeps the GEMM output at C rows and needs no
		// col2im.
		q := ConvParams{N: p.N, C: p.K, H: p.OutH(), W: p.OutW(), K: p.C, KH: p.KH, KW: p.KW,
			StrideH: 1, StrideW: 1, PadH: p.DilH*(p.KH-1) - p.PadH, PadW: p.DilW*(p.KW-1) - p.PadW,
			DilH: p.DilH, DilW: p.DilW, Groups: p.Groups}
		pl.route, pl.gemm = routeFlipped, planGEMMConv(&q, k, pl.workers)
		pl.tasks, pl.parallelGEMM = pl.gemm.tasks, pl.gemm.parallelGEMM
		return
	}
	ohw := p.OutH() * p.OutW()
	if p.KH*p.KW == 1 && p.PadH == 0 && p.PadW == 0 && p.OutW() >= upsampleMinWidth {
		// The pointwise convolution's backward, the flipped pointwise
		// one over dy into the subsampled planes, then added back.
		q := ConvParams{N: p.N, C: p.K, H: p.OutH(), W: p.OutW(), K: p.C, KH: 1, KW: 1,
			StrideH: 1, StrideW: 1, DilH: p.DilH, DilW: p.DilW, Groups: p.Groups}
		pl.route, pl.gemm = routeStrided1x1, planGEMMConv(&q, k, pl.workers)
		pl.tasks, pl.parallelGEMM = pl.gemm.tasks, pl.gemm.parallelGEMM
		return
	}
	// Strided: dcol = w^T dy per group, folded back into dx.
	cg := p.C / p.Groups
	pl.imgChunk = max(1, min((backwardDataChunkColumns+ohw-1)/ohw, p.N/pl.workers))
	chunked := p.Groups * ((p.N + pl.imgChunk - 1) / pl.imgChunk)
	switch {
	case p.KH*p.KW > 1 && paddedWaste(p) <= paddedBackwardMaxWaste:
		pl.route, pl.tasks = routePadded, chunked
	case cg < gatherMinChannels || !int32Offsets(pl.imgChunk*ohw, ohw, max(p.C*p.H*p.W, p.K*ohw)):
		pl.route, pl.tasks = routeCol2im, p.N*p.Groups
	default:
		pl.route, pl.tasks = routeGathered, chunked
	}
	pl.parallelGEMM = pl.tasks < pl.workers
}

// planBackwardWeight plans the backward pass to the weights of p.
func planBackwardWeight(pl *convPlan, p *ConvParams) {
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	ohw := p.OutH() * p.OutW()
	waste := paddedWaste(p)
	switch {
	case p.KH*p.KW > 1 && cg >= gatherMinChannels &&
		(waste <= weightPaddedMaxWaste || waste <= weightPaddedFewKMaxWaste && kg <= weightPaddedFewKMaxOutput):
		pl.route = routePadded
	case p.pointwise():
		pl.route = routePointwise
	default:
		pl.route = routeIm2col
	}
	switch {
	case p.Groups >= pl.workers:
		// Groups own disjoint slices of dw: one serial GEMM chain each.
		pl.split, pl.tasks = splitGroups, p.Groups
	case p.N >= 2 && pl.workers >= 2:
		// Every image adds into all of dw: chunks of images into
		// separate buffers, so the unfolding runs in parallel too.
		pl.split, pl.chunks = splitImages, min(p.N, pl.workers)
		pl.tasks = pl.chunks
	default:
		pl.split, pl.tasks, pl.parallelGEMM = splitNone, 1, true
	}
	if pl.route == routePadded {
		return
	}
	// Slabs within an image, or of whole small images when copying
	// their dy next to each other costs less than unfolding their x (a
	// pointwise x needs no unfolding within an image). One factor is
	// packed from its transpose, an element at a time: when col has
	// more rows than dy, dw^T += col dy^T, so the smaller one is.
	pl.depth = slabCols(rows, ohw)
	if ohw < weightGradMinDepth && kg < rows && !p.pointwise() {
		pl.acrossImages, pl.depth = true, (weightGradMinDepth+ohw-1)/ohw*ohw
	}
	pl.transposed = rows > kg && kg <= weightGradMaxTransposed
}

// paddedWaste is the share of the GEMM columns the padded route computes
// and drops: the phase rows' width past the output's.
func paddedWaste(p *ConvParams) float64 {
	wq := (p.W + 2*p.PadW + p.StrideW - 1) / p.StrideW
	return float64(wq-p.OutW()) / float64(wq)
}

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

// String describes the plan in a line: the route, then its parameters.
func (pl *convPlan) String() string {
	g := &pl.gemm
	var b strings.Builder
	switch {
	case pl.route == routeDepthwise:
		kernels := "Go loops"
		if pl.dwKernel != 0 {
			kernels = fmt.Sprintf("%dx%d kernels", pl.dwKernel, pl.dwKernel)
		}
		fmt.Fprintf(&b, "depthwise, %s", kernels)
	case pl.pass == passForward && g.subsample:
		return fmt.Sprintf("strided 1x1: subsampled to %dx%d, then %s", g.q.H, g.q.W, g.describe())
	case pl.pass == passForward:
		return g.describe()
	case pl.route == routeFlipped:
		return fmt.Sprintf("flipped forward over dy (C=%d K=%d pad %dx%d): %s", g.q.C, g.q.K, g.q.PadH, g.q.PadW, g.describe())
	case pl.route == routeStrided1x1:
		return "strided 1x1: flipped pointwise over dy, then upsampled: " + g.describe()
	case pl.pass == passBackwardData:
		b.WriteString(pl.route.String())
		if pl.route != routeCol2im {
			fmt.Fprintf(&b, ", %d images a task", pl.imgChunk)
		}
	default:
		b.WriteString(pl.route.String())
		if pl.route != routePadded {
			fmt.Fprintf(&b, ", products %d columns deep", pl.depth)
			if pl.acrossImages {
				b.WriteString(" in whole images")
			}
			if pl.transposed {
				b.WriteString(", dw^T")
			}
		}
		switch pl.split {
		case splitGroups:
			b.WriteString(", by groups")
		case splitImages:
			fmt.Fprintf(&b, ", by %d image chunks", pl.chunks)
		case splitNone:
			b.WriteString(", one chain")
		}
	}
	fmt.Fprintf(&b, ", %d tasks", pl.tasks)
	if pl.parallelGEMM {
		b.WriteString(", GEMMs on the pool")
	}
	return b.String()
}

// describe is the forward GEMM plan in words: route, parameters, tasks.
func (g *gemmConvPlan) describe() string {
	var b strings.Builder
	b.WriteString(g.route.String())
	switch g.route {
	case routeDirect, routeDirectMasked:
		fmt.Fprintf(&b, ", %d tile runs an image", g.tileChunks)
	case routeGathered:
		fmt.Fprintf(&b, ", %d slabs of at most %d columns", g.slabs, g.slabWidth)
	case routeIm2col:
		fmt.Fprintf(&b, ", %d slabs of %d columns", g.slabs, g.slabWidth)
	}
	fmt.Fprintf(&b, ", %d tasks", g.tasks)
	if g.parallelGEMM {
		b.WriteString(", GEMMs on the pool")
	}
	return b.String()
}

// convTracer is where TraceConv sends plans, and the passes already
// told.
type convTracer struct {
	mu   sync.Mutex
	w    io.Writer
	seen map[convTraceKey]bool
}

type convTraceKey struct {
	p       ConvParams
	pass    convPass
	path    Path
	workers int
}

var convTrace atomic.Pointer[convTracer]

// TraceConv makes every distinct convolution pass (geometry, pass,
// kernel path and worker count) print its plan to w the first time it
// runs: one line naming the convolution, the route it takes and the
// route's parameters. A nil w stops it. Tracing costs an atomic load
// per convolution when off; write errors are ignored.
func TraceConv(w io.Writer) {
	if w == nil {
		convTrace.Store(nil)
		return
	}
	convTrace.Store(&convTracer{w: w, seen: map[convTraceKey]bool{}})
}

// plan returns the plan of pass of p on the active path, telling the
// trace about it.
func (p *ConvParams) plan(pass convPass) convPlan {
	pl := planConv(p, pass, active.path, parWorkers())
	if t := convTrace.Load(); t != nil {
		t.note(p, pl) // a copy: a pointer would move every call's plan to the heap
	}
	return pl
}

func (t *convTracer) note(p *ConvParams, pl convPlan) {
	key := convTraceKey{*p, pl.pass, pl.path, pl.workers}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[key] {
		return
	}
	t.seen[key] = true
	fmt.Fprintf(t.w, "conv %s %s on %s, %d workers: %s\n", p.describe(), pl.pass, pl.path, pl.workers, pl.String())
}

// describe names a convolution: input, output channels, kernel, stride,
// padding, dilation and groups.
func (p *ConvParams) describe() string {
	return fmt.Sprintf("%dx%dx%dx%d->%d k%dx%d s%dx%d p%dx%d d%dx%d g%d", p.N, p.C, p.H, p.W, p.K,
		p.KH, p.KW, p.StrideH, p.StrideW, p.PadH, p.PadW, p.DilH, p.DilW, p.Groups)
}
