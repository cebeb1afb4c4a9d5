// Command conv generates the amd64 depthwise-convolution row kernels of
// package kernels (SPEC section 1, kernels: direct depthwise 3x3 stride 1
// and 2). Run by go generate from kernels/gen.go; it writes
// kernels/conv_amd64.s and its Go stubs.
//
// The row kernels sweep one output row of a 3x3 depthwise convolution
// eight columns at a time with AVX2+FMA, the Go caller doing the last few
// columns; the plane kernels sweep every output row of a zero-framed
// plane, masking each row's last vector, so a plane is a single call.
package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	Package("github.com/dghcore/dghcore/kernels")
	ConstraintExpr("amd64")
	dwRowForward("dwRow3x3S1AVX2", 1)
	dwRowForward("dwRow3x3S2AVX2", 2)
	dwPlaneForward("dwPlane3x3S1AVX2", 1)
	dwPlaneForward("dwPlane3x3S2AVX2", 2)
	dwRowGrad3x3("dwRowGrad3x3S1AVX2", 1)
	dwRowGrad3x3("dwRowGrad3x3S2AVX2", 2)
	gatherEven()
	maxPool3x3S2()
	dwPlaneForward512(1)
	dwPlaneForward512(2)
	Generate()
}

// taps broadcasts the nine taps (and, with bias, w[9]) into Y0-Y9.
func taps(w Register, bias bool) {
	n := 9
	if bias {
		n = 10
	}
	for i := range n {
		VBROADCASTSS(Mem{Base: w, Disp: 4 * i}, ymm(i))
	}
}

// dwRowForward: y[i] (=|+=) w[9] + sum_{kh,kw} w[kh*3+kw] * r_kh[s*i+kw]
// for i < n, n a multiple of 8. Stride 2 deinterleaves 16 input floats
// into even and odd lanes with VSHUFPS + VPERMPD.
func dwRowForward(name string, stride int) {
	TEXT(name, NOSPLIT, "func(n int, y, r0, r1, r2 []float32, w *[10]float32, accumulate bool)")
	Doc(name+" computes n (a multiple of 8) outputs of one row of a 3x3",
		"depthwise convolution with stride "+map[int]string{1: "1", 2: "2"}[stride]+":",
		"y[i] = w[9] + sum over kh, kw of w[kh*3+kw]*r_kh[stride*i+kw], stored or",
		"(accumulate) added to y.")
	Pragma("noescape")
	n := Load(Param("n"), RCX)
	y := Load(Param("y").Base(), RDI)
	rows := []Register{Load(Param("r0").Base(), RSI), Load(Param("r1").Base(), R8), Load(Param("r2").Base(), R9)}
	w := Load(Param("w"), RAX)
	acc := Load(Param("accumulate"), RDX.As8())
	taps(w, true)
	sum := Y10

	Label("loop")
	CMPQ(n, U8(8))
	JL(LabelRef("done"))
	VMOVAPS(Y9, sum)
	for kh, r := range rows {
		if stride == 1 {
			for kw := range 3 {
				VFMADD231PS(Mem{Base: r, Disp: 4 * kw}, ymm(3*kh+kw), sum)
			}
			continue
		}
		// Even lanes of r[0:16] are taps kw=0, odd lanes kw=1; even
		// lanes of r[2:18] are kw=2.
		lo, hi, ev, od := Y11, Y12, Y13, Y14
		VMOVUPS(Mem{Base: r}, lo)
		VMOVUPS(Mem{Base: r, Disp: 32}, hi)
		VSHUFPS(U8(0x88), hi, lo, ev)
		VSHUFPS(U8(0xDD), hi, lo, od)
		VPERMPD(U8(0xD8), ev, ev)
		VPERMPD(U8(0xD8), od, od)
		VFMADD231PS(ev, ymm(3*kh), sum)
		VFMADD231PS(od, ymm(3*kh+1), sum)
		VMOVUPS(Mem{Base: r, Disp: 8}, lo)
		VMOVUPS(Mem{Base: r, Disp: 40}, hi)
		VSHUFPS(U8(0x88), hi, lo, ev)
		VPERMPD(U8(0xD8), ev, ev)
		VFMADD231PS(ev, ymm(3*kh+2), sum)
	}
	TESTB(acc, acc)
	JE(LabelRef("store" + name))
	VADDPS(Mem{Base: y}, sum, sum)
	Label("store" + name)
	VMOVUPS(sum, Mem{Base: y})
	ADDQ(U8(32), y)
	for _, r := range rows {
		ADDQ(U8(32*stride), r)
	}
	SUBQ(U8(8), n)
	JMP(LabelRef("loop"))

	Label("done")
	VZEROUPPER()
	RET()
}

