package autograd

// Shape ops: reshapes that share data, and the flip / crop / pad of the
// DGH augmentation (docs/DESIGN.md, "DGH", step 1) on NCHW images.

import (
	"fmt"

	"github.com/dghcore/dghcore/kernels"
)

// Reshape returns x with another shape of the same size (one -1 is
// inferred). The value shares x's data; the gradient is reshaped back.
func Reshape(x *Var, shape ...int) *Var {
	out := wrap(x, x.Value.Reshape(shape...))
	if needsGrad(x) {
		record(out, func() {
			x.accumulate(out.Grad.Data)
		}, x)
	}
	return out
}

// Flatten reshapes x [N, ...] to [N, prod(...)].
func Flatten(x *Var) *Var {
	if x.Value.Dims() < 1 {
		panic("autograd.Flatten: scalar input")
	}
	return Reshape(x, x.Value.Shape[0], -1)
}

// image4 checks that x is NCHW and returns its sizes.
func image4(op string, x *Var) (n, c, h, w int) {
	s := x.Value.Shape
	if len(s) != 4 {
		panic(fmt.Sprintf("autograd.%s: input %v, want [N,C,H,W]", op, s))
	}
	return s[0], s[1], s[2], s[3]
}

// FlipW mirrors x [N,C,H,W] left to right (the DGH horizontal flip).
func FlipW(x *Var) *Var {
	n, c, h, w := image4("FlipW", x)
	out := overwrittenOutput(x, n, c, h, w)
	kernels.FlipRows(out.Value.Data, x.Value.Data, w, false)
	if needsGrad(x) {
		record(out, func() {
			g, fresh := x.gradDst() // a first gradient is stored: the flip covers it
			kernels.FlipRows(g.Data, out.Grad.Data, w, !fresh)
		}, x)
	}
	return out
}

// Crop cuts the h x w window at (top, left) out of every image of x
// [N,C,H,W] (the DGH random crop).
func Crop(x *Var, top, left, h, w int) *Var {
	n, c, xh, xw := image4("Crop", x)
	if top < 0 || left < 0 || h < 0 || w < 0 || top+h > xh || left+w > xw {
		panic(fmt.Sprintf("autograd.Crop: window %dx%d at (%d,%d) outside %dx%d", h, w, top, left, xh, xw))
	}
	out := overwrittenOutput(x, n, c, h, w)
	// The crop is the inside of a pad with negative margins: both move a
	// window between an h x w and an xh x xw plane.
	copyWindow(out.Value.Data, h, w, x.Value.Data, xh, xw, top, left, n*c, false)
	if needsGrad(x) {
		record(out, func() {
			addWindowBack(x.gradBuf().Data, xh, xw, out.Grad.Data, h, w, top, left, n*c)
		}, x)
	}
	return out
}

// Pad surrounds every image of x [N,C,H,W] with zeros.
func Pad(x *Var, top, bottom, left, right int) *Var {
	n, c, xh, xw := image4("Pad", x)
	if top < 0 || bottom < 0 || left < 0 || right < 0 {
		panic(fmt.Sprintf("autograd.Pad: negative padding %d %d %d %d", top, bottom, left, right))
	}
	h, w := xh+top+bottom, xw+left+right
	out := output(x, n, c, h, w)
	addWindowBack(out.Value.Data, h, w, x.Value.Data, xh, xw, top, left, n*c)
	if needsGrad(x) {
		record(out, func() {
			copyWindow(x.gradBuf().Data, xh, xw, out.Grad.Data, h, w, top, left, n*c, true)
		}, x)
	}
	return out
}

// copyWindow sets (or, with accumulate, adds to) each small sh x sw plane
// of small the window at (top, left) of the matching big bh x bw plane.
func copyWindow(small []float32, sh, sw int, big []float32, bh, bw, top, left, planes int, accumulate bool) {
	kernels.CopyWindows(planes, sh, sw, small, sh*sw, 0, sw, big, bh*bw, top*bw+left, bw, accumulate)
}

// addWindowBack adds each small sh x sw plane into the window at (top,
// left) of the matching big bh x bw plane.
func addWindowBack(big []float32, bh, bw int, small []float32, sh, sw, top, left, planes int) {
	kernels.CopyWindows(planes, sh, sw, big, bh*bw, top*bw+left, bw, small, sh*sw, 0, sw, true)
}
