package main

// The AVX-512 depthwise plane kernels (docs/DESIGN.md, "Kernels"): the
// AVX2 plane kernels (dw.go) on sixteen lanes, 3x3 and 5x5. A stride-2 row is split into its
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
// bits of the lanes of each row's last cols%16 outputs. The 26 taps of a
// 5x5 kernel fit the 32 ZMM registers with room for two accumulator
// chains, stride 2's permute indices and one load register.
func dwPlaneForward512(k, stride int) {
	name := fmt.Sprintf("dwPlane%dx%dS%dAVX512", k, k, stride)
	avx.Text(name, "func(rows, cols int, y []float32, ldy int, x []float32, ldx int, w []float32, mask int, accumulate bool)")
	Doc(name+fmt.Sprintf(" computes rows x cols outputs of a %dx%d depthwise convolution", k, k),
		fmt.Sprintf("with stride %d over the zero-framed plane x (row stride ldx):", stride),
		"y[r*ldy+i] = "+dwDoc(k)+"x[(stride*r+kh)*ldx+stride*i+kw],",
		fmt.Sprintf("stored or (accumulate) added; w holds the %d taps and the bias, mask the", k*k),
		"bits of the first cols%16 lanes, which a row's last vector writes.")
	kk := k * k
	w := Load(Param("w").Base(), RAX)
	for i := range kk + 1 {
		VBROADCASTSS(Mem{Base: w, Disp: 4 * i}, avx.Z(i))
	}
	next := kk + 1
	take := func() VecPhysical {
		next++
		return avx.Z(next - 1)
	}
	acc := []VecPhysical{take()}
	if k > 3 {
		acc = append(acc, take())
	}
	t := take()
	var idx [2]VecPhysical // the even and the odd floats' permute indices
	if stride == 2 {
		idx = [2]VecPhysical{take(), take()}
		deinterleave(idx[0], idx[1])
	}
	Load(Param("mask"), RBX)
	KMOVW(EBX, K1)
	r := planeArgs(k)
	sum := acc[0]
	// compute sums one vector of outputs. A row's last vector reads whole
	// vectors too, past the row (the caller's frame covers the last
	// row's): masked loads cost more than the plain loads they spare.
	compute := func() {
		VMOVAPS(avx.Z(kk), sum)
		for _, a := range acc[1:] {
			VXORPS(a, a, a)
		}
		for kh := range k {
			a := acc[kh%len(acc)]
			for kw := range k {
				if stride == 1 {
					VFMADD231PS(r.krows.at(kh, 4*kw), avx.Z(kh*k+kw), a)
					continue
				}
				// Tap kw's inputs are the even (odd) floats of the 32
				// at kw rounded down to even.
				strided(r.krows.at(kh, 4*(kw&^1)), idx[kw&1], t)
				VFMADD231PS(t, avx.Z(kh*k+kw), a)
			}
		}
		for _, a := range acc[1:] {
			VADDPS(a, sum, sum)
		}
	}

	planeLoop(r, dwLanes, stride, compute, func(tail bool) {
		if tail {
			VMOVUPS_Z(Mem{Base: r.q}, K1, t)
			VADDPS(t, sum, sum)
			return
		}
		VADDPS(Mem{Base: r.q}, sum, sum)
	}, func(tail bool) {
		if tail {
			VMOVUPS(sum, K1, Mem{Base: r.q})
			return
		}
		VMOVUPS(sum, Mem{Base: r.q})
	})
	VZEROUPPER()
	RET()
}