// dwPlaneForward: rows x cols outputs of a 3x3 depthwise convolution
// over a zero-framed plane x (row stride ldx), written (or added) straight
// into y (row stride ldy): output row r reads x rows stride*r..+2. Eight
// columns at a time, the last cols%8 through the mask, so no output is
// computed twice or copied; a row's last vector reads up to 10 (stride
// 2: 18) floats from its start, which the caller's frame and tail cover.
func dwPlaneForward(name string, stride int) {
	TEXT(name, NOSPLIT, "func(rows, cols int, y []float32, ldy int, x []float32, ldx int, w []float32, mask []int32, accumulate bool)")
	Doc(name+" computes rows x cols outputs of a 3x3 depthwise convolution",
		"with stride "+map[int]string{1: "1", 2: "2"}[stride]+" over the zero-framed plane x (row stride ldx):",
		"y[r*ldy+i] = w[9] + sum over kh, kw of w[kh*3+kw]*x[(stride*r+kh)*ldx+stride*i+kw],",
		"stored or (accumulate) added; w holds the ten taps, mask (eight lanes)",
		"selects the first cols%8 lanes.")
	Pragma("noescape")
	// Taps and mask first: their pointers' registers are reused.
	w := Load(Param("w").Base(), RAX)
	taps(w, true)
	mask := Load(Param("mask").Base(), RBX)
	VMOVDQU(Mem{Base: mask}, Y15)
	rows := Load(Param("rows"), R10)
	cols := Load(Param("cols"), R11)
	yRow := Load(Param("y").Base(), R12)
	ldy := Load(Param("ldy"), R13)
	xRow := Load(Param("x").Base(), RBX)
	ldx := Load(Param("ldx"), R9)
	acc := Load(Param("accumulate"), DX.As8())
	SHLQ(U8(2), ldy)
	SHLQ(U8(2), ldx)
	// The next output row starts stride input rows further down.
	next := RCX
	MOVQ(ldx, next)
	if stride == 2 {
		SHLQ(U8(1), next)
	}
	p, q, c := RSI, RDI, R8
	sum := Y10

	// row kh of the three under p: p + kh*ldx.
	at := func(kh, disp int) Mem {
		m := Mem{Base: p, Disp: disp}
		if kh > 0 {
			m.Index, m.Scale = ldx, uint8(kh)
		}
		return m
	}
	compute := func() {
		VMOVAPS(Y9, sum)
		for kh := range 3 {
			if stride == 1 {
				for kw := range 3 {
					VFMADD231PS(at(kh, 4*kw), ymm(3*kh+kw), sum)
				}
				continue
			}
			lo, hi, ev, od := Y11, Y12, Y13, Y14
			VMOVUPS(at(kh, 0), lo)
			VMOVUPS(at(kh, 32), hi)
			VSHUFPS(U8(0x88), hi, lo, ev)
			VSHUFPS(U8(0xDD), hi, lo, od)
			VPERMPD(U8(0xD8), ev, ev)
			VPERMPD(U8(0xD8), od, od)
			VFMADD231PS(ev, ymm(3*kh), sum)
			VFMADD231PS(od, ymm(3*kh+1), sum)
			VMOVUPS(at(kh, 8), lo)
			VMOVUPS(at(kh, 40), hi)
			VSHUFPS(U8(0x88), hi, lo, ev)
			VPERMPD(U8(0xD8), ev, ev)
			VFMADD231PS(ev, ymm(3*kh+2), sum)
		}
	}

	Label("prow")
	TESTQ(rows, rows)
	JZ(LabelRef("pdone"))
	MOVQ(xRow, p)
	MOVQ(yRow, q)
	MOVQ(cols, c)
	Label("pcol")
	CMPQ(c, U8(8))
	JL(LabelRef("ptail"))
	compute()
	TESTB(acc, acc)
	JE(LabelRef("pstore"))
	VADDPS(Mem{Base: q}, sum, sum)
	Label("pstore")
	VMOVUPS(sum, Mem{Base: q})
	ADDQ(U8(32), q)
	ADDQ(U8(32*stride), p)
	SUBQ(U8(8), c)
	JMP(LabelRef("pcol"))

	Label("ptail")
	TESTQ(c, c)
	JZ(LabelRef("pnext"))
	compute()
	TESTB(acc, acc)
	JE(LabelRef("pmstore"))
	VMASKMOVPS(Mem{Base: q}, Y15, Y11)
	VADDPS(Y11, sum, sum)
	Label("pmstore")
	VMASKMOVPS(sum, Y15, Mem{Base: q})

	Label("pnext")
	ADDQ(ldy, yRow)
	ADDQ(next, xRow)
	DECQ(rows)
	JMP(LabelRef("prow"))

	Label("pdone")
	VZEROUPPER()
	RET()
}

