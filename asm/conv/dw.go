package main

// The AVX2 depthwise kernels (docs/DESIGN.md, "Kernels": direct
// depthwise 3x3 and 5x5, stride 1 and 2), one generator per kind for
// every kernel size. The row kernels sweep one output row eight columns
// at a time, the Go caller doing the last few columns; the plane kernels
// sweep every output row of a zero-framed plane, masking each row's last
// vector, so a plane is a single call; the gradient's plane kernels add
// dy times the shifted input rows into one vector accumulator per tap.
//
// A 3x3 kernel's ten taps (with the bias) stay in registers. A 5x5
// kernel's 26 do not fit sixteen YMM registers: the first ones do, the
// rest are broadcast from memory where they are used, and the gradient,
// which needs an accumulator per tap, runs in bands of kernel rows
// (dw512.go's AVX-512 kernels hold all 26, or 25 accumulators).
// Stride 2 splits 16 input floats into their even and odd lanes with one
// VSHUFPS each; the lanes come out in the order of outputs 0, 1, 4, 5,
// 2, 3, 6, 7, which every operand of a sum shares, so one VPERMPD puts
// the finished sum (or, for the gradient, dy) in order instead of one
// per load.

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

// dwSizes are the kernel sizes (k x k) with direct depthwise kernels.
var dwSizes = []int{3, 5}

// dwGradBands are the filter gradient's AVX2 plane kernels: bands of
// kernel rows small enough that an accumulator per tap, dy and stride
// 2's shuffle registers fit sixteen YMM registers (a 5x5 kernel's
// stride-1 rows in bands of 3 and 2, its stride-2 ones in 2, 2 and 1).
// The AVX-512 ones take every row (25 accumulators of 32 registers).
var dwGradBands = []struct{ k, band, stride int }{
	{3, 3, 1}, {3, 3, 2}, {5, 3, 1}, {5, 2, 1}, {5, 2, 2}, {5, 1, 2},
}

// dwRows addresses the kernel rows of a depthwise kernel: row kh of the
// rows under p, ldx bytes apart (ldx3 holds 3*ldx, for 5x5 kernels).
type dwRows struct{ p, ldx, ldx3 Register }

// at is the address disp bytes into kernel row kh.
func (r dwRows) at(kh, disp int) Mem {
	m := Mem{Base: r.p, Disp: disp}
	switch kh {
	case 0:
	case 3:
		m.Index, m.Scale = r.ldx3, 1
	default:
		m.Index, m.Scale = r.ldx, uint8(kh)
	}
	return m
}

// dwVecs are an AVX2 forward kernel's vector registers: the taps (k*k
// row by row, then the bias), the first n of them broadcast into Y0.. at
// entry and the rest broadcast from w into tmp where used; the
// accumulators (two chains for a 5x5 kernel's 25 FMAs); tmp, also the
// scratch of an accumulating tail; stride 2's shuffle registers.
type dwVecs struct {
	w         Register
	n         int
	acc       []VecPhysical
	tmp       VecPhysical
	lo, hi, e VecPhysical
}

// dwAlloc assigns a forward kernel's vector registers from the top
// (below the `reserved` highest, the plane kernels' mask), gives the taps
// what is left from Y0 up and broadcasts them.
func dwAlloc(k, stride int, w Register, reserved int) dwVecs {
	next := 15 - reserved
	take := func() VecPhysical {
		r := avx.Y(next)
		next--
		return r
	}
	v := dwVecs{w: w, acc: []VecPhysical{take()}}
	if k > 3 {
		v.acc = append(v.acc, take())
	}
	v.tmp = take()
	if stride == 2 {
		v.lo, v.hi, v.e = take(), take(), take()
	}
	v.n = min(k*k+1, next+1)
	for i := range v.n {
		VBROADCASTSS(Mem{Base: w, Disp: 4 * i}, avx.Y(i))
	}
	return v
}

// tap returns a register holding tap i in every lane.
func (v *dwVecs) tap(i int) VecPhysical {
	if i < v.n {
		return avx.Y(i)
	}
	VBROADCASTSS(Mem{Base: v.w, Disp: 4 * i}, v.tmp)
	return v.tmp
}

