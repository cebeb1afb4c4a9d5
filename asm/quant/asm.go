// Command quant generates kernels/quant_amd64.s and its Go stubs: the
// AVX2+FMA twins of the fake-quantization kernels of package kernels
// (SPEC section 4). Run it through `go generate ./kernels/`; never edit
// its output by hand.
//
// q(x) = (clamp(round(x/delta)+zp, 0, qmax) - zp) * delta with a true
// division (VDIVPS, as torch) and VROUNDPS mode 0, round half to even.
package main

import (
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/elementwise/avx"
)

func main() {
	ConstraintExpr("amd64")
	fakeQuant()
	fakeQuantBackward("fakeQuantBackwardAVX2", true)
	fakeQuantBackward("fakeQuantDeltaGradAVX2", false)
	quantErrorLp()
	Generate()
}

// params are the broadcast quantizer parameters.
type params struct{ delta, zp, qmax, zero VecVirtual }

func loadParams() params {
	return params{avx.Broadcast("delta"), avx.Broadcast("zp"), avx.Broadcast("qmax"), avx.Zero()}
}

// quantize returns s = x/delta, r = round(s) and q(x).
func (p params) quantize(x VecVirtual) (s, r, q VecVirtual) {
	s, r, q = YMM(), YMM(), YMM()
	VDIVPS(p.delta, x, s)
	VROUNDPS(U8(0), s, r)
	VADDPS(p.zp, r, q)
	VMAXPS(q, p.zero, q)
	VMINPS(q, p.qmax, q)
	VSUBPS(p.zp, q, q)
	VMULPS(p.delta, q, q)
	return s, r, q
}

func fakeQuant() {
	avx.Text("fakeQuantAVX2", "func(dst, x []float32, delta, zp, qmax float32)")
	Doc("fakeQuantAVX2 sets dst[i] = q(x[i]) over len(dst) floats.")
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
	below, above := YMM(), YMM() // dq/ddelta where clamped low / high
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
		u, lo, hi, term := YMM(), YMM(), YMM(), YMM()
		VADDPS(p.zp, r, u)
		VCMPPS(U8(avx.CmpLT), p.zero, u, lo)
		VCMPPS(U8(avx.CmpGT), p.qmax, u, hi)
		VSUBPS(s, r, term)
		VBLENDVPS(lo, below, term, term)
		VBLENDVPS(hi, above, term, term)
		g := l.Load(dy)
		if withDx {
			out, pass := YMM(), YMM()
			VORPS(lo, hi, out)
			VANDNPS(g, out, pass)
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
	Store(avx.HsumPD(acc[0]), ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// quantErrorLp emits sum |x - q(x)|^p in float64 for 0 < p <= 7.
//
// |e|^p = 2^(p*log2|e|): |e| = m*2^k with m in [sqrt(1/2), sqrt(2)),
// log2 m = (2/ln 2)*atanh(f), f = (m-1)/(m+1), |f| < 0.1716, by its odd
// series to f^9 (truncation below 1e-9). p*k is split exactly with an FMA
// into hi + lo so the integer part of the exponent never costs precision;
// 2^r for |r| <= 1/2 is its degree-7 Taylor polynomial (relative error
// below 1e-8), and 2^n is applied in float64, so results far below the
// float32 range still count. |e| below the smallest normal float32
// contributes 0 (at most 1e-91 each for p = 2.4).
func quantErrorLp() {
	avx.Text("quantErrorLpAVX2", "func(x []float32, delta, zp, qmax, p float32) float64")
	Doc("quantErrorLpAVX2 returns sum |x[i] - q(x[i])|^p over len(x) floats,",
		"accumulated in float64; 0 < p <= 7.")
	qp := loadParams()
	pw := avx.Broadcast("p")
	acc := []VecVirtual{avx.Zero(), avx.Zero()}
	x, n := avx.Base("x"), avx.Len("x")
	one := avx.Float(1)
	oneR := avx.Splat(1)
	avx.Loop(n, []GPVirtual{x}, 1, func(_ int, l avx.Lanes) {
		xv := l.Load(x)
		_, _, q := qp.quantize(xv)
		a := YMM()
		VSUBPS(q, xv, a)
		VANDPS(avx.Const32(0x7fffffff), a, a)

		valid := YMM()
		VCMPPS(U8(avx.CmpGE), avx.Const32(0x00800000), a, valid)
		if l.Mask != nil {
			VANDPS(l.Mask, valid, valid)
		}

		// a = m * 2^k, m in [1, 2), then m in [sqrt(1/2), sqrt(2)).
		k, m := YMM(), YMM()
		VPSRLD(U8(23), a, k)
		VPSUBD(avx.Const32(127), k, k)
		VANDPS(avx.Const32(0x007fffff), a, m)
		VORPS(one, m, m)
		big, kf, t := YMM(), YMM(), YMM()
		VCMPPS(U8(avx.CmpGT), avx.Float(math.Sqrt2), m, big)
		VCVTDQ2PS(k, kf)
		VANDPS(one, big, t)
		VADDPS(t, kf, kf)
		VBLENDVPS(big, avx.Float(0.5), oneR, t)
		VMULPS(t, m, m)

		// log2 m = f * (2/ln2) * (1 + f2/3 + f2^2/5 + f2^3/7 + f2^4/9).
		f, f2, poly := YMM(), YMM(), YMM()
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
		hi, lo, n1, r := YMM(), YMM(), YMM(), YMM()
		VMULPS(pw, kf, hi)
		VMOVAPS(hi, lo)
		VFMSUB231PS(kf, pw, lo)
		VROUNDPS(U8(0), hi, n1)
		VSUBPS(n1, hi, r)
		VADDPS(lo, r, r)
		VFMADD231PS(poly, pw, r)
		n2 := YMM()
		VROUNDPS(U8(0), r, n2)
		VSUBPS(n2, r, r)
		VADDPS(n2, n1, n1)

		// 2^r by Taylor: sum (r ln2)^j / j!, j <= 7.
		e := YMM()
		c := make([]float64, 8)
		c[0] = 1
		for j := 1; j < 8; j++ {
			c[j] = c[j-1] * math.Ln2 / float64(j)
		}
		VMOVUPS(avx.Float(float32(c[7])), e)
		for j := 6; j >= 0; j-- {
			VFMADD213PS(avx.Float(float32(c[j])), r, e)
		}
		VANDPS(valid, e, e)

		// Scale by 2^n in float64: n+1023 in the exponent field.
		ni := YMM()
		VCVTPS2DQ(n1, ni)
		elo, ehi := avx.Widen(e)
		nhi := XMM()
		VEXTRACTI128(U8(1), ni, nhi)
		for i, h := range []struct{ e, n Op }{{elo, ni.AsX()}, {ehi, nhi}} {
			sc := YMM()
			VPMOVSXDQ(h.n, sc)
			VPADDQ(avx.Const64(1023), sc, sc)
			VPSLLQ(U8(52), sc, sc)
			VFMADD231PD(h.e, sc, acc[i])
		}
	})
	VADDPD(acc[1], acc[0], acc[0])
	Store(avx.HsumPD(acc[0]), ReturnIndex(0))
	VZEROUPPER()
	RET()
}