// dwRowGrad3x3: grad[kh*3+kw] += sum_{i<n} dy[i] * r_kh[s*i+kw], n a
// multiple of 8: nine vector accumulators, summed horizontally at the end.
// Stride 2 deinterleaves the rows as dwRowForward does.
func dwRowGrad3x3(name string, stride int) {
	TEXT(name, NOSPLIT, "func(n int, dy, r0, r1, r2 []float32, grad *[9]float32)")
	Doc(name+" adds one row's contribution to the filter gradient",
		"of a stride-"+map[int]string{1: "1", 2: "2"}[stride]+" 3x3 depthwise convolution: grad[kh*3+kw] += sum over i < n",
		"(a multiple of 8) of dy[i]*r_kh["+map[int]string{1: "", 2: "2*"}[stride]+"i+kw].")
	Pragma("noescape")
	n := Load(Param("n"), RCX)
	dy := Load(Param("dy").Base(), RDI)
	rows := []Register{Load(Param("r0").Base(), RSI), Load(Param("r1").Base(), R8), Load(Param("r2").Base(), R9)}
	g := Load(Param("grad"), RAX)
	for i := range 9 {
		VXORPS(ymm(i), ymm(i), ymm(i))
	}
	d := Y9
	Label("gloop")
	CMPQ(n, U8(8))
	JL(LabelRef("gdone"))
	VMOVUPS(Mem{Base: dy}, d)
	for kh, r := range rows {
		if stride == 1 {
			for kw := range 3 {
				VFMADD231PS(Mem{Base: r, Disp: 4 * kw}, d, ymm(3*kh+kw))
			}
			continue
		}
		lo, hi, ev, od := Y11, Y12, Y13, Y14
		VMOVUPS(Mem{Base: r}, lo)
		VMOVUPS(Mem{Base: r, Disp: 32}, hi)
		VSHUFPS(U8(0x88), hi, lo, ev)
		VSHUFPS(U8(0xDD), hi, lo, od)
		VPERMPD(U8(0xD8), ev, ev)
		VPERMPD(U8(0xD8), od, od)
		VFMADD231PS(ev, d, ymm(3*kh))
		VFMADD231PS(od, d, ymm(3*kh+1))
		VMOVUPS(Mem{Base: r, Disp: 8}, lo)
		VMOVUPS(Mem{Base: r, Disp: 40}, hi)
		VSHUFPS(U8(0x88), hi, lo, ev)
		VPERMPD(U8(0xD8), ev, ev)
		VFMADD231PS(ev, d, ymm(3*kh+2))
	}
	ADDQ(U8(32), dy)
	for _, r := range rows {
		ADDQ(U8(32*stride), r)
	}
	SUBQ(U8(8), n)
	JMP(LabelRef("gloop"))

	Label("gdone")
	for i := range 9 {
		v := ymm(i)
		x := v.AsX()
		VEXTRACTF128(U8(1), v, X10)
		VADDPS(X10, x, x)
		VHADDPS(x, x, x)
		VHADDPS(x, x, x)
		VADDSS(Mem{Base: g, Disp: 4 * i}, x, x)
		VMOVSS(x, Mem{Base: g, Disp: 4 * i})
	}
	VZEROUPPER()
	RET()
}

// gatherEven: dst[i] = src[2*i] for i < n, n a multiple of 8 (the im2col
// rows of a stride-2 convolution), by the same deinterleave as the
// stride-2 row kernel.
func gatherEven() {
	TEXT("gatherEvenAVX2", NOSPLIT, "func(n int, dst, src []float32)")
	Doc("gatherEvenAVX2 sets dst[i] = src[2*i] for i < n, n a multiple of 8;",
		"src must hold 2*n floats.")
	Pragma("noescape")
	n := Load(Param("n"), RCX)
	dst := Load(Param("dst").Base(), RDI)
	src := Load(Param("src").Base(), RSI)
	Label("eloop")
	CMPQ(n, U8(8))
	JL(LabelRef("edone"))
	VMOVUPS(Mem{Base: src}, Y0)
	VMOVUPS(Mem{Base: src, Disp: 32}, Y1)
	VSHUFPS(U8(0x88), Y1, Y0, Y2)
	VPERMPD(U8(0xD8), Y2, Y2)
	VMOVUPS(Y2, Mem{Base: dst})
	ADDQ(U8(32), dst)
	ADDQ(U8(64), src)
	SUBQ(U8(8), n)
	JMP(LabelRef("eloop"))
	Label("edone")
	VZEROUPPER()
	RET()
}

