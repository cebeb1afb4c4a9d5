package autograd

// Reductions: sums, means over axes, standard deviation, max/min along an
// axis and the Lp reconstruction loss. Accumulation is in float64 so the
// statistics DGH matches (docs/DESIGN.md, "DGH") do not drift with tensor size.

import (
	"fmt"
	"math"
	"slices"

	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// Sum returns the sum of all elements as a scalar (shape []).
func Sum(x *Var) *Var {
	out := wrap(x, tensor.FromSlice([]float32{kernels.Sum(x.Value.Data)}))
	if needsGrad(x) {
		record(out, func() {
			kernels.AddScalar(x.gradBuf().Data, x.gradBuf().Data, out.Grad.Data[0])
		}, x)
	}
	return out
}

// SumSquares returns the sum of x^2 as a scalar.
func SumSquares(x *Var) *Var {
	out := wrap(x, tensor.FromSlice([]float32{kernels.SumSquares(x.Value.Data)}))
	if needsGrad(x) {
		record(out, func() {
			kernels.Axpy(2*out.Grad.Data[0], x.Value.Data, x.gradBuf().Data)
		}, x)
	}
	return out
}

// reduction maps every element of a tensor to the element of its
// reduced result: the kept axes in order, the reduced ones dropped.
type reduction struct {
	inShape, outShape []int
	reduced           []bool // per input axis
	count             int    // elements summed into each output
}

// newReduction validates axes (negative counts from the end; none means
// all axes) for a tensor of the given shape.
func newReduction(op string, shape []int, axes []int) reduction {
	r := reduction{inShape: shape, reduced: make([]bool, len(shape)), count: 1}
	if len(axes) == 0 {
		for i := range r.reduced {
			r.reduced[i] = true
		}
	}
	for _, a := range axes {
		ax := a
		if ax < 0 {
			ax += len(shape)
		}
		if ax < 0 || ax >= len(shape) || r.reduced[ax] {
			panic(fmt.Sprintf("autograd.%s: bad or repeated axis %d for shape %v", op, a, shape))
		}
		r.reduced[ax] = true
	}
	r.outShape = []int{}
	for i, d := range shape {
		if r.reduced[i] {
			r.count *= d
		} else {
			r.outShape = append(r.outShape, d)
		}
	}
	return r
}

// each calls fn(i, o) for every input element i in row-major order with
// the index o of its output element. An odometer over the input keeps o
// current without a division per element.
func (r reduction) each(fn func(i, o int)) {
	nd := len(r.inShape)
	if tensor.Numel(r.inShape) == 0 {
		return
	}
	// outStride[a] is how far o moves when input axis a advances; 0 for
	// reduced axes.
	outStride := make([]int, nd)
	acc := 1
	for a := nd - 1; a >= 0; a-- {
		if !r.reduced[a] {
			outStride[a] = acc
			acc *= r.inShape[a]
		}
	}
	idx := make([]int, nd)
	o := 0
	n := tensor.Numel(r.inShape)
	for i := range n {
		fn(i, o)
		for a := nd - 1; a >= 0; a-- {
			idx[a]++
			o += outStride[a]
			if idx[a] < r.inShape[a] {
				break
			}
			o -= outStride[a] * idx[a]
			idx[a] = 0
		}
	}
}

// sums returns, per output element, the float64 sums of f(x) over the
// reduced axes.
func (r reduction) sums(x []float32, f func(float64) float64) []float64 {
	acc := make([]float64, tensor.Numel(r.outShape))
	r.each(func(i, o int) { acc[o] += f(float64(x[i])) })
	return acc
}

func identity(v float64) float64 { return v }
func square(v float64) float64   { return v * v }

// Mean averages x over the given axes (all axes if none); the result keeps
// the other axes in order.
func Mean(x *Var, axes ...int) *Var {
	r := newReduction("Mean", x.Value.Shape, axes)
	return meanOf(x, r, false)
}

// MeanSquare averages x^2 over the given axes (all axes if none).
func MeanSquare(x *Var, axes ...int) *Var {
	r := newReduction("MeanSquare", x.Value.Shape, axes)
	return meanOf(x, r, true)
}

// channelLayout reports whether r reduces every axis but axis 1 of a
// tensor of 2 or more axes (per-channel statistics of NCHW activations),
// and the sizes it then works on.
func (r reduction) channelLayout() (n, c, hw int, ok bool) {
	s := r.inShape
	if len(s) < 2 || r.reduced[1] {
		return 0, 0, 0, false
	}
	for a := range s {
		if a != 1 && !r.reduced[a] {
			return 0, 0, 0, false
		}
	}
	return s[0], s[1], tensor.Numel(s[2:]), true
}

// rowLayout reports whether r reduces a trailing run of axes, so the
// tensor is rows x cols with one output per row.
func (r reduction) rowLayout() (rows, cols int, ok bool) {
	k := len(r.inShape)
	for k > 0 && r.reduced[k-1] {
		k--
	}
	for _, red := range r.reduced[:k] {
		if red {
			return 0, 0, false
		}
	}
	return tensor.Numel(r.inShape[:k]), tensor.Numel(r.inShape[k:]), true
}

// meanOf is Mean (squared false) or MeanSquare (squared true). The
// per-channel statistics DGH takes of every BatchNorm input (docs/DESIGN.md, "DGH", step 3)
// and per-row means run on the kernels; other axis sets take the general
// odometer path.
func meanOf(x *Var, r reduction, squared bool) *Var {
	out := output(x, r.outShape...)
	xv, y := x.Value.Data, out.Value.Data
	inv := 1 / float64(r.count)
	n, c, hw, isChannel := r.channelLayout()
	rows, cols, isRows := r.rowLayout()
	switch {
	case r.count == 0:
		// Mean of nothing is NaN, as in PyTorch.
		for o := range y {
			y[o] = float32(math.NaN())
		}
	case isChannel:
		other := make([]float32, c)
		if squared {
			kernels.ChannelMoments(n, c, hw, xv, other, y)
		} else {
			kernels.ChannelMoments(n, c, hw, xv, y, other)
		}
	case isRows:
		kernels.SpreadRows(rows, cols, func(lo, hi int) {
			for row := lo; row < hi; row++ {
				seg := xv[row*cols : (row+1)*cols]
				if squared {
					y[row] = float32(float64(kernels.SumSquares(seg)) * inv)
				} else {
					y[row] = float32(float64(kernels.Sum(seg)) * inv)
				}
			}
		})
	default:
		f := identity
		if squared {
			f = square
		}
		for o, s := range r.sums(xv, f) {
			y[o] = float32(s * inv)
		}
	}
	if !needsGrad(x) {
		return out
	}
	return record(out, func() {
		// d mean/dx = 1/count; d mean(x^2)/dx = 2x/count
		dy, dx := out.Grad.Data, x.gradBuf().Data
		scale := float32(inv)
		switch {
		case isChannel && squared:
			kernels.ChannelMomentsBackward(n, c, hw, xv, nil, dy, dx)
		case isChannel:
			kernels.ChannelMomentsBackward(n, c, hw, xv, dy, nil, dx)
		case isRows:
			kernels.SpreadRows(rows, cols, func(lo, hi int) {
				for row := lo; row < hi; row++ {
					seg := dx[row*cols : (row+1)*cols]
					if squared {
						kernels.Axpy(2*scale*dy[row], xv[row*cols:(row+1)*cols], seg)
					} else {
						kernels.AddScalar(seg, seg, scale*dy[row])
					}
				}
			})
		case squared:
			r.each(func(i, o int) { dx[i] += 2 * scale * xv[i] * dy[o] })
		default:
			r.each(func(i, o int) { dx[i] += scale * dy[o] })
		}
	}, x)
}

// ChannelMoments returns the per-channel mean and mean of squares of x
// [N,C,...] over every axis but 1, as Mean(x, 0, 2, ...) and
// MeanSquare(x, 0, 2, ...) give them, in one pass over x forward and one
// backward: DGH takes both of every BatchNorm input (docs/DESIGN.md, "DGH", step 3). The two
// results are views of one hidden [2, C] node whose backward sees both
// gradients at once.
func ChannelMoments(x *Var) (mean, meanSq *Var) {
	s := x.Value.Shape
	if len(s) < 2 {
		panic(fmt.Sprintf("autograd.ChannelMoments: input %v, want [N,C,...]", s))
	}
	n, c := s[0], s[1]
	hw := tensor.Numel(s[2:])
	both := output(x, 2, c)
	m := both.Value.Data
	if len(x.moments) == 2*c {
		copy(m, x.moments)
	} else {
		kernels.ChannelMoments(n, c, hw, x.Value.Data, m[:c], m[c:])
	}
	mean = wrap(both, tensor.FromSlice(m[:c], c))
	meanSq = wrap(both, tensor.FromSlice(m[c:], c))
	if !needsGrad(x) {
		return mean, meanSq
	}
	x.momentsPending = true
	record(both, func() {
		g := both.Grad.Data
		x.momentsPending = false
		switch {
		case x.bnDeferred != nil:
			f := x.bnDeferred
			x.bnDeferred = nil
			f(g)
		case x.bnPending && x.momentsGrad == nil:
			x.momentsGrad = g
		default:
			kernels.ChannelMomentsBackward(n, c, hw, x.Value.Data, g[:c], g[c:], x.gradBuf().Data)
		}
	}, x)
	for i, v := range []*Var{mean, meanSq} {
		record(v, func() {
			kernels.Axpy(1, v.Grad.Data, both.gradBuf().Data[i*c:(i+1)*c])
		}, both)
	}
	return mean, meanSq
}

// flushMoments adds what a batch norm or a ChannelMoments node on v left
// for the other, which never came (see Var.bnPending).
func (v *Var) flushMoments() {
	if f := v.bnDeferred; f != nil {
		v.bnDeferred = nil
		f(nil)
	}
	if g := v.momentsGrad; g != nil {
		v.momentsGrad = nil
		s := v.Value.Shape
		n, c := s[0], s[1]
		kernels.ChannelMomentsBackward(n, c, tensor.Numel(s[2:]), v.Value.Data, g[:c], g[c:], v.gradBuf().Data)
	}
}

// Std is the standard deviation of x over axes (all if empty), unbiased
// (divide by count-1) or not, as torch.std. Two passes (mean, then
// squared deviations) in float64 avoid the cancellation of E[x^2]-m^2.
// Reductions over trailing axes (per sample and channel over H, W, as the
// DGH output loss takes them, docs/DESIGN.md, "DGH", step 6) run as direct loops over rows;
// other axis sets take the general odometer path.
func Std(x *Var, axes []int, unbiased bool) *Var {
	r := newReduction("Std", x.Value.Shape, axes)
	xv := x.Value.Data
	rows, cols, isRows := r.rowLayout()
	denom := float64(r.count)
	if unbiased {
		denom--
	}
	out := output(x, r.outShape...)
	y := out.Value.Data
	var mean []float64
	if isRows {
		mean = make([]float64, rows)
		kernels.SpreadRows(rows, cols, func(lo, hi int) {
			for row := lo; row < hi; row++ {
				m, dev := meanDeviation(xv[row*cols : (row+1)*cols])
				mean[row] = m
				y[row] = float32(math.Sqrt(dev / denom))
			}
		})
	} else {
		mean = r.sums(xv, identity)
		for o := range mean {
			mean[o] /= float64(r.count)
		}
		dev := make([]float64, len(mean))
		r.each(func(i, o int) {
			d := float64(xv[i]) - mean[o]
			dev[o] += d * d
		})
		for o, s := range dev {
			y[o] = float32(math.Sqrt(s / denom))
		}
	}
	if !needsGrad(x) {
		return out
	}
	return record(out, func() {
		// std = sqrt(sum (x-m)^2 / denom): dstd/dx = (x-m)/(denom*std)
		// (the mean's own dependence on x sums to zero).
		dy, dx := out.Grad.Data, x.gradBuf().Data
		if isRows {
			kernels.SpreadRows(rows, cols, func(lo, hi int) {
				for row := lo; row < hi; row++ {
					k := float64(dy[row]) / (denom * float64(y[row]))
					m := mean[row]
					seg := dx[row*cols : (row+1)*cols]
					for i, v := range xv[row*cols : (row+1)*cols] {
						seg[i] += float32(k * (float64(v) - m))
					}
				}
			})
			return
		}
		r.each(func(i, o int) {
			dx[i] += float32(float64(dy[o]) * (float64(xv[i]) - mean[o]) / (denom * float64(y[o])))
		})
	}, x)
}

// meanDeviation returns the mean of seg and the sum of squared deviations
// from it, in float64 (NaN mean for an empty seg, as torch).
func meanDeviation(seg []float32) (mean, dev float64) {
	var s float64
	for _, v := range seg {
		s += float64(v)
	}
	mean = s / float64(len(seg))
	for _, v := range seg {
		d := float64(v) - mean
		dev += d * d
	}
	return mean, dev
}

// Max returns the maxima of x along axis; the gradient goes to the first
// maximal element, as torch.max(x, dim).
func Max(x *Var, axis int) *Var { return extreme(x, axis, true) }

// Min returns the minima of x along axis, like Max.
func Min(x *Var, axis int) *Var { return extreme(x, axis, false) }

func extreme(x *Var, axis int, isMax bool) *Var {
	shape := x.Value.Shape
	ax := axis
	if ax < 0 {
		ax += len(shape)
	}
	if ax < 0 || ax >= len(shape) || shape[ax] == 0 {
		panic(fmt.Sprintf("autograd.Max/Min: axis %d of shape %v", axis, shape))
	}
	outer, length, inner := tensor.Numel(shape[:ax]), shape[ax], tensor.Numel(shape[ax+1:])
	outShape := slices.Concat(shape[:ax], shape[ax+1:])
	out := output(x, outShape...)
	arg := make([]int32, outer*inner) // index along axis of each result
	xv, y := x.Value.Data, out.Value.Data
	if inner == 1 {
		if isMax {
			kernels.RowMaxMin(outer, length, xv, y, nil, arg, nil)
		} else {
			kernels.RowMaxMin(outer, length, xv, nil, y, nil, arg)
		}
	} else {
		for a := range outer {
			for b := range inner {
				best, at := xv[a*length*inner+b], 0
				for k := 1; k < length; k++ {
					v := xv[(a*length+k)*inner+b]
					if isMax && v > best || !isMax && v < best {
						best, at = v, k
					}
				}
				y[a*inner+b], arg[a*inner+b] = best, int32(at)
			}
		}
	}
	if needsGrad(x) {
		record(out, func() {
			dy, dx := out.Grad.Data, x.gradBuf().Data
			for a := range outer {
				for b := range inner {
					o := a*inner + b
					dx[(a*length+int(arg[o]))*inner+b] += dy[o]
				}
			}
		}, x)
	}
	return out
}

// LpLoss is BRECQ's reconstruction loss (docs/DESIGN.md, "BRECQ", steps 4 and 6):
// |pred - target|^p summed over axis 1 and averaged over the other axes,
// a scalar. target usually is a constant.
func LpLoss(pred, target *Var, p float32) *Var {
	mustSameShape("LpLoss", pred, target)
	shape := pred.Value.Shape
	if len(shape) < 2 {
		panic(fmt.Sprintf("autograd.LpLoss: shape %v, want at least 2 axes", shape))
	}
	// Summing over axis 1 then averaging over the rest is the total
	// divided by the number of positions that are not on axis 1.
	rows := pred.Value.Numel() / shape[1]
	total := kernels.LpDistance(pred.Value.Data, target.Value.Data, p)
	out := wrap(pick(pred, target), tensor.FromSlice([]float32{float32(total / float64(rows))}))
	if needsGrad(pred, target) {
		record(out, func() {
			var dp, dt []float32
			if pred.requiresGrad {
				dp = pred.gradBuf().Data
			}
			if target.requiresGrad {
				dt = target.gradBuf().Data
			}
			g := out.Grad.Data[0] / float32(rows)
			kernels.LpDistanceBackward(pred.Value.Data, target.Value.Data, p, g, dp, dt)
		}, pred, target)
	}
	return out
}
