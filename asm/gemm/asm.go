// Command gemm generates the amd64 SGEMM micro-kernel of package kernels
// (docs/DESIGN.md, "Kernels": GEMM micro-kernels). Run by go generate from
// kernels/gen.go; it writes kernels/gemm_amd64.s and its Go stubs.
//
// The AVX2+FMA kernel keeps a 6x16 tile of C in twelve YMM registers. Each
// step over k loads one 16-wide row of the packed B panel (two registers)
// and broadcasts the six packed A values of that step from memory, so one
// step is twelve FMAs on two loads and six broadcast loads: on Zen 3 the
// two FMA pipes stay busy. Four steps are unrolled per loop trip.
//
// Beside it: the packer of 16-column B panels and the packer of 6-row A
// panels (a 4x4 transpose per four columns, prefetching the next panel's
// rows, since six short strided row streams are more than the hardware
// prefetchers follow), the transposed and the gathering B packers. The
// direct-convolution kernels, the same tile with B read in place, are
// asm/conv's.
package main

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

// The AVX2 kernel's tile (avx.TileMR x avx.TileNR).
const (
	mr     = avx.TileMR
	nr     = avx.TileNR
	unroll = avx.TileUnroll
)

func main() {
	avx.Begin()
	sgemmMicroAVX2(false)
	sgemmMicroAVX2(true)
	sgemmPackB16AVX2()
	sgemmPackA6AVX2()
	sgemmPackBT16AVX2()
	sgemmGather16AVX2()
	for rows := 1; rows <= mr512; rows++ {
		sgemmMicroAVX512(rows, false)
		sgemmMicroAVX512(rows, true)
	}
	sgemmPackA24AVX512()
	Generate()
}

// sgemmMicroAVX2 emits the micro-kernel that adds the product to the C
// tile, or with set the one that overwrites the tile without reading it
// (the first k block of a beta = 0 product, which then needs no zeroed C).
func sgemmMicroAVX2(set bool) {
	if set {
		avx.Text("sgemmMicroSetAVX2", "func(kc int, a, b, c []float32, ldc int)")
		Doc(fmt.Sprintf("sgemmMicroSetAVX2 stores a packed %d x kc A panel times a packed kc x %d B", mr, nr),
			fmt.Sprintf("panel into the %dx%d tile of C at c (row stride ldc floats); C is not read.", mr, nr))
	} else {
		avx.Text("sgemmMicroAVX2", "func(kc int, a, b, c []float32, ldc int)")
		Doc(fmt.Sprintf("sgemmMicroAVX2 adds a packed %d x kc A panel times a packed kc x %d B panel", mr, nr),
			fmt.Sprintf("to the %dx%d tile of C at c (row stride ldc floats).", mr, nr))
	}

	kc, ap, bp, cp, ldc := microArgs(mr, 0, 60)

	acc := [mr][2]VecPhysical{}
	for i := range mr {
		acc[i] = [2]VecPhysical{avx.Y(2 * i), avx.Y(2*i + 1)}
		VXORPS(acc[i][0], acc[i][0], acc[i][0])
		VXORPS(acc[i][1], acc[i][1], acc[i][1])
	}
	b0, b1 := Y12, Y13
	bc := [2]VecPhysical{Y14, Y15}

	// step issues one k step at byte offsets oa into A and ob into B.
	step := func(oa, ob int) {
		VMOVUPS(Mem{Base: bp, Disp: ob}, b0)
		VMOVUPS(Mem{Base: bp, Disp: ob + 32}, b1)
		for i := range mr {
			s := bc[i%2]
			VBROADCASTSS(Mem{Base: ap, Disp: oa + 4*i}, s)
			VFMADD231PS(b0, s, acc[i][0])
			VFMADD231PS(b1, s, acc[i][1])
		}
	}

	kLoop(kc, ap, bp, 4*mr, 4*nr, step)

	if set {
		Comment("C = the accumulated tile.")
	} else {
		Comment("C += the accumulated tile.")
	}
	Label("store")
	avx.StoreTile(cp, ldc, acc[:], set)
	VZEROUPPER()
	RET()
}

// microArgs loads a micro-kernel's arguments (kc, a, b, c, ldc in bytes)
// and starts pulling the rows of its C tile into L1, a line at each
// displacement of each row: C is only touched at the end.
func microArgs(rows int, disps ...int) (kc, ap, bp, cp, ldc Register) {
	kc = Load(Param("kc"), RCX)
	ap = Load(Param("a").Base(), RSI)
	bp = Load(Param("b").Base(), RDI)
	cp = Load(Param("c").Base(), RDX)
	ldc = Load(Param("ldc"), R8)
	SHLQ(U8(2), ldc) // floats to bytes

	Comment("Start pulling the C tile into L1; it is only touched at the end.")
	row := GP64()
	MOVQ(cp, row)
	for i := range rows {
		if i > 0 {
			ADDQ(ldc, row)
		}
		for _, d := range disps {
			PREFETCHT0(Mem{Base: row, Disp: d})
		}
	}
	return kc, ap, bp, cp, ldc
}

