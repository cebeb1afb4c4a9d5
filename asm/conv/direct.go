package main

// The direct convolution kernels: asm/gemm's 6x16 micro-kernel with B
// read in place from the framed input instead of packed.

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

// The direct kernels' panel height (kernels.directMR) and k unroll: the
// GEMM micro-kernel's.
const (
	mr     = avx.TileMR
	unroll = avx.TileUnroll
)

// convDirectAVX2 emits the direct-convolution micro-kernel: the
// micro-kernel above with B read in place instead of packed, run over a
// whole column of panels in one call. Row p of B for eight output pixels
// is x[off[p]:][:8] and for the next eight x[d+off[p]:][:8], where x holds
// the zero-framed input (split into stride phases, so a row of eight
// outputs reads eight consecutive floats); C is rows of 16 consecutive
// floats, ldc apart. The call computes `panels` full panels of mr rows,
// then `tails` panels of tail rows: 16 channels run as 6+5+5, since a
// panel of 4 rows (eight accumulators, as many as the FMA latency needs
// in flight) measured 20% slower per row than one of 5 or 6.
//
// With masked, the two groups of eight outputs need not be one run of 16
// (the second is stored e floats after the first) nor whole (lanes whose
// mask word is 0 are neither read nor written): output rows whose width
// is not a multiple of 8 end in part of a group.
func convDirectAVX2(tail int, set, masked bool) {
	kind := ""
	verb := "adds"
	if set {
		kind = "Set"
		verb = "stores"
	}
	if masked {
		kind += "Masked"
	}
	name := fmt.Sprintf("convDirect%s%dAVX2", kind, tail)
	sig := "func(kc, panels, tails int, a, x []float32, off []int32, d int, c []float32, ldc int)"
	doc := []string{
		fmt.Sprintf("%s %s panels packed %d x kc A panels (mr*kc floats apart), then the", name, verb, mr),
		fmt.Sprintf("first %d rows of each of the next tails, times the kc x 16 matrix", tail),
		"B[p][j] = x[off[p]+j] (j < 8), x[d+off[p]+j-8] (j >= 8), to the C rows",
	}
	if masked {
		sig = "func(kc, panels, tails int, a, x []float32, off []int32, d int, c []float32, ldc, e int, mask []int32)"
		doc = append(doc, fmt.Sprintf("c[i*ldc:][:8] and c[i*ldc+e:][:8], i < %d*panels+%d*tails, in the", mr, tail),
			"lanes j whose mask[j] is -1 (mask has 16 words, 0 or -1).")
	} else {
		doc = append(doc, fmt.Sprintf("c[i*ldc:][:16], i < %d*panels+%d*tails.", mr, tail))
	}
	avx.Text(name, sig)
	Doc(doc...)
	kc := Load(Param("kc"), GP64())
	panels := Load(Param("panels"), GP64())
	tails := Load(Param("tails"), GP64())
	ap := Load(Param("a").Base(), GP64())
	x0 := Load(Param("x").Base(), GP64())
	off0 := Load(Param("off").Base(), GP64())
	x1 := Load(Param("d"), GP64())
	LEAQ(Mem{Base: x0, Index: x1, Scale: 4}, x1)
	cp := Load(Param("c").Base(), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc) // floats to bytes
	k, off, row := GP64(), GP64(), GP64()
	o := []GPVirtual{GP64(), GP64()}
	b0, b1 := Y12, Y13
	bc := [2]VecPhysical{Y14, Y15}

	// panel emits one panel of h rows; labels carry the suffix sfx.
	panel := func(h int, sfx string) {
		acc := make([][2]VecPhysical, h)
		for i := range h {
			acc[i] = [2]VecPhysical{avx.Y(2 * i), avx.Y(2*i + 1)}
			VXORPS(acc[i][0], acc[i][0], acc[i][0])
			VXORPS(acc[i][1], acc[i][1], acc[i][1])
		}
		MOVQ(kc, k)
		MOVQ(off0, off)
		step := func(u int) {
			r := o[u%2]
			MOVLQSX(Mem{Base: off, Disp: 4 * u}, r)
			VMOVUPS(Mem{Base: x0, Index: r, Scale: 4}, b0)
			VMOVUPS(Mem{Base: x1, Index: r, Scale: 4}, b1)
			for i := range h {
				s := bc[i%2]
				VBROADCASTSS(Mem{Base: ap, Disp: 4 * (mr*u + i)}, s)
				VFMADD231PS(b0, s, acc[i][0])
				VFMADD231PS(b1, s, acc[i][1])
			}
		}
		Label("loop" + sfx)
		CMPQ(k, U8(unroll))
		JL(LabelRef("tail" + sfx))
		for u := range unroll {
			step(u)
		}
		ADDQ(U32(4*mr*unroll), ap)
		ADDQ(U8(4*unroll), off)
		SUBQ(U8(unroll), k)
		JMP(LabelRef("loop" + sfx))
		Label("tail" + sfx)
		TESTQ(k, k)
		JE(LabelRef("store" + sfx))
		step(0)
		ADDQ(U8(4*mr), ap)
		ADDQ(U8(4), off)
		DECQ(k)
		JMP(LabelRef("tail" + sfx))
		Label("store" + sfx)
		MOVQ(cp, row)
		if !masked {
			avx.StoreTile(row, ldc, acc, set)
			return
		}
		// The loop's B and broadcast registers are free now. A masked
		// store costs about 18 cycles here (AMD Zen 3), so a whole first
		// group (its last mask word set) is stored plainly.
		e, mp := Load(Param("e"), GP64()), Load(Param("mask").Base(), GP64())
		SHLQ(U8(2), e)
		VMOVDQU(Mem{Base: mp}, b0)
		VMOVDQU(Mem{Base: mp, Disp: 32}, b1)
		CMPL(Mem{Base: mp, Disp: 28}, U8(0))
		JE(LabelRef("partial" + sfx))
		avx.StoreTileMasked(row, ldc, e, acc, set, [2]VecPhysical{nil, b1}, bc[0])
		JMP(LabelRef("stored" + sfx))
		Label("partial" + sfx)
		avx.StoreTileMasked(row, ldc, e, acc, set, [2]VecPhysical{b0, b1}, bc[0])
		Label("stored" + sfx)
	}

	Comment("Full panels; a panel's k loop leaves a at the next one.")
	Label("panel")
	TESTQ(panels, panels)
	JE(LabelRef("last"))
	panel(mr, "")
	LEAQ(Mem{Base: row, Index: ldc, Scale: 1}, cp)
	DECQ(panels)
	JMP(LabelRef("panel"))
	Label("last")
	if tail > 0 {
		Comment(fmt.Sprintf("Panels of %d rows.", tail))
		Label("tailpanel")
		TESTQ(tails, tails)
		JE(LabelRef("done"))
		panel(tail, "t")
		LEAQ(Mem{Base: row, Index: ldc, Scale: 1}, cp)
		DECQ(tails)
		JMP(LabelRef("tailpanel"))
	}
	Label("done")
	VZEROUPPER()
	RET()
}
