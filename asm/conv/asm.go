// Command conv generates the amd64 convolution kernels of package
// kernels (docs/DESIGN.md, "Kernels": direct depthwise 3x3 stride 1
// and 2): the depthwise row and plane kernels, im2col's stride-2 gather
// and the direct micro-kernels (direct.go). Run by go generate from
// kernels/gen.go; it writes kernels/conv_amd64.s and its Go stubs.
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

	"github.com/dghcore/dghcore/asm/internal/avx"
)

func main() {
	avx.Begin()
	dwRowForward("dwRow3x3S1AVX2", 1)
	dwRowForward("dwRow3x3S2AVX2", 2)
	dwPlaneForward("dwPlane3x3S1AVX2", 1)
	dwPlaneForward("dwPlane3x3S2AVX2", 2)
	dwRowGrad3x3("dwRowGrad3x3S1AVX2", 1)
	dwRowGrad3x3("dwRowGrad3x3S2AVX2", 2)
	gatherEven()
	for tail := range mr {
		for _, masked := range []bool{false, true} {
			convDirectAVX2(tail, false, masked)
			convDirectAVX2(tail, true, masked)
		}
	}
	dwPlaneForward512(1)
	dwPlaneForward512(2)
	for rows := 1; rows <= maxDirectRows; rows++ {
		for _, pair := range []bool{false, true} {
			convDirectAVX512(rows, false, pair)
			convDirectAVX512(rows, true, pair)
		}
	}
	Generate()
}

// taps broadcasts the nine taps (and, with bias, w[9]) into Y0-Y9.
func taps(w Register, bias bool) {
	n := 9
	if bias {
		n = 10
	}
	for i := range n {
		VBROADCASTSS(Mem{Base: w, Disp: 4 * i}, avx.Y(i))
	}
}

// dwRowForward: y[i] (=|+=) w[9] + sum_{kh,kw} w[kh*3+kw] * r_kh[s*i+kw]
// for i < n, n a multiple of 8. Stride 2 deinterleaves 16 input floats
// into even and odd lanes with VSHUFPS + VPERMPD.
func dwRowForward(name string, stride int) {
	avx.Text(name, "func(n int, y, r0, r1, r2 []float32, w *[10]float32, accumulate bool)")
	Doc(name+" computes n (a multiple of 8) outputs of one row of a 3x3",
		"depthwise convolution with stride "+map[int]string{1: "1", 2: "2"}[stride]+":",
		"y[i] = w[9] + sum over kh, kw of w[kh*3+kw]*r_kh[stride*i+kw], stored or",
		"(accumulate) added to y.")
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
				VFMADD231PS(Mem{Base: r, Disp: 4 * kw}, avx.Y(3*kh+kw), sum)
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
		VFMADD231PS(ev, avx.Y(3*kh), sum)
		VFMADD231PS(od, avx.Y(3*kh+1), sum)
		VMOVUPS(Mem{Base: r, Disp: 8}, lo)
		VMOVUPS(Mem{Base: r, Disp: 40}, hi)
		VSHUFPS(U8(0x88), hi, lo, ev)
		VPERMPD(U8(0xD8), ev, ev)
		VFMADD231PS(ev, avx.Y(3*kh+2), sum)
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
	avx.Text(name, "func(rows, cols int, y []float32, ldy int, x []float32, ldx int, w []float32, mask []int32, accumulate bool)")
	Doc(name+" computes rows x cols outputs of a 3x3 depthwise convolution",
		"with stride "+map[int]string{1: "1", 2: "2"}[stride]+" over the zero-framed plane x (row stride ldx):",
		"y[r*ldy+i] = w[9] + sum over kh, kw of w[kh*3+kw]*x[(stride*r+kh)*ldx+stride*i+kw],",
		"stored or (accumulate) added; w holds the ten taps, mask (eight lanes)",
		"selects the first cols%8 lanes.")
	// Taps and mask first: their pointers' registers are reused.
	w := Load(Param("w").Base(), RAX)
	taps(w, true)
	mask := Load(Param("mask").Base(), RBX)
	VMOVDQU(Mem{Base: mask}, Y15)
	r := planeArgs(stride)
	p, q, ldx := r.p, r.q, R9
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
					VFMADD231PS(at(kh, 4*kw), avx.Y(3*kh+kw), sum)
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
			VFMADD231PS(ev, avx.Y(3*kh), sum)
			VFMADD231PS(od, avx.Y(3*kh+1), sum)
			VMOVUPS(at(kh, 8), lo)
			VMOVUPS(at(kh, 40), hi)
			VSHUFPS(U8(0x88), hi, lo, ev)
			VPERMPD(U8(0xD8), ev, ev)
			VFMADD231PS(ev, avx.Y(3*kh+2), sum)
		}
	}

	planeLoop(r, 8, stride, compute, func(tail bool) {
		if tail {
			VMASKMOVPS(Mem{Base: q}, Y15, Y11)
			VADDPS(Y11, sum, sum)
			return
		}
		VADDPS(Mem{Base: q}, sum, sum)
	}, func(tail bool) {
		if tail {
			VMASKMOVPS(sum, Y15, Mem{Base: q})
			return
		}
		VMOVUPS(sum, Mem{Base: q})
	})
	VZEROUPPER()
	RET()
}

