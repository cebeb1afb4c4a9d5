package kernels

// Small elementwise kernels the autograd ops need beyond the contract's
// families (docs/DESIGN.md, "Kernels"). Most are not hot enough to deserve
// assembly and have one pure-Go definition on every path; the Lp distance
// of BRECQ's loss, which runs at every reconstruction step, reuses the
// elementwise and quant families' SIMD kernels (and so their paths).
// Like the other families, forward kernels overwrite dst and backward
// kernels accumulate into dx.

import (
	"math"
	"sync"
)

// MulAcc accumulates dst[i] += a[i]*b[i], the backward of an elementwise
// product.
func MulAcc(dst, a, b []float32) { map3(mulAccRange, dst, a, b) }

func mulAccRange(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	for i := range dst {
		dst[i] += a[i] * b[i]
	}
}

// AddScalar sets dst[i] = x[i] + s.
func AddScalar(dst, x []float32, s float32) { mapScalar(addScalarRange, s, x[:len(dst)], dst) }

// addScalarRange sets dst[i] = x[i] + s through the scale-and-shift
// kernel, vectorised where it is (x*1 + s is x + s exactly, fused or not):
// a convolution adds its bias this way to every output it stores (the
// scalar loop was 4% of a BRECQ run on the default model).
func addScalarRange(s float32, x, dst []float32) {
	active.elementwise.scaleShift(dst, x[:len(dst)], 1, s, ActNone)
}

// MaxScalar sets dst[i] = max(x[i], s).
func MaxScalar(dst, x []float32, s float32) { mapScalar(maxScalarRange, s, x[:len(dst)], dst) }

func maxScalarRange(s float32, x, dst []float32) {
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
func Sqrt(dst, x []float32) { map2(sqrtRange, dst, x[:len(dst)]) }

func sqrtRange(dst, x []float32) {
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

// Pow sets dst[i] = x[i]^p as math.Pow would, rounded to float32.
// Squares and the identity are computed exactly; other exponents of
// positive x use powFast.
func Pow(dst, x []float32, p float32) { mapScalar(powInto, p, x[:len(dst)], dst) }

func powInto(p float32, x, dst []float32) {
	x = x[:len(dst)]
	switch p {
	case 1:
		copy(dst, x)
	case 2:
		for i, v := range x {
			dst[i] = v * v
		}
	default:
		q := float64(p)
		for i, v := range x {
			dst[i] = float32(powAny(float64(v), q))
		}
	}
}

// PowBackward accumulates dx[i] += dy[i] * p * x[i]^(p-1). Like
// torch.pow's backward, p == 0 gives exactly zero gradient.
func PowBackward(x, dy, dx []float32, p float32) {
	if p == 0 {
		return
	}
	n := len(dx)
	t := newTask(powBackwardBlocks)
	t.s[0], t.s[1], t.s[2], t.f[0] = x[:n], dy[:n], dx, p
	// A power weighs as 16 plain operations.
	t.spread(numBlocks(n), 16*n)
	t.release()
}

func powBackwardBlocks(t *task, lo, hi int) {
	x, dy, dx, p := t.s[0], t.s[1], t.s[2], t.f[0]
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(dx))
		powBackwardRange(x[i:j], dy[i:j], dx[i:j], p)
	}
}

func powBackwardRange(x, dy, dx []float32, p float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	switch p {
	case 1:
		active.elementwise.axpy(1, dy, dx)
	case 2:
		for i, v := range x {
			dx[i] += 2 * v * dy[i]
		}
	default:
		pp := float64(p)
		for i, v := range x {
			dx[i] += float32(float64(dy[i]) * pp * powAny(float64(v), pp-1))
		}
	}
}

// powFastMaxExp bounds the exponents powFast takes, so p*log2(a) stays
// inside the float64 exponent range for every float32 a.
const powFastMaxExp = 7

// powAny is math.Pow(a, q), through powFast where a is a positive normal
// float32 and |q| <= powFastMaxExp.
func powAny(a, q float64) float64 {
	if a >= 0x1p-126 && a <= math.MaxFloat32 && q >= -powFastMaxExp && q <= powFastMaxExp {
		return powFast(float32(a), q)
	}
	return math.Pow(a, q)
}

