package kernels

import (
	"fmt"
	"math"
)

// PoolParams describes a 2-D pooling window over an NCHW input. Padding
// is implicit -Inf for max pooling (PyTorch semantics, floor mode).
type PoolParams struct {
	N, C, H, W       int
	KH, KW           int
	StrideH, StrideW int
	PadH, PadW       int
}

// OutH is the output height.
func (p PoolParams) OutH() int { return (p.H+2*p.PadH-p.KH)/p.StrideH + 1 }

// OutW is the output width.
func (p PoolParams) OutW() int { return (p.W+2*p.PadW-p.KW)/p.StrideW + 1 }

// Validate reports parameters no pooling kernel can run: non-positive
// sizes or strides, and padding beyond half the window, which PyTorch
// rejects because a window could then see only padding.
func (p PoolParams) Validate() error {
	if p.N < 1 || p.C < 1 || p.H < 1 || p.W < 1 {
		return fmt.Errorf("pool2d: input %dx%dx%dx%d must be positive", p.N, p.C, p.H, p.W)
	}
	if p.KH < 1 || p.KW < 1 || p.StrideH < 1 || p.StrideW < 1 {
		return fmt.Errorf("pool2d: kernel %dx%d and stride %dx%d must be positive", p.KH, p.KW, p.StrideH, p.StrideW)
	}
	if p.PadH < 0 || p.PadW < 0 || 2*p.PadH > p.KH || 2*p.PadW > p.KW {
		return fmt.Errorf("pool2d: padding %dx%d must be in [0, kernel/2] for kernel %dx%d", p.PadH, p.PadW, p.KH, p.KW)
	}
	if p.OutH() < 1 || p.OutW() < 1 {
		return fmt.Errorf("pool2d: input %dx%d too small for kernel %dx%d with padding %dx%d", p.H, p.W, p.KH, p.KW, p.PadH, p.PadW)
	}
	return nil
}

// MaxPool2dForward writes the window maxima to y (N x C x OutH x OutW) and,
// if arg is not nil, the index h*W+w of each maximum inside its input
// plane (first occurrence wins and NaN propagates, as PyTorch's indices).
// p must be valid.
func MaxPool2dForward(p PoolParams, x, y []float32, arg []int32) {
	planes := p.N * p.C
	t := newTask(maxPoolRange)
	t.pool, t.s[0], t.s[1], t.arg = p, x[:planes*p.H*p.W], y[:planes*p.OutH()*p.OutW()], arg
	t.spread(planes, planes*p.H*p.W*p.KH*p.KW/(p.StrideH*p.StrideW))
	t.release()
}

func maxPoolRange(t *task, lo, hi int) {
	p := t.pool
	oh, ow := p.OutH(), p.OutW()
	x, y, arg := t.s[0], t.s[1], t.arg
	// Output columns [jlo, jhi) have windows inside the row.
	jlo := (p.PadW + p.StrideW - 1) / p.StrideW
	jhi := max(jlo, min(ow, (p.W+p.PadW-p.KW)/p.StrideW+1))
	for pl := lo; pl < hi; pl++ {
		xp := x[pl*p.H*p.W : (pl+1)*p.H*p.W]
		yo := pl * oh * ow
		for i := range oh {
			h0 := i*p.StrideH - p.PadH
			hlo, hhi := max(h0, 0), min(h0+p.KH, p.H)
			if p.KH == 3 && p.KW == 3 && hhi-hlo == 3 && jhi > jlo {
				// The windows inside the plane (all but the border
				// of ResNet's stem pooling) without clamping.
				var a []int32
				if arg != nil {
					a = arg[yo+i*ow+jlo : yo+i*ow+jhi]
				}
				maxPool3x3Row(y[yo+i*ow+jlo:yo+i*ow+jhi], a, xp, p.W, h0*p.W+jlo*p.StrideW-p.PadW, p.StrideW)
				maxPoolWindows(p, xp, y[yo+i*ow:], arg, yo+i*ow, hlo, hhi, 0, jlo)
				maxPoolWindows(p, xp, y[yo+i*ow:], arg, yo+i*ow, hlo, hhi, jhi, ow)
				continue
			}
			maxPoolWindows(p, xp, y[yo+i*ow:], arg, yo+i*ow, hlo, hhi, 0, ow)
		}
	}
}

