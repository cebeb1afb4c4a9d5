// Command quant generates kernels/quant_amd64.s and its Go stubs: the
// AVX2+FMA and AVX-512 twins of the fake-quantization kernels of package kernels
// (docs/DESIGN.md, "BRECQ"): FakeQuant and its LSQ backward, the |x - q(x)|^p error
// of the scale search, and AdaRound's soft rounding, its backward and its
// rounding term. Run it through `go generate ./kernels/`; never edit its
// output by hand.
//
// q(x) = (clamp(round(x/delta)+zp, 0, qmax) - zp) * delta with a true
// division (VDIVPS, as torch) and VROUNDPS mode 0, round half to even.
// Powers and the sigmoid are evaluated in float32 by exp2/log2
// polynomials (see power), as torch's float32 pow and sigmoid would be.
package main

import (
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

func main() {
	avx.Begin()
	for _, w := range []avx.Width{avx.AVX2, avx.AVX512} {
		avx.Use(w)
		fakeQuant()
		fakeQuantBackward(avx.Name("fakeQuantBackward"), true)
		fakeQuantBackward(avx.Name("fakeQuantDeltaGrad"), false)
		quantErrorLp()
		adaRoundForward()
		adaRoundBackward()
		adaRoundRegularizer(avx.Name("adaRoundRegGrad"), true)
		adaRoundRegularizer(avx.Name("adaRoundReg"), false)
		lpGrad()
	}
	Generate()
}

// params are the broadcast quantizer parameters.
type params struct{ delta, zp, qmax, zero VecVirtual }

func loadParams() params {
	return params{avx.Broadcast("delta"), avx.Broadcast("zp"), avx.Broadcast("qmax"), avx.Zero()}
}

// quantize returns s = x/delta, r = round(s) and q(x).
func (p params) quantize(x VecVirtual) (s, r, q VecVirtual) {
	s, r, q = avx.VecReg(), avx.VecReg(), avx.VecReg()
	VDIVPS(p.delta, x, s)
	avx.Round(0, s, r)
	VADDPS(p.zp, r, q)
	VMAXPS(q, p.zero, q)
	VMINPS(q, p.qmax, q)
	VSUBPS(p.zp, q, q)
	VMULPS(p.delta, q, q)
	return s, r, q
}

func fakeQuant() {
	avx.Text(avx.Name("fakeQuant"), "func(dst, x []float32, delta, zp, qmax float32)")
	Doc(avx.Name("fakeQuant") + " sets dst[i] = q(x[i]) over len(dst) floats.")
	p := loadParams()
	d, x, n := avx.Base("dst"), avx.Base("x"), avx.Len("dst")
	avx.Loop(n, []GPVirtual{d, x}, 2, func(_ int, l avx.Lanes) {
		_, _, q := p.quantize(l.Load(x))
		l.Store(q, d)
	})
	VZEROUPPER()
	RET()
}

// fakeQuantBackward emits the LSQ gradient: the returned float64 sum of
// dy * (round(x/delta) - x/delta inside the range, the clamped level
// minus zp outside), and, with dx, the straight-through dx += dy inside.
func fakeQuantBackward(name string, withDx bool) {
	if withDx {
		avx.Text(name, "func(x, dy, dx []float32, delta, zp, qmax float32) float64")
		Doc(name+" accumulates dx[i] += dy[i] where x[i] is not clamped and",
			"returns the gradient of delta, sum dy[i]*dq(x[i])/ddelta, in float64.")
	} else {
		avx.Text(name, "func(x, dy []float32, delta, zp, qmax float32) float64")
		Doc(name+" returns the gradient of delta, sum dy[i]*dq(x[i])/ddelta,",
			"in float64.")
	}
	p := loadParams()
	below, above := avx.VecReg(), avx.VecReg() // dq/ddelta where clamped low / high
	VSUBPS(p.zp, p.zero, below)
	VSUBPS(p.zp, p.qmax, above)
	acc := []VecVirtual{avx.Zero(), avx.Zero()}
	x, dy, n := avx.Base("x"), avx.Base("dy"), avx.Len("x")
	ptrs := []GPVirtual{x, dy}
	var dx GPVirtual
	if withDx {
		dx = avx.Base("dx")
		ptrs = append(ptrs, dx)
	}
	avx.Loop(n, ptrs, 1, func(_ int, l avx.Lanes) {
		s, r, _ := p.quantize(l.Load(x))
		u, term := avx.VecReg(), avx.VecReg()
		VADDPS(p.zp, r, u)
		lo := avx.Cmp(avx.CmpLT, p.zero, u)
		hi := avx.Cmp(avx.CmpGT, p.qmax, u)
		VSUBPS(s, r, term)
		avx.Blend(lo, below, term, term)
		avx.Blend(hi, above, term, term)
		g := l.Load(dy)
		if withDx {
			pass := avx.Outside(hi.Or(lo), g)
			d := l.Load(dx)
			VADDPS(pass, d, d)
			l.Store(d, dx)
		}
		tlo, thi := avx.Widen(term)
		glo, ghi := avx.Widen(g)
		VFMADD231PD(tlo, glo, acc[0])
		VFMADD231PD(thi, ghi, acc[1])
	})
	VADDPD(acc[1], acc[0], acc[0])
	avx.StoreReturn(avx.HsumPD(acc[0]), 0)
	VZEROUPPER()
	RET()
}

// quantErrorLp emits sum |x - q(x)|^p in float64 for 0 < p <= 7; see
// power for the method. The 2^n factor is applied in float64, so results
// far below the float32 range still count.
func quantErrorLp() {
	avx.Text(avx.Name("quantErrorLp"), "func(x []float32, delta, zp, qmax, p float32) float64")
	Doc(avx.Name("quantErrorLp")+" returns sum |x[i] - q(x[i])|^p over len(x) floats,",
		"accumulated in float64; 0 < p <= 7.")
	qp := loadParams()
	pw := avx.Broadcast("p")
	acc := []VecVirtual{avx.Zero(), avx.Zero()}
	x, n := avx.Base("x"), avx.Len("x")
	avx.Loop(n, []GPVirtual{x}, 1, func(_ int, l avx.Lanes) {
		xv := l.Load(x)
		_, _, q := qp.quantize(xv)
		a := avx.VecReg()
		VSUBPS(q, xv, a)
		VANDPS(avx.Const32(0x7fffffff), a, a)
		e, n1, valid := power(a, pw)
		avx.Keep(valid.And(l.Mask), e)

		// Scale by 2^n in float64: n+1023 in the exponent field.
		ni := avx.VecReg()
		VCVTPS2DQ(n1, ni)
		elo, ehi := avx.Widen(e)
		nlo, nhi := avx.WidenInt(ni)
		for i, h := range []struct{ e, n VecVirtual }{{elo, nlo}, {ehi, nhi}} {
			sc := h.n
			VPADDQ(avx.Const64(1023), sc, sc)
			VPSLLQ(U8(52), sc, sc)
			VFMADD231PD(h.e, sc, acc[i])
		}
	})
	VADDPD(acc[1], acc[0], acc[0])
	avx.StoreReturn(avx.HsumPD(acc[0]), 0)
	VZEROUPPER()
	RET()
}

// lpGrad emits the gradient of sum |d|^(q+1) up to the factor gp, in
// place: d[i] = gp * sign(d[i]) * |d[i]|^q. Lanes where |d| is 0, not a
// normal float32 or not finite keep d; it returns nonzero when some lane
// other than 0 did (the caller redoes those). The 2^n factor is applied
// in two halves after gp, so results in range never overflow on the way.
func lpGrad() {
	avx.Text(avx.Name("lpGrad"), "func(d []float32, gp, q float32) int")
	Doc(avx.Name("lpGrad")+" sets d[i] = gp * sign(d[i]) * |d[i]|^q over len(d) floats",
		"where |d[i]| is a finite normal float32, keeping d[i] elsewhere; it returns",
		"nonzero when some kept d[i] is not 0. |q| <= 6.")
	gp, q := avx.Broadcast("gp"), avx.Broadcast("q")
	bad, z := avx.NoLanes(), avx.Zero()
	d, n := avx.Base("d"), avx.Len("d")
	avx.Loop(n, []GPVirtual{d}, 1, func(_ int, l avx.Lanes) {
		v := l.Load(d)
		a := avx.VecReg()
		VANDPS(avx.Const32(0x7fffffff), v, a)
		e, k, valid := power(a, q)
		valid = valid.And(avx.Cmp(avx.CmpLE, avx.Float(math.MaxFloat32), a))
		// gp * e * 2^k1 * 2^k2, k clamped to [-252, 252] and halved.
		VMULPS(gp, e, e)
		VMAXPS(avx.Float(-252), k, k)
		VMINPS(avx.Float(252), k, k)
		k1 := avx.VecReg()
		VMULPS(avx.Float(0.5), k, k1)
		avx.Round(1, k1, k1)
		VSUBPS(k1, k, k)
		VMULPS(pow2(k1), e, e)
		VMULPS(pow2(k), e, e)
		sign := avx.VecReg()
		VANDPS(avx.Const32(0x80000000), v, sign)
		VXORPS(sign, e, e)
		avx.Blend(valid, e, v, e)
		// Kept lanes that are not 0 (not equal is true for NaN).
		bad.OrIn(valid.AndNot(avx.Cmp(avx.CmpNE, z, a)).And(l.Mask))
		l.Store(e, d)
	})
	r := avx.Bits(bad)
	Store(r.As64(), ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// power returns a^p = e * 2^n for a > 0 as e in [sqrt(1/2), sqrt(2)] and
// the integer n (as float32), with the lanes where a is a normal float32
// (a^p is taken as 0 elsewhere; at most 1e-91 for p = 2.4).
//
// a = m*2^k with m in [sqrt(1/2), sqrt(2)); log2 m = (2/ln 2)*atanh(f),
// f = (m-1)/(m+1), |f| < 0.1716, by its odd series to f^9 (truncation
// below 1e-9). p*k is split exactly with an FMA into hi + lo so the
// integer part of the exponent never costs precision; 2^r for |r| <= 1/2
// is its degree-7 Taylor polynomial (relative error below 1e-8).
func power(a, p VecVirtual) (e, n VecVirtual, valid avx.Mask) {
	one := avx.Float(1)
	valid = avx.Cmp(avx.CmpGE, avx.Const32(0x00800000), a)

	// a = m * 2^k, m in [1, 2), then m in [sqrt(1/2), sqrt(2)).
	k, m := avx.VecReg(), avx.VecReg()
	VPSRLD(U8(23), a, k)
	VPSUBD(avx.Const32(127), k, k)
	VANDPS(avx.Const32(0x007fffff), a, m)
	VORPS(one, m, m)
	kf := avx.VecReg()
	big := avx.Cmp(avx.CmpGT, avx.Float(math.Sqrt2), m)
	VCVTDQ2PS(k, kf)
	t := avx.Select(big, one)
	VADDPS(t, kf, kf)
	VMOVUPS(one, t)
	avx.Blend(big, avx.Float(0.5), t, t)
	VMULPS(t, m, m)

	// log2 m = f * (2/ln2) * (1 + f2/3 + f2^2/5 + f2^3/7 + f2^4/9).
	f, f2, poly := avx.VecReg(), avx.VecReg(), avx.VecReg()
	VSUBPS(one, m, f)
	VADDPS(one, m, t)
	VDIVPS(t, f, f)
	VMULPS(f, f, f2)
	VMOVUPS(avx.Float(1.0/9), poly)
	for _, c := range []float64{1.0 / 7, 1.0 / 5, 1.0 / 3, 1} {
		VFMADD213PS(avx.Float(float32(c)), f2, poly)
	}
	VMULPS(f, poly, poly)
	VMULPS(avx.Float(float32(2/math.Ln2)), poly, poly)

	// p*log2 a = hi + lo + p*log2 m = n + r, |r| <= 1/2.
	hi, lo, r := avx.VecReg(), avx.VecReg(), avx.VecReg()
	n = avx.VecReg()
	VMULPS(p, kf, hi)
	VMOVAPS(hi, lo)
	VFMSUB231PS(kf, p, lo)
	avx.Round(0, hi, n)
	VSUBPS(n, hi, r)
	VADDPS(lo, r, r)
	VFMADD231PS(poly, p, r)
	n2 := avx.VecReg()
	avx.Round(0, r, n2)
	VSUBPS(n2, r, r)
	VADDPS(n2, n, n)
	return exp2Small(r), n, valid
}

// exp2Small returns 2^r for |r| <= 1/2 (a little beyond is fine): the
// degree-7 Taylor polynomial of exp(r ln 2), relative error below 1e-8.
func exp2Small(r VecVirtual) VecVirtual {
	c := make([]float64, 8)
	c[0] = 1
	for j := 1; j < 8; j++ {
		c[j] = c[j-1] * math.Ln2 / float64(j)
	}
	e := avx.VecReg()
	VMOVUPS(avx.Float(float32(c[7])), e)
	for j := 6; j >= 0; j-- {
		VFMADD213PS(avx.Float(float32(c[j])), r, e)
	}
	return e
}

// pow2 returns the float32 2^n for integer-valued n in [-126, 127].
func pow2(n VecVirtual) VecVirtual {
	ni := avx.VecReg()
	VCVTPS2DQ(n, ni)
	VPADDD(avx.Const32(127), ni, ni)
	VPSLLD(U8(23), ni, ni)
	return ni
}

// sigmoid returns 1/(1+exp(-a)) with exp(-a) = 2^(-a log2 e), the exponent
// clamped to [-125, 125] where the sigmoid is 0 or 1 in float32 anyway.
func sigmoid(a VecVirtual) VecVirtual {
	t, n := avx.VecReg(), avx.VecReg()
	VMULPS(avx.Float(float32(-1/math.Ln2)), a, t)
	VMAXPS(avx.Float(-125), t, t)
	VMINPS(avx.Float(125), t, t)
	avx.Round(0, t, n)
	VSUBPS(n, t, t)
	e := exp2Small(t)
	VMULPS(pow2(n), e, e)
	VADDPS(avx.Float(1), e, e)
	s := avx.VecReg()
	VMOVUPS(avx.Float(1), s)
	VDIVPS(e, s, s)
	return s
}

// softRound returns, for AdaRound (docs/DESIGN.md, "BRECQ", step 4), s = sigmoid(alpha), the
// unclamped v = s*1.2 - 0.1 and h = clamp(v, 0, 1).
func softRound(alpha VecVirtual) (s, v, h VecVirtual) {
	s = sigmoid(alpha)
	v, h = avx.VecReg(), avx.VecReg()
	VMULPS(avx.Float(1.2), s, v)
	VSUBPS(avx.Float(0.1), v, v)
	VMAXPS(avx.Float(0), v, h)
	VMINPS(avx.Float(1), h, h)
	return s, v, h
}

// adaRoundForward emits one row of AdaRoundForward.
func adaRoundForward() {
	avx.Text(avx.Name("adaRoundForward"), "func(dst, w, alpha []float32, delta, zp, qmax float32)")
	Doc(avx.Name("adaRoundForward")+" sets dst[i] = (clamp(floor(w[i]/delta) + h(alpha[i]) + zp,",
		"0, qmax) - zp) * delta over len(dst) floats.")
	p := loadParams()
	d, w, al, n := avx.Base("dst"), avx.Base("w"), avx.Base("alpha"), avx.Len("dst")
	avx.Loop(n, []GPVirtual{d, w, al}, 1, func(_ int, l avx.Lanes) {
		_, _, h := softRound(l.Load(al))
		u := avx.VecReg()
		VDIVPS(p.delta, l.Load(w), u)
		avx.Round(1, u, u)
		VADDPS(h, u, u)
		VADDPS(p.zp, u, u)
		VMAXPS(u, p.zero, u)
		VMINPS(u, p.qmax, u)
		VSUBPS(p.zp, u, u)
		VMULPS(p.delta, u, u)
		l.Store(u, d)
	})
	VZEROUPPER()
	RET()
}

// adaRoundBackward emits one row of AdaRoundBackward.
func adaRoundBackward() {
	avx.Text(avx.Name("adaRoundBackward"), "func(w, alpha, dy, dAlpha []float32, delta, zp, qmax float32)")
	Doc(avx.Name("adaRoundBackward")+" accumulates dAlpha[i] += dy[i]*delta*h'(alpha[i]) over",
		"len(dAlpha) floats where neither clamp is active.")
	p := loadParams()
	w, al, dy, da, n := avx.Base("w"), avx.Base("alpha"), avx.Base("dy"), avx.Base("dAlpha"), avx.Len("dAlpha")
	avx.Loop(n, []GPVirtual{w, al, dy, da}, 1, func(_ int, l avx.Lanes) {
		s, v, h := softRound(l.Load(al))
		u := avx.VecReg()
		VDIVPS(p.delta, l.Load(w), u)
		avx.Round(1, u, u)
		VADDPS(h, u, u)
		VADDPS(p.zp, u, u)
		pass := avx.Cmp(avx.CmpGE, p.zero, u)
		pass = pass.And(avx.Cmp(avx.CmpLE, p.qmax, u))
		pass = pass.And(avx.Cmp(avx.CmpGE, p.zero, v))
		pass = pass.And(avx.Cmp(avx.CmpLE, avx.Float(1), v))
		// dh = 1.2 * s * (1 - s); g = dy * delta * dh.
		dh, g := avx.VecReg(), avx.VecReg()
		VMOVUPS(avx.Float(1), dh)
		VSUBPS(s, dh, dh)
		VMULPS(s, dh, dh)
		VMULPS(avx.Float(1.2), dh, dh)
		VMULPS(p.delta, l.Load(dy), g)
		VMULPS(dh, g, g)
		avx.Keep(pass, g)
		acc := l.Load(da)
		VADDPS(g, acc, acc)
		l.Store(acc, da)
	})
	VZEROUPPER()
	RET()
}

// adaRoundRegularizer emits the rounding term of docs/DESIGN.md, "BRECQ", step 4 over a slice:
// it returns sum(1 - |2h-1|^beta) in float64 and, with dAlpha, adds
// coef * sign(2h-1) * |2h-1|^(beta-1) * h'(alpha) to dAlpha, where the
// caller passes coef = -2*beta*weight.
func adaRoundRegularizer(name string, withGrad bool) {
	if withGrad {
		avx.Text(name, "func(alpha, dAlpha []float32, beta, coef float32) float64")
		Doc(name+" returns sum(1 - |2h-1|^beta) over len(alpha) floats in float64",
			"and accumulates dAlpha[i] += coef * sign(2h-1) * |2h-1|^(beta-1) * h'(alpha[i]).")
	} else {
		avx.Text(name, "func(alpha []float32, beta float32) float64")
		Doc(name + " returns sum(1 - |2h-1|^beta) over len(alpha) floats in float64.")
	}
	bm1 := avx.Broadcast("beta")
	VSUBPS(avx.Float(1), bm1, bm1)
	var coef VecVirtual
	al, n := avx.Base("alpha"), avx.Len("alpha")
	ptrs := []GPVirtual{al}
	var da GPVirtual
	if withGrad {
		coef = avx.Broadcast("coef")
		da = avx.Base("dAlpha")
		ptrs = append(ptrs, da)
	}
	acc := []VecVirtual{avx.Zero(), avx.Zero()}
	avx.Loop(n, ptrs, 1, func(_ int, l avx.Lanes) {
		s, v, h := softRound(l.Load(al))
		m, am := avx.VecReg(), avx.VecReg()
		VADDPS(h, h, m)
		VSUBPS(avx.Float(1), m, m)
		VANDPS(avx.Const32(0x7fffffff), m, am)
		// |m|^(beta-1) = e * 2^n; zero where |m| is not normal or the
		// result falls below the float32 range.
		e, n, valid := power(am, bm1)
		valid = valid.And(avx.Cmp(avx.CmpGE, avx.Float(-125), n))
		VMAXPS(avx.Float(-125), n, n)
		VMULPS(pow2(n), e, e)
		avx.Keep(valid, e)
		// term = 1 - |m|^beta, masked lanes contribute 0.
		term, one := avx.VecReg(), avx.VecReg()
		VMULPS(am, e, term)
		VMOVUPS(avx.Float(1), one)
		VSUBPS(term, one, term)
		avx.Keep(l.Mask, term)
		tlo, thi := avx.Widen(term)
		VADDPD(tlo, acc[0], acc[0])
		VADDPD(thi, acc[1], acc[1])
		if !withGrad {
			return
		}
		// g = coef * sign(m)|m|^(beta-1) * dh, dh = 1.2 s (1-s) inside.
		sign, dh := avx.VecReg(), avx.VecReg()
		VANDPS(avx.Const32(0x80000000), m, sign)
		VORPS(sign, e, e)
		VMOVUPS(avx.Float(1), dh)
		VSUBPS(s, dh, dh)
		VMULPS(s, dh, dh)
		VMULPS(avx.Float(1.2), dh, dh)
		avx.Keep(avx.Cmp(avx.CmpGE, avx.Float(0), v), dh)
		avx.Keep(avx.Cmp(avx.CmpLE, avx.Float(1), v), dh)
		VMULPS(coef, e, e)
		VMULPS(dh, e, e)
		g := l.Load(da)
		VADDPS(e, g, g)
		l.Store(g, da)
	})
	VADDPD(acc[1], acc[0], acc[0])
	avx.StoreReturn(avx.HsumPD(acc[0]), 0)
	VZEROUPPER()
	RET()
}