// kLoop emits a micro-kernel's loop over kc k steps: unroll steps a
// trip while that many remain, then one at a time, step(oa, ob) issuing
// one at byte offsets oa into the A panel and ob into the B panel, whose
// pointers advance by aStep and bStep bytes a step. It ends at label
// store.
func kLoop(kc, ap, bp Register, aStep, bStep int, step func(oa, ob int)) {
	Comment("Main loop: unrolled k steps.")
	Label("loop")
	CMPQ(kc, U8(unroll))
	JL(LabelRef("tail"))
	for u := range unroll {
		step(aStep*u, bStep*u)
	}
	ADDQ(U32(aStep*unroll), ap)
	ADDQ(U32(bStep*unroll), bp)
	SUBQ(U8(unroll), kc)
	JMP(LabelRef("loop"))

	Comment("Remaining k steps one at a time.")
	Label("tail")
	TESTQ(kc, kc)
	JE(LabelRef("store"))
	step(0, 0)
	ADDQ(U8(aStep), ap)
	ADDQ(U8(bStep), bp)
	DECQ(kc)
	JMP(LabelRef("tail"))
}

func sgemmPackB16AVX2() {
	avx.Text("sgemmPackB16AVX2", "func(kc int, b []float32, ldb int, dst []float32, stride int, panels int)")
	Doc("sgemmPackB16AVX2 packs panels full 16-column panels of kc rows of B (row",
		"stride ldb floats), panel q starting stride floats after panel q-1:",
		"dst[q*stride+p*16+j] = b[p*ldb+q*16+j]. Rows are read in order so the",
		"prefetchers stream B; the Go version pays a memmove call per 64 bytes.")
	kc := Load(Param("kc"), RCX)
	src := Load(Param("b").Base(), RSI)
	ldb := Load(Param("ldb"), R8)
	dst := Load(Param("dst").Base(), RDI)
	panels := Load(Param("panels"), R9)
	SHLQ(U8(2), ldb)
	stride := Load(Param("stride"), R10)
	SHLQ(U8(2), stride) // floats to bytes
	TESTQ(panels, panels)
	JE(LabelRef("done"))

	Label("row")
	TESTQ(kc, kc)
	JE(LabelRef("done"))
	s, d, q := GP64(), GP64(), GP64()
	MOVQ(src, s)
	MOVQ(dst, d)
	MOVQ(panels, q)
	Label("panel")
	VMOVUPS(Mem{Base: s}, Y0)
	VMOVUPS(Mem{Base: s, Disp: 32}, Y1)
	VMOVUPS(Y0, Mem{Base: d})
	VMOVUPS(Y1, Mem{Base: d, Disp: 32})
	ADDQ(U8(64), s)
	ADDQ(stride, d)
	DECQ(q)
	JNE(LabelRef("panel"))
	ADDQ(ldb, src)
	ADDQ(U8(64), dst)
	DECQ(kc)
	JMP(LabelRef("row"))

	Label("done")
	VZEROUPPER()
	RET()
}

func sgemmPackBT16AVX2() {
	avx.Text("sgemmPackBT16AVX2", "func(kq int, b []float32, offs *[16]int, dst []float32)")
	Doc("sgemmPackBT16AVX2 packs 8*kq rows of a 16-column panel of B read from",
		"its transpose: dst[p*16+j] = b[offs[j]+p]. Eight rows at a time go",
		"through two 8x8 transposes (columns 0-7 and 8-15), where scalar code",
		"loads and stores each element on its own.")
	kq := Load(Param("kq"), RCX)
	base := Load(Param("b").Base(), RSI)
	offs := Load(Param("offs"), RDX)
	dst := Load(Param("dst").Base(), RDI)
	off := GP64()

	Label("packbt")
	TESTQ(kq, kq)
	JE(LabelRef("packbtdone"))
	for half := range 2 {
		r := make([]VecVirtual, 8)
		for i := range 8 {
			MOVQ(Mem{Base: offs, Disp: 8 * (8*half + i)}, off)
			r[i] = YMM()
			VMOVUPS(Mem{Base: base, Index: off, Scale: 4}, r[i])
		}
		for p, v := range transpose8(r) {
			VMOVUPS(v, Mem{Base: dst, Disp: 4 * (16*p + 8*half)})
		}
	}
	ADDQ(U32(32), base)
	ADDQ(U32(4*16*8), dst)
	DECQ(kq)
	JMP(LabelRef("packbt"))

	Label("packbtdone")
	VZEROUPPER()
	RET()
}

