// Command pool generates kernels/pool2d_amd64.s and its Go stubs: the
// AVX2 twin of 3x3 stride-2 max pooling (ResNet's stem pooling) of
// package kernels (docs/DESIGN.md, "Kernels"). Run it through
// `go generate ./kernels/`; never edit its output by hand.
package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

func main() {
	avx.Begin()
	maxPool3x3S2()
	Generate()
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
	avx.Text("maxPool3x3S2AVX2", "func(n int, r0, r1, r2, y []float32, arg []int32, withArg bool, base, w int)")
	Doc("maxPool3x3S2AVX2 computes n (a multiple of 8) 3x3 stride-2 max-pool windows",
		"whose top-left corners are r0[2j], j < n, the next rows r1 and r2: y[j] is the",
		"first maximum in row-major order (a NaN replaces the best so far) and, with",
		"withArg, arg[j] its index base + kh*w + 2j + kw. Each row must hold 2n+2 floats.")
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