// powFast returns a^q for a positive normal float32 a and |q| <=
// powFastMaxExp, with a relative error near 1e-10 (float64 arithmetic,
// the method of the quant kernels' SIMD power at higher degree) in a
// fraction of math.Pow's time:
// a = m * 2^k with m in [sqrt(1/2), sqrt(2)); log2 m = (2/ln 2) atanh(f),
// f = (m-1)/(m+1), |f| < 0.1716, by its odd series to f^11 (truncation
// below 1e-10); q*log2 a = n + r with integer n and |r| <= 1/2; 2^r by the
// degree-8 Taylor polynomial of exp(r ln 2) (truncation below 2e-10).
func powFast(a float32, q float64) float64 {
	bits := math.Float32bits(a)
	k := int(bits>>23) - 127
	m := float64(math.Float32frombits(bits&0x007fffff | 0x3f800000))
	if m > math.Sqrt2 {
		m *= 0.5
		k++
	}
	f := (m - 1) / (m + 1)
	f2 := f * f
	log2m := f * (2 / math.Ln2) * (1 + f2*(1.0/3+f2*(1.0/5+f2*(1.0/7+f2*(1.0/9+f2*(1.0/11))))))
	y := q * (float64(k) + log2m)
	// Round to nearest by the 1.5*2^52 trick (|y| < 2^51): math.Floor
	// is a call on amd64 before GOAMD64=v2.
	n := (y + 0x1.8p52) - 0x1.8p52
	r := (y - n) * math.Ln2
	e := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320))))))))
	// |n| <= 7*129, so n + 1023 is a valid float64 exponent.
	return e * math.Float64frombits(uint64(int64(n)+1023)<<52)
}

// ClampChannels sets y = clamp(x, lo[c], hi[c]) on an n x c x hw tensor,
// the per-channel valid-range clip of DGH (docs/DESIGN.md, "DGH"). Workers split
// the n*c planes.
func ClampChannels(n, c, hw int, x, lo, hi, y []float32) {
	t := newTask(clampPlanes)
	t.s[0], t.s[1], t.s[2], t.s[3] = x[:n*c*hw], y[:n*c*hw], lo[:c], hi[:c]
	t.n[0], t.n[1] = c, hw
	t.spread(n*c, n*c*hw)
	t.release()
}

func clampPlanes(t *task, lo, hi int) {
	x, y, lower, upper, c, hw := t.s[0], t.s[1], t.s[2], t.s[3], t.n[0], t.n[1]
	for pl := lo; pl < hi; pl++ {
		l, h := lower[pl%c], upper[pl%c]
		o := pl * hw
		dst := y[o : o+hw]
		for i, v := range x[o : o+hw] {
			dst[i] = min(max(v, l), h)
		}
	}
}

// lpChunk is the number of differences the Lp kernels hold at a time: 4 KB
// stays in L1 while the power runs over them.
const lpChunk = 1024

var lpScratch = sync.Pool{New: func() any { return new([lpChunk]float32) }}

// LpDistance returns sum |a[i]-b[i]|^p accumulated in float64, the
// reconstruction error of docs/DESIGN.md, "BRECQ", steps 4 and 6. Like torch, the difference is
// taken in float32. p == 2 sums exact squares; other p > 0 run the quant
// family's |e|^p (SIMD on AVX2 and NEON, relative error near 2e-7 per
// element; math.Pow on the generic path). Blocks are summed in a fixed
// order, so the result does not depend on the thread count.
func LpDistance(a, b []float32, p float32) float64 {
	n := len(a)
	t := newTask(lpDistanceBlocks)
	t.s[0], t.s[1], t.f[0] = a, b[:n], p
	nb := numBlocks(n)
	t.partials(nb)
	t.spread(nb, lpWork(n, p))
	s := t.sumPartials()
	t.release()
	return s
}

// lpWork weighs n elements of an Lp kernel for spread: a power costs as
// much as 16 plain operations.
func lpWork(n int, p float32) int {
	if p == 2 {
		return n
	}
	return 16 * n
}

func lpDistanceBlocks(t *task, lo, hi int) {
	a, b, p := t.s[0], t.s[1], t.f[0]
	buf := lpScratch.Get().(*[lpChunk]float32)
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(a))
		t.part[k] = lpDistanceRange(a[i:j], b[i:j], p, buf)
	}
	lpScratch.Put(buf)
}

