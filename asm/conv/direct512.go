package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

// maxDirectRows is the tallest panel of the AVX-512 direct kernels;
// kernels' maxDirectRows must agree.
const maxDirectRows = 24

// convDirectAVX512 emits the AVX-512 direct-convolution micro-kernel for
// panels of rows output channels (1 to maxDirectRows): the tile is 16 outputs
// in one ZMM register per channel, B read in place through the per-tap
// offset table as in convDirectAVX2. With pair, the 16 outputs are two
// groups of 8 that need not be consecutive (their B rows d floats apart,
// their C rows e floats apart; one 8-float load and one inserted from
// memory); without, they are one run of 16 (one load). Only the lanes
// set in mask are read or written: an AVX-512 masked store costs no
// more than a plain one, so one kernel serves whole and partial tiles.
func convDirectAVX512(rows int, set, pair bool) {
	name, verb := "convDirect", "adds"
	if set {
		name, verb = "convDirectSet", "stores"
	}
	if pair {
		name += "Pair"
	}
	name = fmt.Sprintf("%s%dAVX512", name, rows)
	avx.Text(name, "func(kc, panels int, a, x []float32, off []int32, d int, c []float32, ldc, e, mask int)")
	doc := []string{
		fmt.Sprintf("%s %s panels packed %d x kc A panels (a[p*%d+i], %d*kc floats apart)", name, verb, rows, rows, rows),
	}
	if pair {
		doc = append(doc, "times the kc x 16 matrix B[p][j] = x[off[p]+j] (j < 8), x[d+off[p]+j-8] (j >= 8),",
			"to the C rows c[i*ldc:][:8] and c[i*ldc+e:][:8],")
	} else {
		doc = append(doc, "times the kc x 16 matrix B[p][j] = x[off[p]+j] to the C rows c[i*ldc:][:16]",
			"(d and e unused),")
	}
	doc = append(doc, fmt.Sprintf("i < %d*panels, in the lanes j whose bit j of mask is set.", rows))
	Doc(doc...)
	kc := Load(Param("kc"), GP64())
	panels := Load(Param("panels"), GP64())
	ap := Load(Param("a").Base(), GP64())
	x0 := Load(Param("x").Base(), GP64())
	off0 := Load(Param("off").Base(), GP64())
	x1 := GP64()
	if pair {
		Load(Param("d"), x1)
		LEAQ(Mem{Base: x0, Index: x1, Scale: 4}, x1)
	}
	cp := Load(Param("c").Base(), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc) // floats to bytes
	e := GP64()
	if pair {
		Load(Param("e"), e)
		SHLQ(U8(2), e)
	}
	m := GP64()
	Load(Param("mask"), m)
	KMOVW(m.As32(), K1)
	if pair {
		KSHIFTRW(U8(8), K1, K2) // the second group's lanes
	}
	k, off, row := GP64(), GP64(), GP64()
	o := []GPVirtual{GP64(), GP64()}
	bv, tmp, hi := Z31, Z30, Z29

	acc := make([]VecPhysical, rows)
	for i := range acc {
		acc[i] = avx.Z(i)
	}
	step := func(u int) {
		r := o[u%2]
		MOVLQSX(Mem{Base: off, Disp: 4 * u}, r)
		if pair {
			VMOVUPS(Mem{Base: x0, Index: r, Scale: 4}, bv.(Vec).AsY())
			VINSERTF32X8(U8(1), Mem{Base: x1, Index: r, Scale: 4}, bv, bv)
		} else {
			VMOVUPS(Mem{Base: x0, Index: r, Scale: 4}, bv)
		}
		for i := range rows {
			VFMADD231PS_BCST(Mem{Base: ap, Disp: 4 * (rows*u + i)}, bv, acc[i])
		}
	}

	Comment("A panel at a time; its k loop leaves a at the next one.")
	Label("panel")
	TESTQ(panels, panels)
	JE(LabelRef("done"))
	for i := range acc {
		VPXORD(acc[i], acc[i], acc[i])
	}
	MOVQ(kc, k)
	MOVQ(off0, off)
	Label("loop")
	CMPQ(k, U8(unroll))
	JL(LabelRef("tail"))
	for u := range unroll {
		step(u)
	}
	ADDQ(U32(4*rows*unroll), ap)
	ADDQ(U8(4*unroll), off)
	SUBQ(U8(unroll), k)
	JMP(LabelRef("loop"))
	Label("tail")
	TESTQ(k, k)
	JE(LabelRef("store"))
	step(0)
	ADDQ(U8(4*rows), ap)
	ADDQ(U8(4), off)
	DECQ(k)
	JMP(LabelRef("tail"))

	Label("store")
	MOVQ(cp, row)
	for i := range rows {
		if i > 0 {
			ADDQ(ldc, row)
		}
		lo := Mem{Base: row}
		if !pair {
			if !set {
				VMOVUPS_Z(lo, K1, tmp)
				VADDPS(tmp, acc[i], acc[i])
			}
			VMOVUPS(acc[i], K1, lo)
			continue
		}
		second := Mem{Base: row, Index: e, Scale: 1}
		if set {
			VEXTRACTF32X8(U8(1), acc[i], K2, second)
			VMOVUPS(acc[i].(Vec).AsY(), K1, lo)
			continue
		}
		VEXTRACTF32X8(U8(1), acc[i], hi.(Vec).AsY())
		VMOVUPS_Z(second, K2, tmp.(Vec).AsY())
		VADDPS(tmp.(Vec).AsY(), hi.(Vec).AsY(), hi.(Vec).AsY())
		VMOVUPS(hi.(Vec).AsY(), K2, second)
		VMOVUPS_Z(lo, K1, tmp.(Vec).AsY())
		VADDPS(tmp.(Vec).AsY(), acc[i].(Vec).AsY(), acc[i].(Vec).AsY())
		VMOVUPS(acc[i].(Vec).AsY(), K1, lo)
	}
	LEAQ(Mem{Base: row, Index: ldc, Scale: 1}, cp)
	DECQ(panels)
	JMP(LabelRef("panel"))

	Label("done")
	VZEROUPPER()
	RET()
}