// dwSum emits one vector of eight outputs of a k x k depthwise
// convolution into v.acc[0]: the bias plus, kernel row by row, the row's
// taps times its inputs (rows.at), in order.
func dwSum(k, stride int, v *dwVecs, rows dwRows) {
	kk := k * k
	if kk < v.n {
		VMOVAPS(avx.Y(kk), v.acc[0])
	} else {
		VBROADCASTSS(Mem{Base: v.w, Disp: 4 * kk}, v.acc[0])
	}
	for _, a := range v.acc[1:] {
		VXORPS(a, a, a)
	}
	for kh := range k {
		a := v.acc[kh%len(v.acc)]
		if stride == 1 {
			for kw := range k {
				VFMADD231PS(rows.at(kh, 4*kw), v.tap(kh*k+kw), a)
			}
			continue
		}
		// The even lanes of the 16 floats at kw are tap kw's inputs,
		// the odd ones tap kw+1's.
		for kw := 0; kw < k; kw += 2 {
			VMOVUPS(rows.at(kh, 4*kw), v.lo)
			VMOVUPS(rows.at(kh, 4*kw+32), v.hi)
			VSHUFPS(U8(0x88), v.hi, v.lo, v.e)
			VFMADD231PS(v.e, v.tap(kh*k+kw), a)
			if kw+1 < k {
				VSHUFPS(U8(0xDD), v.hi, v.lo, v.e)
				VFMADD231PS(v.e, v.tap(kh*k+kw+1), a)
			}
		}
	}
	for _, a := range v.acc[1:] {
		VADDPS(a, v.acc[0], v.acc[0])
	}
	if stride == 2 {
		VPERMPD(U8(0xD8), v.acc[0], v.acc[0])
	}
}

// dwDoc is the formula every forward kernel's documentation states.
func dwDoc(k int) string {
	return fmt.Sprintf("w[%d] + sum over kh, kw of w[kh*%d+kw]*", k*k, k)
}

// dwRowForward: y[i] (=|+=) w[k*k] + sum_{kh,kw} w[kh*k+kw] *
// x[kh*ldx+s*i+kw] for i < n, n a multiple of 8.
func dwRowForward(k, stride int) {
	name := fmt.Sprintf("dwRow%dx%dS%dAVX2", k, k, stride)
	avx.Text(name, "func(n int, y, x []float32, ldx int, w []float32, accumulate bool)")
	Doc(name+fmt.Sprintf(" computes n (a multiple of 8) outputs of one row of a %dx%d", k, k),
		fmt.Sprintf("depthwise convolution with stride %d over the rows x[kh*ldx:]:", stride),
		"y[i] = "+dwDoc(k)+"x[kh*ldx+stride*i+kw], stored or",
		fmt.Sprintf("(accumulate) added to y; w holds the %d taps and the bias.", k*k))
	n := Load(Param("n"), RCX)
	y := Load(Param("y").Base(), RDI)
	rows := dwRows{p: Load(Param("x").Base(), RSI), ldx: Load(Param("ldx"), R9)}
	SHLQ(U8(2), rows.ldx)
	if k > 3 {
		rows.ldx3 = R10
		LEAQ(Mem{Base: rows.ldx, Index: rows.ldx, Scale: 2}, rows.ldx3)
	}
	acc := Load(Param("accumulate"), RDX.As8())
	v := dwAlloc(k, stride, Load(Param("w").Base(), RAX), 0)
	sum := v.acc[0]

	Label("loop")
	CMPQ(n, U8(8))
	JL(LabelRef("done"))
	dwSum(k, stride, &v, rows)
	TESTB(acc, acc)
	JE(LabelRef("store"))
	VADDPS(Mem{Base: y}, sum, sum)
	Label("store")
	VMOVUPS(sum, Mem{Base: y})
	ADDQ(U8(32), y)
	ADDQ(U8(32*stride), rows.p)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop"))

	Label("done")
	VZEROUPPER()
	RET()
}