// maxPool3x3Row computes len(y) 3x3 windows whose top-left corners are
// x[o], x[o+stride], ..., in a plane of rows w wide, taking the first
// maximum in row-major order (a NaN replaces the best so far), as the
// general loop does.
func maxPool3x3Row(y []float32, arg []int32, x []float32, w, o, stride int) {
	if s2 := active.pool.maxPool3x3S2; stride == 2 && s2 != nil {
		// Whole groups of eight on the vector path; its loads reach one
		// float past the last window of the third row.
		total := len(y)
		n := total / 8 * 8
		for n > 0 && o+2*w+2*n+2 > len(x) {
			n -= 8
		}
		if n > 0 {
			if arg != nil {
				_ = arg[n-1]
			}
			s2(n, x[o:], x[o+w:], x[o+2*w:], y[:n], arg, arg != nil, o, w)
			if j0 := total - 8; n < total && n == total/8*8 && o+2*w+2*total+2 <= len(x) {
				// The last few windows as one more group of eight
				// ending at the last one: the windows it shares with
				// the group before come out the same again, where the
				// Go loop below took longer for seven windows than
				// the vector path for the forty-eight before them.
				var a []int32
				if arg != nil {
					a = arg[j0:total]
				}
				q := o + 2*j0
				s2(8, x[q:], x[q+w:], x[q+2*w:], y[j0:total], a, arg != nil, q, w)
				n = total
			}
			y, o = y[n:], o+2*n
			if arg != nil {
				arg = arg[n:]
			}
		}
	}
	for j := range y {
		win := x[o : o+2*w+3]
		a0, a1, a2 := win[0], win[1], win[2]
		b0, b1, b2 := win[w], win[w+1], win[w+2]
		c0, c1, c2 := win[2*w], win[2*w+1], win[2*w+2]
		// Branch-free: the maximum first (the builtin propagates NaN;
		// a tree of maxima, as one chain of eight was latency-bound),
		// then its first position, scanning backwards with selects.
		best := max(max(a0, a1, a2), max(b0, b1, b2), max(c0, c1, c2))
		if best != best {
			// A NaN: the general rule (the last NaN wins).
			at := 0
			for d, v := range [9]float32{a0, a1, a2, b0, b1, b2, c0, c1, c2} {
				if v != v {
					at = d
				}
			}
			y[j] = best
			if arg != nil {
				arg[j] = int32(o + at/3*w + at%3)
			}
			o += stride
			continue
		}
		at := 2*w + 2
		if c1 == best {
			at = 2*w + 1
		}
		if c0 == best {
			at = 2 * w
		}
		if b2 == best {
			at = w + 2
		}
		if b1 == best {
			at = w + 1
		}
		if b0 == best {
			at = w
		}
		if a2 == best {
			at = 2
		}
		if a1 == best {
			at = 1
		}
		if a0 == best {
			at = 0
		}
		y[j] = win[at] // not best: the first of -0 and +0, as the general loop
		if arg != nil {
			arg[j] = int32(o + at)
		}
		o += stride
	}
}

// poolKernels is the pooling family's dispatch table.
type poolKernels struct {
	// maxPool3x3S2(n, r0, r1, r2, y, arg, withArg, base, w) computes
	// whole groups of eight 3x3 stride-2 windows inside the plane (see
	// maxPool3x3S2AVX2); nil where the path has none: maxPool3x3Row's Go
	// loop computes them all.
	maxPool3x3S2 func(n int, r0, r1, r2, y []float32, arg []int32, withArg bool, base, w int)
}

// poolGeneric is the generic path's pooling table: the Go loops alone.
var poolGeneric = poolKernels{}