// transpose8 transposes the 8x8 block whose row i is r[i]: column p of
// the block is the returned register p.
func transpose8(r []VecVirtual) []VecVirtual {
	// t: pairs of rows interleaved; s: four rows per 128-bit half
	// (columns p and p+4); out: column p of the eight rows.
	t := make([]VecVirtual, 8)
	for i := range 4 {
		t[2*i], t[2*i+1] = YMM(), YMM()
		VUNPCKLPS(r[2*i+1], r[2*i], t[2*i])
		VUNPCKHPS(r[2*i+1], r[2*i], t[2*i+1])
	}
	sh := make([]VecVirtual, 8)
	for g := range 2 { // rows 0-3, 4-7
		a, b, c, d := t[4*g], t[4*g+1], t[4*g+2], t[4*g+3]
		for k, src := range [][2]VecVirtual{{a, c}, {a, c}, {b, d}, {b, d}} {
			sh[4*g+k] = YMM()
			imm := uint8(0x44)
			if k%2 == 1 {
				imm = 0xEE
			}
			VSHUFPS(U8(imm), src[1], src[0], sh[4*g+k])
		}
	}
	out := make([]VecVirtual, 8)
	for p := range 4 {
		out[p], out[p+4] = YMM(), YMM()
		VPERM2F128(U8(0x20), sh[4+p], sh[p], out[p])
		VPERM2F128(U8(0x31), sh[4+p], sh[p], out[p+4])
	}
	return out
}

func sgemmPackA6AVX2() {
	avx.Text("sgemmPackA6AVX2", "func(kq int, a []float32, lda int, alpha float32, dst []float32)")
	Doc("sgemmPackA6AVX2 packs 4*kq columns of six rows of A (row stride lda",
		"floats) times alpha, interleaved: dst[p*6+i] = alpha*a[i*lda+p]. Four",
		"columns at a time go through a 4x4 transpose of rows 0-3 and a 2x4",
		"unpack of rows 4-5, so the scalar Go loop's six loads, multiplies and",
		"stores per column become a handful of vector ones.")
	kq := Load(Param("kq"), RCX)
	p0 := Load(Param("a").Base(), RSI)
	lda := Load(Param("lda"), R8)
	SHLQ(U8(2), lda) // floats to bytes
	dst := Load(Param("dst").Base(), RDI)
	al := X15
	alpha, err := Param("alpha").Resolve()
	if err != nil {
		panic(err)
	}
	VBROADCASTSS(alpha.Addr, al) // alpha in every lane
	p3 := GP64()
	LEAQ(Mem{Base: p0, Index: lda, Scale: 2}, p3)
	ADDQ(lda, p3) // row 3
	// Six short strided row streams defeat the hardware prefetchers
	// (measured: the vector packer was no faster than scalar Go, both
	// waiting on A). The driver packs panel after panel, so each trip
	// prefetches the same columns of the next panel's six rows, one
	// panel ahead; prefetches past the end of A never fault.
	p6, p9 := GP64(), GP64()
	LEAQ(Mem{Base: p3, Index: lda, Scale: 2}, p6)
	ADDQ(lda, p6) // row 6
	LEAQ(Mem{Base: p6, Index: lda, Scale: 2}, p9)
	ADDQ(lda, p9) // row 9

	Label("packa")
	TESTQ(kq, kq)
	JE(LabelRef("packadone"))
	r := []VecPhysical{X0, X1, X2, X3, X4, X5}
	rowMem := []Mem{
		{Base: p0}, {Base: p0, Index: lda, Scale: 1}, {Base: p0, Index: lda, Scale: 2},
		{Base: p3}, {Base: p3, Index: lda, Scale: 1}, {Base: p3, Index: lda, Scale: 2},
	}
	for i := range 6 {
		VMULPS(rowMem[i], al, r[i])
	}
	for _, m := range []Mem{
		{Base: p6}, {Base: p6, Index: lda, Scale: 1}, {Base: p6, Index: lda, Scale: 2},
		{Base: p9}, {Base: p9, Index: lda, Scale: 1}, {Base: p9, Index: lda, Scale: 2},
	} {
		PREFETCHT0(m)
	}
	// Rows 0-3: t0 = r0p0 r1p0 r0p1 r1p1, t1 = r0p2 r1p2 r0p3 r1p3,
	// t2, t3 likewise for rows 2-3; then column p is a shuffle of one
	// half of t0|t1 with the same half of t2|t3.
	VUNPCKLPS(X1, X0, X6)
	VUNPCKHPS(X1, X0, X7)
	VUNPCKLPS(X3, X2, X8)
	VUNPCKHPS(X3, X2, X9)
	VSHUFPS(U8(0x44), X8, X6, X10)
	VSHUFPS(U8(0xEE), X8, X6, X11)
	VSHUFPS(U8(0x44), X9, X7, X12)
	VSHUFPS(U8(0xEE), X9, X7, X13)
	// Rows 4-5: u0 = r4p0 r5p0 r4p1 r5p1, u1 = r4p2 r5p2 r4p3 r5p3.
	VUNPCKLPS(X5, X4, X0)
	VUNPCKHPS(X5, X4, X1)
	cols := []VecPhysical{X10, X11, X12, X13}
	for p := range 4 {
		VMOVUPS(cols[p], Mem{Base: dst, Disp: 24 * p})
		u := []VecPhysical{X0, X1}[p/2]
		if p%2 == 0 {
			VMOVLPS(u, Mem{Base: dst, Disp: 24*p + 16})
		} else {
			VMOVHPS(u, Mem{Base: dst, Disp: 24*p + 16})
		}
	}
	ADDQ(U8(16), p0)
	ADDQ(U8(16), p3)
	ADDQ(U8(16), p6)
	ADDQ(U8(16), p9)
	ADDQ(U8(96), dst)
	DECQ(kq)
	JMP(LabelRef("packa"))

	Label("packadone")
	RET()
}

