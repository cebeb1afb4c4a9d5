// Command conv generates the amd64 convolution kernels of package
// kernels (docs/DESIGN.md, "Kernels": direct depthwise 3x3 and 5x5, stride
// 1 and 2): the depthwise row and plane kernels (dw.go, dw512.go),
// im2col's stride-2 gather and the direct micro-kernels (direct.go,
// direct512.go). Run by go generate from kernels/gen.go; it writes
// kernels/conv_amd64.s and its Go stubs.
package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

func main() {
	avx.Begin()
	for _, k := range dwSizes {
		dwRowForward(k, 1)
		dwRowForward(k, 2)
	}
	for _, k := range dwSizes {
		dwPlaneForward(k, 1)
		dwPlaneForward(k, 2)
	}
	for _, g := range dwGradBands {
		dwPlaneGrad(g.k, g.band, g.stride, false)
	}
	gatherEven()
	for tail := range mr {
		for _, masked := range []bool{false, true} {
			convDirectAVX2(tail, false, masked)
			convDirectAVX2(tail, true, masked)
		}
	}
	for _, k := range dwSizes {
		dwPlaneForward512(k, 1)
		dwPlaneForward512(k, 2)
	}
	for _, k := range dwSizes {
		dwPlaneGrad(k, k, 1, true) // stride 2 measured slower at 16 lanes
	}
	for rows := 1; rows <= maxDirectRows; rows++ {
		for _, pair := range []bool{false, true} {
			convDirectAVX512(rows, false, pair)
			convDirectAVX512(rows, true, pair)
		}
	}
	Generate()
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
