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
	for pl := lo; pl < hi; pl++ {
		xp := x[pl*p.H*p.W : (pl+1)*p.H*p.W]
		yo := pl * oh * ow
		for i := range oh {
			h0 := i*p.StrideH - p.PadH
			hlo, hhi := max(h0, 0), min(h0+p.KH, p.H)
			for j := range ow {
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
				y[yo+i*ow+j] = best
				if arg != nil {
					arg[yo+i*ow+j] = at
				}
			}
		}
	}
}

// MaxPool2dBackward accumulates dy into dx at the indices MaxPool2dForward
// recorded in arg.
func MaxPool2dBackward(p PoolParams, dy []float32, arg []int32, dx []float32) {
	planes := p.N * p.C
	t := newTask(maxPoolBackwardRange)
	t.pool, t.s[0], t.arg, t.s[1] = p, dy[:planes*p.OutH()*p.OutW()], arg[:planes*p.OutH()*p.OutW()], dx[:planes*p.H*p.W]
	t.spread(planes, planes*p.H*p.W)
	t.release()
}

func maxPoolBackwardRange(t *task, lo, hi int) {
	p := t.pool
	per := p.OutH() * p.OutW()
	dy, arg, dx := t.s[0], t.arg, t.s[1]
	for pl := lo; pl < hi; pl++ {
		dxp := dx[pl*p.H*p.W : (pl+1)*p.H*p.W]
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
		y[pl] = float32(sumImpl(x[pl*hw:(pl+1)*hw]) * inv)
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