// maxPool3x3S2: eight 3x3 stride-2 max-pool windows per trip, lanes j
// holding columns 2j, 2j+1, 2j+2 of three rows (deinterleaved as in
// gatherEven); the nine candidates are taken in row-major order, each
// replacing the best where it is greater or NaN, which is the scalar
// rule (first maximum wins, a NaN replaces it), and their flat indices
// are blended along.
func maxPool3x3S2() {
	lanes := GLOBL("pool_lanes", RODATA|NOPTR)
	for i := range 8 {
		DATA(4*i, U32(2*i))
	}
	TEXT("maxPool3x3S2AVX2", NOSPLIT, "func(n int, r0, r1, r2, y []float32, arg []int32, withArg bool, base, w int)")
	Doc("maxPool3x3S2AVX2 computes n (a multiple of 8) 3x3 stride-2 max-pool windows",
		"whose top-left corners are r0[2j], j < n, the next rows r1 and r2: y[j] is the",
		"first maximum in row-major order (a NaN replaces the best so far) and, with",
		"withArg, arg[j] its index base + kh*w + 2j + kw. Each row must hold 2n+2 floats.")
	Pragma("noescape")
	n := Load(Param("n"), RCX)
	rows := []Register{Load(Param("r0").Base(), RSI), Load(Param("r1").Base(), R8), Load(Param("r2").Base(), R9)}
	y := Load(Param("y").Base(), RDI)
	arg := Load(Param("arg").Base(), R10)
	withArg := Load(Param("withArg"), R11.As8())
	base := Load(Param("base"), R12)
	w := Load(Param("w"), R13)
	L, wv, one := Y15, Y14, Y13
	idx0, best, at, rowIdx := Y12, Y11, Y10, Y9
	lo, hi, v, cidx, m1, m2 := Y0, Y1, Y2, Y3, Y4, Y5
	VMOVDQU(lanes, L)
	VMOVQ(w, X14)
	VPBROADCASTD(X14, wv)
	MOVQ(U32(1), w) // w is in wv now; reuse the register for the constant 1
	VMOVQ(w, X13)
	VPBROADCASTD(X13, one)

	Label("mploop")
	CMPQ(n, U8(8))
	JL(LabelRef("mpdone"))
	VMOVQ(base, X12)
	VPBROADCASTD(X12, idx0)
	VPADDD(L, idx0, idx0)
	VMOVDQA(idx0, rowIdx)
	first := true
	for kh, r := range rows {
		if kh > 0 {
			VPADDD(wv, rowIdx, rowIdx)
		}
		for kw := range 3 {
			off := 0
			if kw == 2 {
				off = 8 // columns 2j+2: the even lanes two floats on
			}
			if kw != 1 {
				VMOVUPS(Mem{Base: r, Disp: off}, lo)
				VMOVUPS(Mem{Base: r, Disp: off + 32}, hi)
			}
			imm := U8(0x88) // even lanes
			if kw == 1 {
				imm = U8(0xDD) // odd lanes
			}
			VSHUFPS(imm, hi, lo, v)
			VPERMPD(U8(0xD8), v, v)
			switch kw {
			case 0:
				VMOVDQA(rowIdx, cidx)
			default:
				VPADDD(one, cidx, cidx)
			}
			if first {
				VMOVAPS(v, best)
				VMOVDQA(cidx, at)
				first = false
				continue
			}
			VCMPPS(U8(0x1e), best, v, m1) // v > best (ordered)
			VCMPPS(U8(0x03), v, v, m2)    // v is NaN
			VORPS(m2, m1, m1)
			VBLENDVPS(m1, v, best, best)
			VBLENDVPS(m1, cidx, at, at)
		}
	}
	VMOVUPS(best, Mem{Base: y})
	TESTB(withArg, withArg)
	JE(LabelRef("mpnoarg"))
	VMOVDQU(at, Mem{Base: arg})
	Label("mpnoarg")
	ADDQ(U8(32), y)
	ADDQ(U8(32), arg)
	for _, r := range rows {
		ADDQ(U8(64), r)
	}
	ADDQ(U8(16), base)
	SUBQ(U8(8), n)
	JMP(LabelRef("mploop"))

	Label("mpdone")
	VZEROUPPER()
	RET()
}

func ymm(i int) VecPhysical {
	return []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}[i]
}
