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
	oh, ow := p.OutH(), p.OutW()
	planes := p.N * p.C
	x, y = x[:planes*p.H*p.W], y[:planes*oh*ow]
	for pl := range planes {
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
	oh, ow := p.OutH(), p.OutW()
	planes := p.N * p.C
	dy, arg, dx = dy[:planes*oh*ow], arg[:planes*oh*ow], dx[:planes*p.H*p.W]
	for pl := range planes {
		dxp := dx[pl*p.H*p.W : (pl+1)*p.H*p.W]
		o := pl * oh * ow
		for k, a := range arg[o : o+oh*ow] {
			if a >= 0 {
				dxp[a] += dy[o+k]
			}
		}
	}
}

// AvgPoolGlobalForward sets y[n*c] to the mean of each hw plane of x.
func AvgPoolGlobalForward(n, c, hw int, x, y []float32) {
	x, y = x[:n*c*hw], y[:n*c]
	inv := 1 / float64(hw)
	for pl := range y {
		y[pl] = float32(sumImpl(x[pl*hw:(pl+1)*hw]) * inv)
	}
}

// AvgPoolGlobalBackward accumulates dx += dy/hw over each plane.
func AvgPoolGlobalBackward(n, c, hw int, dy, dx []float32) {
	dy, dx = dy[:n*c], dx[:n*c*hw]
	inv := 1 / float32(hw)
	for pl, g := range dy {
		d := dx[pl*hw : (pl+1)*hw]
		g *= inv
		for i := range d {
			d[i] += g
		}
	}
}