func lpDistanceRange(a, b []float32, p float32, buf *[lpChunk]float32) float64 {
	b = b[:len(a)]
	var s float64
	switch {
	case p == 2:
		var s1, s2 float64
		i := 0
		for ; i+1 < len(a); i += 2 {
			d1, d2 := float64(a[i]-b[i]), float64(a[i+1]-b[i+1])
			s1 += d1 * d1
			s2 += d2 * d2
		}
		if i < len(a) {
			d := float64(a[i] - b[i])
			s1 += d * d
		}
		s = s1 + s2
	case p > 0:
		for o := 0; o < len(a); o += lpChunk {
			d := buf[:min(lpChunk, len(a)-o)]
			active.elementwise.sub(d, a[o:o+len(d)], b[o:o+len(d)])
			// With one level, q(x) = 0 for every x, so the quantization
			// error is |d| itself.
			s += active.quant.quantErrorLp(d, 1, 0, 0, p)
		}
	default:
		pp := float64(p)
		for i, v := range a {
			s += math.Pow(math.Abs(float64(v-b[i])), pp)
		}
	}
	return s
}

// LpDistanceBackward accumulates da[i] += g * p*|d|^(p-1)*sign(d) with
// d = a[i]-b[i] in float32, and db[i] -= the same. Either of da and db
// may be nil. Where d == 0 the gradient is 0 (|d|^p has zero slope there
// for p > 1, the only p BRECQ uses).
func LpDistanceBackward(a, b []float32, p, g float32, da, db []float32) {
	if da == nil && db == nil {
		return
	}
	n := len(a)
	t := newTask(lpBackwardBlocks)
	t.s[0], t.s[1], t.f[0], t.f[1] = a, b[:n], p, g
	if da != nil {
		t.s[2] = da[:n]
	}
	if db != nil {
		t.s[3] = db[:n]
	}
	t.spread(numBlocks(n), lpWork(n, p))
	t.release()
}

func lpBackwardBlocks(t *task, lo, hi int) {
	a, b, da, db := t.s[0], t.s[1], t.s[2], t.s[3]
	buf := lpScratch.Get().(*[lpChunk]float32)
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(a))
		for o := i; o < j; o += lpChunk {
			e := min(o+lpChunk, j)
			var dab, dbb []float32
			if da != nil {
				dab = da[o:e]
			}
			if db != nil {
				dbb = db[o:e]
			}
			lpBackwardRange(a[o:e], b[o:e], t.f[0], t.f[1], dab, dbb, buf)
		}
	}
	lpScratch.Put(buf)
}

// lpGradLeft reports whether the quant table's lpGrad (the SIMD gradient
// power, where the path has one: it reports whether it left a difference
// other than 0 as it was) leaves the difference v as it
// was: not 0, but subnormal, infinite or NaN.
func lpGradLeft(v float32) bool {
	a := math.Abs(float64(v))
	return v != 0 && !(a >= 0x1p-126 && a <= math.MaxFloat32)
}

// lpBackwardRange is LpDistanceBackward on at most lpChunk elements.
func lpBackwardRange(a, b []float32, p, g float32, da, db []float32, buf *[lpChunk]float32) {
	d := buf[:len(a)]
	active.elementwise.sub(d, a, b[:len(a)])
	if p == 2 {
		if da != nil {
			active.elementwise.axpy(2*g, d, da)
		}
		if db != nil {
			active.elementwise.axpy(-2*g, d, db)
		}
		return
	}
	// d becomes the gradient g*p*|d|^(p-1)*sign(d).
	gp, q := float64(g)*float64(p), float64(p)-1
	// The SIMD power, float32 like the forward sum's, leaves zero,
	// subnormal and non-finite differences to the scalar loop.
	lpGrad := active.quant.lpGrad
	simd := lpGrad != nil && q >= -6 && q <= 6
	if !simd || lpGrad(d, float32(gp), float32(q)) {
		for i, v := range d {
			if v == 0 || simd && !lpGradLeft(a[i]-b[i]) {
				continue
			}
			gi := gp * powAny(math.Abs(float64(v)), q)
			if v < 0 {
				gi = -gi
			}
			d[i] = float32(gi)
		}
	}
	if da != nil {
		active.elementwise.axpy(1, d, da)
	}
	if db != nil {
		active.elementwise.axpy(-1, d, db)
	}
}