// dwPlaneForward: rows x cols outputs of a k x k depthwise convolution
// over a zero-framed plane x (row stride ldx), written (or added) straight
// into y (row stride ldy): output row r reads x rows stride*r..+k-1.
// Eight columns at a time, the last cols%8 through the mask, so no output
// is computed twice or copied; a row's last vector reads up to 7+k-1
// (stride 2: 15+k-1) floats past its start, which the caller's frame and
// tail cover.
func dwPlaneForward(k, stride int) {
	name := fmt.Sprintf("dwPlane%dx%dS%dAVX2", k, k, stride)
	avx.Text(name, "func(rows, cols int, y []float32, ldy int, x []float32, ldx int, w []float32, mask []int32, accumulate bool)")
	Doc(name+fmt.Sprintf(" computes rows x cols outputs of a %dx%d depthwise convolution", k, k),
		fmt.Sprintf("with stride %d over the zero-framed plane x (row stride ldx):", stride),
		"y[r*ldy+i] = "+dwDoc(k)+"x[(stride*r+kh)*ldx+stride*i+kw],",
		fmt.Sprintf("stored or (accumulate) added; w holds the %d taps and the bias, mask", k*k),
		"(eight lanes) selects the first cols%8 lanes.")
	// Taps and mask first: their pointers' registers are reused (but
	// w's, where taps are broadcast at use).
	v := dwAlloc(k, stride, Load(Param("w").Base(), RAX), 1)
	mask := Load(Param("mask").Base(), RBX)
	VMOVDQU(Mem{Base: mask}, Y15)
	r := planeArgs(k)
	sum := v.acc[0]

	planeLoop(r, 8, stride, func() { dwSum(k, stride, &v, r.krows) }, func(tail bool) {
		if tail {
			VMASKMOVPS(Mem{Base: r.q}, Y15, v.tmp)
			VADDPS(v.tmp, sum, sum)
			return
		}
		VADDPS(Mem{Base: r.q}, sum, sum)
	}, func(tail bool) {
		if tail {
			VMASKMOVPS(sum, Y15, Mem{Base: r.q})
			return
		}
		VMOVUPS(sum, Mem{Base: r.q})
	})
	VZEROUPPER()
	RET()
}

// planeRegs are the registers a plane kernel's loops walk: the output
// rows left and the columns of a row, the rows' starts in x and y, the
// byte strides of y's rows and of x's, the pointers into the current
// rows (rows.p in x, q in y), the columns left in it, and the accumulate
// flag.
type planeRegs struct {
	rows, cols, xRow, yRow, ldy, ldx, q, c, acc Register
	krows                                       dwRows
}

// planeArgs loads a plane kernel's other arguments (after its taps and
// mask, whose registers it reuses) into the registers planeLoop walks.
func planeArgs(k int) planeRegs {
	var r planeRegs
	r.rows = Load(Param("rows"), R10)
	r.cols = Load(Param("cols"), R11)
	r.yRow = Load(Param("y").Base(), R12)
	r.ldy = Load(Param("ldy"), R13)
	r.xRow = Load(Param("x").Base(), RBX)
	r.ldx = Load(Param("ldx"), R9)
	r.acc = Load(Param("accumulate"), DX.As8())
	SHLQ(U8(2), r.ldy)
	SHLQ(U8(2), r.ldx)
	r.krows = dwRows{p: RSI, ldx: r.ldx}
	if k > 3 {
		r.krows.ldx3 = RCX
		LEAQ(Mem{Base: r.ldx, Index: r.ldx, Scale: 2}, RCX)
	}
	r.q, r.c = RDI, R8
	return r
}

// planeLoop emits a depthwise plane kernel's loops: every output row,
// vectors of lanes outputs, compute() summing one vector's outputs, add
// adding y's values to it where the accumulate flag is set, put storing
// it; the row's last cols%lanes outputs go through add and put with tail
// set. krows.p walks x stride floats per output, q walks y.
func planeLoop(r planeRegs, lanes, stride int, compute func(), add, put func(tail bool)) {
	imm := func(v int) Op {
		if v < 128 {
			return U8(v)
		}
		return U32(v)
	}
	p := r.krows.p
	Label("prow")
	TESTQ(r.rows, r.rows)
	JZ(LabelRef("pdone"))
	MOVQ(r.xRow, p)
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
	ADDQ(imm(4*lanes*stride), p)
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

	// The next output row starts stride input rows further down.
	Label("pnext")
	ADDQ(r.ldy, r.yRow)
	LEAQ(Mem{Base: r.xRow, Index: r.ldx, Scale: uint8(stride)}, r.xRow)
	DECQ(r.rows)
	JMP(LabelRef("prow"))

	Label("pdone")
}

// dwGradLanes is the floats of a tap's slot in the filter gradient's
// lane sums (kernels.dwGradLanes): an AVX-512 register's.
const dwGradLanes = 16

