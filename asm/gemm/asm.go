// Command gemm generates the amd64 SGEMM micro-kernel of package kernels
// (SPEC section 1, kernels: GEMM micro-kernels). Run by go generate from
// kernels/gen.go; it writes kernels/gemm_amd64.s and its Go stubs.
//
// The AVX2+FMA kernel keeps a 6x16 tile of C in twelve YMM registers. Each
// step over k loads one 16-wide row of the packed B panel (two registers)
// and broadcasts the six packed A values of that step from memory, so one
// step is twelve FMAs on two loads and six broadcast loads: on Zen 3 the
// two FMA pipes stay busy. Four steps are unrolled per loop trip.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Tile of the AVX2 kernel; gemm_amd64.go must agree.
const (
	mr     = 6
	nr     = 16
	unroll = 4
)

func main() {
	Package("github.com/dghcore/dghcore/kernels")
	ConstraintExpr("amd64")
	sgemmMicroAVX2()
	sgemmPackB16AVX2()
	Generate()
}

func sgemmMicroAVX2() {
	TEXT("sgemmMicroAVX2", NOSPLIT, "func(kc int, a, b, c []float32, ldc int)")
	Doc(fmt.Sprintf("sgemmMicroAVX2 adds a packed %d x kc A panel times a packed kc x %d B panel", mr, nr),
		fmt.Sprintf("to the %dx%d tile of C at c (row stride ldc floats).", mr, nr))
	Pragma("noescape")

	kc := Load(Param("kc"), RCX)
	ap := Load(Param("a").Base(), RSI)
	bp := Load(Param("b").Base(), RDI)
	cp := Load(Param("c").Base(), RDX)
	ldc := Load(Param("ldc"), R8)
	SHLQ(U8(2), ldc) // floats to bytes

	Comment("Start pulling the C tile into L1; it is only touched at the end.")
	row := GP64()
	MOVQ(cp, row)
	for i := range mr {
		if i > 0 {
			ADDQ(ldc, row)
		}
		PREFETCHT0(Mem{Base: row})
		PREFETCHT0(Mem{Base: row, Disp: 60})
	}

	acc := [mr][2]VecPhysical{}
	for i := range mr {
		acc[i] = [2]VecPhysical{ymm(2 * i), ymm(2*i + 1)}
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

	Comment("Main loop: unrolled k steps.")
	Label("loop")
	CMPQ(kc, U8(unroll))
	JL(LabelRef("tail"))
	for u := range unroll {
		step(4*mr*u, 4*nr*u)
	}
	ADDQ(U32(4*mr*unroll), ap)
	ADDQ(U32(4*nr*unroll), bp)
	SUBQ(U8(unroll), kc)
	JMP(LabelRef("loop"))

	Comment("Remaining k steps one at a time.")
	Label("tail")
	TESTQ(kc, kc)
	JE(LabelRef("store"))
	step(0, 0)
	ADDQ(U8(4*mr), ap)
	ADDQ(U8(4*nr), bp)
	DECQ(kc)
	JMP(LabelRef("tail"))

	Comment("C += the accumulated tile.")
	Label("store")
	for i := range mr {
		if i > 0 {
			ADDQ(ldc, cp)
		}
		for h := range 2 {
			m := Mem{Base: cp, Disp: 32 * h}
			VADDPS(m, acc[i][h], acc[i][h])
			VMOVUPS(acc[i][h], m)
		}
	}
	VZEROUPPER()
	RET()
}

func sgemmPackB16AVX2() {
	TEXT("sgemmPackB16AVX2", NOSPLIT, "func(kc int, b []float32, ldb int, dst []float32, stride int, panels int)")
	Doc("sgemmPackB16AVX2 packs panels full 16-column panels of kc rows of B (row",
		"stride ldb floats), panel q starting stride floats after panel q-1:",
		"dst[q*stride+p*16+j] = b[p*ldb+q*16+j]. Rows are read in order so the",
		"prefetchers stream B; the Go version pays a memmove call per 64 bytes.")
	Pragma("noescape")
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

func ymm(i int) VecPhysical {
	return []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}[i]
}
