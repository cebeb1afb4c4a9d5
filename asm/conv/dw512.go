package main

// The AVX-512 depthwise plane kernels (docs/DESIGN.md, "Kernels"): the
// AVX2 plane kernels on sixteen lanes. A stride-2 row is split into its
// even and odd columns by a two-register permute (VPERMT2PS) instead of
// the AVX2 shuffle and lane permute, and a plane row's last vector
// stores through an opmask. The filter gradient's row kernels on sixteen
// lanes measured 0.86-0.99x the AVX2 ones on the development Xeon (nine
// horizontal sums a call, longer scalar tails), so the avx512 path keeps
// those.

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

// dwLanes is the AVX-512 kernels' vector: sixteen floats.
const dwLanes = 16

// deinterleave loads into ev and od the indices that pick the even and
// the odd floats of 32 (two ZMM registers), emitting the constants on
// first use.
func deinterleave(ev, od VecPhysical) {
	if oddEven == nil {
		for k, name := range []string{"dw_even", "dw_odd"} {
			m := GLOBL(name, RODATA|NOPTR)
			for i := range dwLanes {
				DATA(4*i, U32(2*i+k))
			}
			oddEven = append(oddEven, m)
		}
	}
	VMOVDQU32(oddEven[0], ev)
	VMOVDQU32(oddEven[1], od)
}

// oddEven holds the constants of deinterleave once emitted.
var oddEven []Mem

// strided loads into dst the even (or odd) floats of the 32 at m, with
// the permute indices in idx.
func strided(m Mem, idx, dst VecPhysical) {
	VMOVUPS(m, dst)
	VPERMT2PS(m.Offset(64), idx, dst)
}

// dwPlaneForward512 is dwPlaneForward on sixteen lanes; mask holds the
// bits of the lanes of each row's last cols%16 outputs.
func dwPlaneForward512(stride int) {
	name := fmt.Sprintf("dwPlane3x3S%dAVX512", stride)
	avx.Text(name, "func(rows, cols int, y []float32, ldy int, x []float32, ldx int, w []float32, mask int, accumulate bool)")
	Doc(name+" computes rows x cols outputs of a 3x3 depthwise convolution",
		fmt.Sprintf("with stride %d over the zero-framed plane x (row stride ldx):", stride),
		"y[r*ldy+i] = w[9] + sum over kh, kw of w[kh*3+kw]*x[(stride*r+kh)*ldx+stride*i+kw],",
		"stored or (accumulate) added; w holds the ten taps, mask the bits of the",
		"first cols%16 lanes, which a row's last vector writes.")
	w := Load(Param("w").Base(), RAX)
	for i := range 10 {
		VBROADCASTSS(Mem{Base: w, Disp: 4 * i}, avx.Z(i))
	}
	Load(Param("mask"), RBX)
	KMOVW(EBX, K1)
	r := planeArgs(stride)
	p, q, ldx := r.p, r.q, R9
	sum, ev, od, t0, t1, t2 := Z10, Z11, Z12, Z13, Z14, Z15
	if stride == 2 {
		deinterleave(ev, od)
	}
	at := func(kh, disp int) Mem {
		mm := Mem{Base: p, Disp: disp}
		if kh > 0 {
			mm.Index, mm.Scale = ldx, uint8(kh)
		}
		return mm
	}
	// compute sums one vector of outputs. A row's last vector reads whole
	// vectors too, past the row (the caller's frame covers the last
	// row's): masked loads cost more than the plain loads they spare.
	compute := func() {
		VMOVAPS(avx.Z(9), sum)
		for kh := range 3 {
			if stride == 1 {
				for kw := range 3 {
					VFMADD231PS(at(kh, 4*kw), avx.Z(3*kh+kw), sum)
				}
				continue
			}
			strided(at(kh, 0), ev, t0)
			strided(at(kh, 0), od, t1)
			strided(at(kh, 8), ev, t2)
			VFMADD231PS(t0, avx.Z(3*kh), sum)
			VFMADD231PS(t1, avx.Z(3*kh+1), sum)
			VFMADD231PS(t2, avx.Z(3*kh+2), sum)
		}
	}

	planeLoop(r, dwLanes, stride, compute, func(tail bool) {
		if tail {
			VMOVUPS_Z(Mem{Base: q}, K1, t0)
			VADDPS(t0, sum, sum)
			return
		}
		VADDPS(Mem{Base: q}, sum, sum)
	}, func(tail bool) {
		if tail {
			VMOVUPS(sum, K1, Mem{Base: q})
			return
		}
		VMOVUPS(sum, Mem{Base: q})
	})
	VZEROUPPER()
	RET()
}