// dwPlaneGrad: lanes[16*(kh*k+kw)+l] += the l-th of the vector partial
// sums of sum over r < rows, i < n of dy[r*n+i] *
// x[(s*r+kh)*ldx+s*i+kw], for the kh < band rows of a band of a k x k
// kernel's rows, n a multiple of the vector: an accumulator register per
// tap, added to its lanes once at the end (the caller sums the lanes of
// every plane of a channel once). Stride 2 splits the rows as dwSum does
// (AVX2) or by VPERMT2PS (AVX-512), and on AVX2 puts dy in its lanes'
// order.
func dwPlaneGrad(k, band, stride int, wide bool) {
	vec, lanes, suffix := avx.Y, 8, "AVX2"
	if wide {
		vec, lanes, suffix = avx.Z, 16, "AVX512"
	}
	name := fmt.Sprintf("dwPlaneGrad%dx%dS%d%s", k, k, stride, suffix)
	what := "the filter gradient"
	if band < k {
		name = fmt.Sprintf("dwPlaneGrad%dx%dS%dR%d%s", k, k, stride, band, suffix)
		what = fmt.Sprintf("a band of %d kernel rows of the filter gradient", band)
	}
	avx.Text(name, "func(rows, n int, dy, x []float32, ldx int, lanes []float32)")
	Doc(name+" adds "+what+" of rows output rows",
		fmt.Sprintf("of a stride-%d %dx%d depthwise convolution to its lane sums: the %d lanes", stride, k, k, lanes),
		fmt.Sprintf("lanes[16*(kh*%d+kw):][:%d], kh < %d, of sum over r < rows, i < n (a multiple of %d)", k, lanes, band, lanes),
		fmt.Sprintf("of dy[r*n+i]*x[(%d*r+kh)*ldx+%d*i+kw], split by i over the lanes.", stride, stride))
	rows := Load(Param("rows"), RBX)
	n := Load(Param("n"), RDX)
	dy := Load(Param("dy").Base(), RDI)
	xRow := Load(Param("x").Base(), R8)
	r := dwRows{p: RSI, ldx: Load(Param("ldx"), R9)}
	SHLQ(U8(2), r.ldx)
	if band > 3 {
		r.ldx3 = R10
		LEAQ(Mem{Base: r.ldx, Index: r.ldx, Scale: 2}, r.ldx3)
	}
	g := Load(Param("lanes").Base(), RAX)
	c := RCX
	taps := band * k
	for i := range taps {
		VXORPS(vec(i), vec(i), vec(i))
	}
	d := vec(taps)
	var lo, hi, e VecPhysical // stride 2's loads and shuffle
	var idx [2]VecPhysical    // and permute indices (AVX-512)
	switch {
	case stride == 2 && wide:
		lo, idx = vec(taps+1), [2]VecPhysical{vec(taps + 2), vec(taps + 3)}
		deinterleave(idx[0], idx[1])
	case stride == 2:
		lo, hi, e = vec(taps+1), vec(taps+2), vec(taps+3)
	}

	Label("grow")
	TESTQ(rows, rows)
	JZ(LabelRef("gdone"))
	MOVQ(xRow, r.p)
	MOVQ(n, c)
	Label("gcol")
	CMPQ(c, U8(lanes))
	JL(LabelRef("gnext"))
	VMOVUPS(Mem{Base: dy}, d)
	if !wide && stride == 2 {
		VPERMPD(U8(0xD8), d, d)
	}
	for kh := range band {
		switch {
		case stride == 1:
			for kw := range k {
				VFMADD231PS(r.at(kh, 4*kw), d, vec(kh*k+kw))
			}
		case wide:
			for kw := range k {
				strided(r.at(kh, 4*(kw&^1)), idx[kw&1], lo)
				VFMADD231PS(lo, d, vec(kh*k+kw))
			}
		default:
			for kw := 0; kw < k; kw += 2 {
				VMOVUPS(r.at(kh, 4*kw), lo)
				VMOVUPS(r.at(kh, 4*kw+32), hi)
				VSHUFPS(U8(0x88), hi, lo, e)
				VFMADD231PS(e, d, vec(kh*k+kw))
				if kw+1 < k {
					VSHUFPS(U8(0xDD), hi, lo, e)
					VFMADD231PS(e, d, vec(kh*k+kw+1))
				}
			}
		}
	}
	ADDQ(U8(4*lanes), dy)
	ADDQ(U8(4*lanes*stride), r.p)
	SUBQ(U8(lanes), c)
	JMP(LabelRef("gcol"))

	Label("gnext")
	LEAQ(Mem{Base: xRow, Index: r.ldx, Scale: uint8(stride)}, xRow)
	DECQ(rows)
	JMP(LabelRef("grow"))

	Label("gdone")
	for i := range taps {
		m := Mem{Base: g, Disp: 4 * dwGradLanes * i}
		VADDPS(m, vec(i), vec(i))
		VMOVUPS(vec(i), m)
	}
	VZEROUPPER()
	RET()
}