// maxPoolWindows computes output columns [j0, j1) of one output row (y
// from its column 0, arg from index yo) over input rows [hlo, hhi).
func maxPoolWindows(p PoolParams, xp, y []float32, arg []int32, yo, hlo, hhi, j0, j1 int) {
	for j := j0; j < j1; j++ {
		w0 := j*p.StrideW - p.PadW
		wlo, whi := max(w0, 0), min(w0+p.KW, p.W)
		best, at := float32(math.Inf(-1)), int32(-1)
		for h := hlo; h < hhi; h++ {
			for w := wlo; w < whi; w++ {
				if v := xp[h*p.W+w]; v > best || v != v || at < 0 {
					best, at = v, int32(h*p.W+w)
				}
			}
		}
		y[j] = best
		if arg != nil {
			arg[yo+j] = at
		}
	}
}

// MaxPool2dBackward accumulates dy into dx at the indices MaxPool2dForward
// recorded in arg.
func MaxPool2dBackward(p PoolParams, dy []float32, arg []int32, dx []float32) {
	maxPoolBackward(p, dy, arg, dx, false)
}

// MaxPool2dBackwardSet is MaxPool2dBackward storing instead of adding: dx
// becomes the scattered dy, zero where no window took its maximum, and is
// not read before. Each plane is cleared just before its scatter, so it
// is written once while in cache, where a clear of the whole dx first and
// the scatter after would take it from memory twice.
func MaxPool2dBackwardSet(p PoolParams, dy []float32, arg []int32, dx []float32) {
	maxPoolBackward(p, dy, arg, dx, true)
}

func maxPoolBackward(p PoolParams, dy []float32, arg []int32, dx []float32, set bool) {
	planes := p.N * p.C
	t := newTask(maxPoolBackwardRange)
	t.pool, t.s[0], t.arg, t.s[1] = p, dy[:planes*p.OutH()*p.OutW()], arg[:planes*p.OutH()*p.OutW()], dx[:planes*p.H*p.W]
	t.flag = set
	t.spread(planes, planes*p.H*p.W)
	t.release()
}

// maxPoolBackwardRange scatters planes [lo, hi); t.flag clears each
// dx plane first.
func maxPoolBackwardRange(t *task, lo, hi int) {
	p := t.pool
	per := p.OutH() * p.OutW()
	dy, arg, dx := t.s[0], t.arg, t.s[1]
	for pl := lo; pl < hi; pl++ {
		dxp := dx[pl*p.H*p.W : (pl+1)*p.H*p.W]
		if t.flag {
			clear(dxp)
		}
		o := pl * per
		for k, a := range arg[o : o+per] {
			if a >= 0 {
				dxp[a] += dy[o+k]
			}
		}
	}
}

// AvgPoolGlobalForward sets y[n*c] to the mean of each hw plane of x.
func AvgPoolGlobalForward(n, c, hw int, x, y []float32) {
	t := newTask(avgPoolRange)
	t.n[2], t.s[0], t.s[1] = hw, x[:n*c*hw], y[:n*c]
	t.spread(n*c, n*c*hw)
	t.release()
}

func avgPoolRange(t *task, lo, hi int) {
	hw, x, y := t.n[2], t.s[0], t.s[1]
	inv := 1 / float64(hw)
	for pl := lo; pl < hi; pl++ {
		y[pl] = float32(active.elementwise.sum(x[pl*hw:(pl+1)*hw]) * inv)
	}
}

// AvgPoolGlobalBackward accumulates dx += dy/hw over each plane.
func AvgPoolGlobalBackward(n, c, hw int, dy, dx []float32) {
	t := newTask(avgPoolBackwardRange)
	t.n[2], t.s[0], t.s[1] = hw, dy[:n*c], dx[:n*c*hw]
	t.spread(n*c, n*c*hw)
	t.release()
}

func avgPoolBackwardRange(t *task, lo, hi int) {
	hw, dy, dx := t.n[2], t.s[0], t.s[1]
	for pl := lo; pl < hi; pl++ {
		d := dx[pl*hw : (pl+1)*hw]
		g := dy[pl] / float32(hw)
		for i := range d {
			d[i] += g
		}
	}
}
