package kernels

// Small elementwise kernels the autograd ops need beyond the contract's
// families (SPEC section 1, autograd). They are not hot enough to deserve
// assembly, so each has this one pure-Go definition on every path.
// Like the other families, forward kernels overwrite dst and backward
// kernels accumulate into dx.

import "math"

// MulAcc accumulates dst[i] += a[i]*b[i], the backward of an elementwise
// product.
func MulAcc(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] += a[i] * b[i]
	}
}

// AddScalar sets dst[i] = x[i] + s.
func AddScalar(dst, x []float32, s float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = v + s
	}
}

// MaxScalar sets dst[i] = max(x[i], s).
func MaxScalar(dst, x []float32, s float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = max(v, s)
	}
}

// MaxScalarBackward accumulates dx[i] += dy[i] where x[i] >= s, the mask of
// torch.clamp(x, min=s) (the bound itself passes the gradient).
func MaxScalarBackward(x, dy, dx []float32, s float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	for i, v := range x {
		if v >= s {
			dx[i] += dy[i]
		}
	}
}

// Sqrt sets dst[i] = sqrt(x[i]) (NaN for negative x, as torch.sqrt).
func Sqrt(dst, x []float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = float32(math.Sqrt(float64(v)))
	}
}

// SqrtBackward accumulates dx[i] += dy[i] / (2*y[i]) from the forward
// output y = sqrt(x).
func SqrtBackward(y, dy, dx []float32) {
	y, dy = y[:len(dx)], dy[:len(dx)]
	for i, v := range y {
		dx[i] += dy[i] * 0.5 / v
	}
}

// Pow sets dst[i] = x[i]^p, computed in float64.
func Pow(dst, x []float32, p float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = float32(math.Pow(float64(v), float64(p)))
	}
}

// PowBackward accumulates dx[i] += dy[i] * p * x[i]^(p-1). Like
// torch.pow's backward, p == 0 gives exactly zero gradient.
func PowBackward(x, dy, dx []float32, p float32) {
	if p == 0 {
		return
	}
	x, dy = x[:len(dx)], dy[:len(dx)]
	for i, v := range x {
		dx[i] += float32(float64(dy[i]) * float64(p) * math.Pow(float64(v), float64(p)-1))
	}
}

// ClampChannels sets y = clamp(x, lo[c], hi[c]) on an n x c x hw tensor,
// the per-channel valid-range clip of DGH (SPEC section 3).
func ClampChannels(n, c, hw int, x, lo, hi, y []float32) {
	x, y = x[:n*c*hw], y[:n*c*hw]
	lo, hi = lo[:c], hi[:c]
	for b := range n {
		for ch := range c {
			o := (b*c + ch) * hw
			l, h := lo[ch], hi[ch]
			for i, v := range x[o : o+hw] {
				y[o+i] = min(max(v, l), h)
			}
		}
	}
}

// LpDistance returns sum |a[i]-b[i]|^p accumulated in float64, the
// reconstruction error of SPEC 4.4 and 4.6.
func LpDistance(a, b []float32, p float32) float64 {
	b = b[:len(a)]
	pp := float64(p)
	var s float64
	for i, v := range a {
		d := math.Abs(float64(v) - float64(b[i]))
		if pp == 2 {
			s += d * d
		} else {
			s += math.Pow(d, pp)
		}
	}
	return s
}

// LpDistanceBackward accumulates da[i] += g * p*|d|^(p-1)*sign(d) with
// d = a[i]-b[i], and db[i] -= the same. Either of da and db may be nil.
func LpDistanceBackward(a, b []float32, p, g float32, da, db []float32) {
	b = b[:len(a)]
	pp, gg := float64(p), float64(g)
	for i, v := range a {
		d := float64(v) - float64(b[i])
		var gi float64
		switch {
		case d == 0:
			// |d|^p has zero slope at 0 for p > 1, the only p BRECQ uses.
		case pp == 2:
			gi = 2 * d * gg
		default:
			gi = gg * pp * math.Pow(math.Abs(d), pp-1) * math.Copysign(1, d)
		}
		if da != nil {
			da[i] += float32(gi)
		}
		if db != nil {
			db[i] -= float32(gi)
		}
	}
}