func sgemmGather16AVX2() {
	avx.Text("sgemmGather16AVX2", "func(kc int, src []float32, plane, kk, t0 int, tab []int32, ldt int, seg []int32, lds int, dst []float32)")
	Doc("sgemmGather16AVX2 packs one 16-column panel of kc rows of a gathered B",
		"(kernels.colGather): row p, tap t = (t0+p)%kk of channel (t0+p)/kk, is",
		"src[channel*plane + tab[t*ldt+j]], or 0 where that index is -1, for j < 16,",
		"stored at dst[p*16+j]. seg[t*lds+h] describes lanes 8h..8h+7 of tap t: when",
		"their indices (other than -1) are base, base+1, ... it holds base, and the",
		"lanes are one masked load; otherwise it is math.MinInt32 and they are a",
		"masked VGATHERDPS (about ten times slower on Zen 3). The tables are the",
		"same for every channel, so they stay in L1.")
	kc := Load(Param("kc"), RCX)
	src := Load(Param("src").Base(), RSI)
	plane := Load(Param("plane"), R8)
	SHLQ(U8(2), plane) // floats to bytes
	kk := Load(Param("kk"), R9)
	t := Load(Param("t0"), R10)
	tab := Load(Param("tab").Base(), RDX)
	ldt := Load(Param("ldt"), R11)
	SHLQ(U8(2), ldt)
	seg := Load(Param("seg").Base(), R12)
	lds := Load(Param("lds"), R13)
	SHLQ(U8(2), lds)
	dst := Load(Param("dst").Base(), RDI)
	row, segRow := GP64(), GP64()
	MOVQ(t, row)
	IMULQ(ldt, row)
	ADDQ(tab, row) // the table row of tap t
	MOVQ(t, segRow)
	IMULQ(lds, segRow)
	ADDQ(seg, segRow)
	none := Y15
	VPCMPEQD(none, none, none) // -1 in every lane
	base := GP64()

	Label("grow")
	TESTQ(kc, kc)
	JE(LabelRef("gdone"))
	for h := range 2 {
		idx, mask, v := avx.Y(2+h), avx.Y(4+h), avx.Y(h)
		gather, stored := fmt.Sprintf("ggather%d", h), fmt.Sprintf("gstore%d", h)
		VMOVDQU(Mem{Base: row, Disp: 32 * h}, idx)
		VPCMPGTD(none, idx, mask) // lanes whose index is not -1
		MOVLQSX(Mem{Base: segRow, Disp: 4 * h}, base)
		CMPQ(base, I32(math.MinInt32))
		JE(LabelRef(gather))
		VMASKMOVPS(Mem{Base: src, Index: base, Scale: 4}, mask, v)
		JMP(LabelRef(stored))
		Label(gather)
		VXORPS(v, v, v)
		VGATHERDPS(mask, Mem{Base: src, Index: idx, Scale: 4}, v)
		Label(stored)
		VMOVUPS(v, Mem{Base: dst, Disp: 32 * h})
	}
	ADDQ(U8(64), dst)
	ADDQ(ldt, row)
	ADDQ(lds, segRow)
	INCQ(t)
	CMPQ(t, kk)
	JNE(LabelRef("gnext"))
	XORQ(t, t) // the next channel: tap 0 again
	MOVQ(tab, row)
	MOVQ(seg, segRow)
	ADDQ(plane, src)
	Label("gnext")
	DECQ(kc)
	JMP(LabelRef("grow"))

	Label("gdone")
	VZEROUPPER()
	RET()
}