// planeRegs are the registers a plane kernel's loops walk: the output
// rows left and the columns of a row, the rows' starts in x and y, the
// byte strides of y's rows and of x's rows between output rows, the
// pointers into the current rows, the columns left in it, and the
// accumulate flag.
type planeRegs struct {
	rows, cols, xRow, yRow, ldy, next, p, q, c, acc Register
}

// planeArgs loads a plane kernel's other arguments (after its taps and
// mask, whose registers it reuses) into the registers planeLoop walks;
// ldx, in bytes, is R9.
func planeArgs(stride int) planeRegs {
	var r planeRegs
	r.rows = Load(Param("rows"), R10)
	r.cols = Load(Param("cols"), R11)
	r.yRow = Load(Param("y").Base(), R12)
	r.ldy = Load(Param("ldy"), R13)
	r.xRow = Load(Param("x").Base(), RBX)
	ldx := Load(Param("ldx"), R9)
	r.acc = Load(Param("accumulate"), DX.As8())
	SHLQ(U8(2), r.ldy)
	SHLQ(U8(2), ldx)
	// The next output row starts stride input rows further down.
	r.next = RCX
	MOVQ(ldx, r.next)
	if stride == 2 {
		SHLQ(U8(1), r.next)
	}
	r.p, r.q, r.c = RSI, RDI, R8
	return r
}

// planeLoop emits a depthwise plane kernel's loops: every output row,
// vectors of lanes outputs, compute() summing one vector's outputs, add
// adding y's values to it where the accumulate flag is set, put storing
// it; the row's last cols%lanes outputs go through add and put with tail
// set. p walks x stride floats per output, q walks y.
func planeLoop(r planeRegs, lanes, stride int, compute func(), add, put func(tail bool)) {
	imm := func(v int) Op {
		if v < 128 {
			return U8(v)
		}
		return U32(v)
	}
	Label("prow")
	TESTQ(r.rows, r.rows)
	JZ(LabelRef("pdone"))
	MOVQ(r.xRow, r.p)
	MOVQ(r.yRow, r.q)
	MOVQ(r.cols, r.c)
	Label("pcol")
	CMPQ(r.c, U8(lanes))
	JL(LabelRef("ptail"))
	compute()
	TESTB(r.acc, r.acc)
	JE(LabelRef("pstore"))
	add(false)
	Label("pstore")
	put(false)
	ADDQ(imm(4*lanes), r.q)
	ADDQ(imm(4*lanes*stride), r.p)
	SUBQ(U8(lanes), r.c)
	JMP(LabelRef("pcol"))

	Label("ptail")
	TESTQ(r.c, r.c)
	JZ(LabelRef("pnext"))
	compute()
	TESTB(r.acc, r.acc)
	JE(LabelRef("pmstore"))
	add(true)
	Label("pmstore")
	put(true)

	Label("pnext")
	ADDQ(r.ldy, r.yRow)
	ADDQ(r.next, r.xRow)
	DECQ(r.rows)
	JMP(LabelRef("prow"))

	Label("pdone")
}

// dwRowGrad3x3: grad[kh*3+kw] += sum_{i<n} dy[i] * r_kh[s*i+kw], n a
// multiple of 8: nine vector accumulators, summed horizontally at the end.
// Stride 2 deinterleaves the rows as dwRowForward does.
func dwRowGrad3x3(name string, stride int) {
	avx.Text(name, "func(n int, dy, r0, r1, r2 []float32, grad *[9]float32)")
	Doc(name+" adds one row's contribution to the filter gradient",
		"of a stride-"+map[int]string{1: "1", 2: "2"}[stride]+" 3x3 depthwise convolution: grad[kh*3+kw] += sum over i < n",
		"(a multiple of 8) of dy[i]*r_kh["+map[int]string{1: "", 2: "2*"}[stride]+"i+kw].")
	n := Load(Param("n"), RCX)
	dy := Load(Param("dy").Base(), RDI)
	rows := []Register{Load(Param("r0").Base(), RSI), Load(Param("r1").Base(), R8), Load(Param("r2").Base(), R9)}
	g := Load(Param("grad"), RAX)
	for i := range 9 {
		VXORPS(avx.Y(i), avx.Y(i), avx.Y(i))
	}
	d := Y9
	Label("gloop")
	CMPQ(n, U8(8))
	JL(LabelRef("gdone"))
	VMOVUPS(Mem{Base: dy}, d)
	for kh, r := range rows {
		if stride == 1 {
			for kw := range 3 {
				VFMADD231PS(Mem{Base: r, Disp: 4 * kw}, d, avx.Y(3*kh+kw))
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
		VFMADD231PS(ev, d, avx.Y(3*kh))
		VFMADD231PS(od, d, avx.Y(3*kh+1))
		VMOVUPS(Mem{Base: r, Disp: 8}, lo)
		VMOVUPS(Mem{Base: r, Disp: 40}, hi)
		VSHUFPS(U8(0x88), hi, lo, ev)
		VPERMPD(U8(0xD8), ev, ev)
		VFMADD231PS(ev, d, avx.Y(3*kh+2))
	}
	ADDQ(U8(32), dy)
	for _, r := range rows {
		ADDQ(U8(32*stride), r)
	}
	SUBQ(U8(8), n)
	JMP(LabelRef("gloop"))

	Label("gdone")
	for i := range 9 {
		v := avx.Y(i)
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
	avx.Text("gatherEvenAVX2", "func(n int, dst, src []float32)")
	Doc("gatherEvenAVX2 sets dst[i] = src[2*i] for i < n, n a multiple of 8;",
		"src must hold 2*n floats.")
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
