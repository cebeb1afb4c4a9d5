package main

// The AVX-512 kernels (docs/DESIGN.md, "Kernels"). The tile is 24 rows of
// one ZMM register (16 floats): 24 accumulators, one B register and each
// A value broadcast from memory by the FMA itself (EVEX embedded
// broadcast), 24 FMAs on 25 loads a k step. Measured on the development
// machine's Xeon (minimum times of alternated runs, kc = 256, in L1):
// 92% of the register-only FMA peak, where 14x32, 12x32, 8x48 and 6x64
// tiles gave 87-91%, 89-90%, 84-87% and 80-82%; the 16-wide panel also
// keeps the AVX2 path's B packers, and a ragged edge of rows costs only
// its own rows (the edge kernels) rather than a 32-wide panel's.

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

// mr512 is the AVX-512 tile's height (its width is nr); gemm_amd64.go
// must agree.
const mr512 = 24

// sgemmMicroAVX512 emits the AVX-512 micro-kernel for the first rows rows
// of a packed mr512-row A panel: the full tile when rows is mr512, an
// edge kernel otherwise, which writes only its rows of C. With set it
// stores the product instead of adding it, never reading C.
func sgemmMicroAVX512(rows int, set bool) {
	name, verb := "sgemmMicro", "adds"
	if set {
		name, verb = "sgemmMicroSet", "stores"
	}
	if rows < mr512 {
		name = fmt.Sprintf("%s%d", name, rows)
	}
	name += "AVX512"
	avx.Text(name, "func(kc int, a, b, c []float32, ldc int)")
	doc := []string{
		fmt.Sprintf("%s %s the first %d rows of a packed %d x kc A panel times a packed", name, verb, rows, mr512),
		fmt.Sprintf("kc x %d B panel to the %dx%d tile of C at c (row stride ldc floats).", nr, rows, nr),
	}
	if set {
		doc[1] = fmt.Sprintf("kc x %d B panel into the %dx%d tile of C at c (row stride ldc floats);", nr, rows, nr)
		doc = append(doc, "C is not read.")
	}
	Doc(doc...)
	kc, ap, bp, cp, ldc := microArgs(rows, 0)

	acc := make([]VecPhysical, rows)
	for i := range acc {
		acc[i] = avx.Z(i)
		VPXORD(acc[i], acc[i], acc[i])
	}
	bv := Z31

	step := func(oa, ob int) {
		VMOVUPS(Mem{Base: bp, Disp: ob}, bv)
		for i := range rows {
			VFMADD231PS_BCST(Mem{Base: ap, Disp: oa + 4*i}, bv, acc[i])
		}
	}

	kLoop(kc, ap, bp, 4*mr512, 4*nr, step)

	if set {
		Comment("C = the accumulated tile.")
	} else {
		Comment("C += the accumulated tile.")
	}
	Label("store")
	for i := range rows {
		if i > 0 {
			ADDQ(ldc, cp)
		}
		m := Mem{Base: cp}
		if !set {
			VADDPS(m, acc[i], acc[i])
		}
		VMOVUPS(acc[i], m)
	}
	VZEROUPPER()
	RET()
}

// sgemmPackA24AVX512 emits the packer of 24-row A panels: three 8x8
// transposes (one per eight rows) per eight columns.
func sgemmPackA24AVX512() {
	avx.Text("sgemmPackA24AVX512", "func(kq int, a []float32, lda int, alpha float32, dst []float32)")
	Doc("sgemmPackA24AVX512 packs 8*kq columns of 24 rows of A (row stride lda",
		"floats) times alpha, interleaved: dst[p*24+i] = alpha*a[i*lda+p]. Eight",
		"columns of eight rows at a time go through an 8x8 transpose.")
	kq := Load(Param("kq"), RCX)
	src := Load(Param("a").Base(), RSI)
	lda := Load(Param("lda"), R8)
	SHLQ(U8(2), lda) // floats to bytes
	dst := Load(Param("dst").Base(), RDI)
	alpha, err := Param("alpha").Resolve()
	if err != nil {
		panic(err)
	}
	al := YMM()
	VBROADCASTSS(alpha.Addr, al)
	// Row 8g+i of the panel is at base[g] + i*lda, i < 8, with base[g]
	// 8g rows on and i*lda from the three multiples of lda below.
	lda3, lda5, lda7 := GP64(), GP64(), GP64()
	LEAQ(Mem{Base: lda, Index: lda, Scale: 2}, lda3)
	LEAQ(Mem{Base: lda, Index: lda, Scale: 4}, lda5)
	LEAQ(Mem{Base: lda3, Index: lda, Scale: 4}, lda7)
	base := []GPVirtual{GP64(), GP64(), GP64()}
	MOVQ(src, base[0])
	LEAQ(Mem{Base: src, Index: lda, Scale: 8}, base[1])
	LEAQ(Mem{Base: base[1], Index: lda, Scale: 8}, base[2])
	rowAt := func(b GPVirtual, i int) Mem {
		switch i {
		case 0:
			return Mem{Base: b}
		case 1, 2, 4, 8:
			return Mem{Base: b, Index: lda, Scale: uint8(i)}
		case 3:
			return Mem{Base: b, Index: lda3, Scale: 1}
		case 5:
			return Mem{Base: b, Index: lda5, Scale: 1}
		case 6:
			return Mem{Base: b, Index: lda3, Scale: 2}
		default:
			return Mem{Base: b, Index: lda7, Scale: 1}
		}
	}

	Label("packa")
	TESTQ(kq, kq)
	JE(LabelRef("packadone"))
	for g := range 3 {
		r := make([]VecVirtual, 8)
		for i := range 8 {
			r[i] = YMM()
			VMULPS(rowAt(base[g], i), al, r[i])
		}
		for p, v := range transpose8(r) {
			VMOVUPS(v, Mem{Base: dst, Disp: 4 * (mr512*p + 8*g)})
		}
	}
	for _, b := range base {
		ADDQ(U8(32), b)
	}
	ADDQ(U32(4*mr512*8), dst)
	DECQ(kq)
	JMP(LabelRef("packa"))

	Label("packadone")
	VZEROUPPER()
	RET()
}
