package avx

// The register tile the SGEMM micro-kernel (asm/gemm) and the direct
// convolution kernels (asm/conv) share: six rows of two YMM accumulators,
// 6x16 floats, stored row by row.

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The tile: TileMR rows of TileNR floats, k unrolled TileUnroll times.
// kernels' gemmAVX2 (6x16) and directMR (6) must agree.
const (
	TileMR     = 6
	TileNR     = 16
	TileUnroll = 4
)

// Y returns the physical register Yi, for kernels that pin accumulators
// and broadcast taps to registers by number.
func Y(i int) VecPhysical {
	return []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}[i]
}

// Z returns the physical register Zi, i < 32 (AVX-512).
func Z(i int) VecPhysical {
	return []VecPhysical{
		Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
	}[i]
}

// StoreTile stores (set) or adds the accumulators acc[i] (two vectors,
// 16 floats) to C row i, starting at row and ldc bytes apart; it leaves
// row at the last row.
func StoreTile(row, ldc Register, acc [][2]VecPhysical, set bool) {
	for i := range acc {
		if i > 0 {
			ADDQ(ldc, row)
		}
		for h := range 2 {
			m := Mem{Base: row, Disp: 32 * h}
			if !set {
				VADDPS(m, acc[i][h], acc[i][h])
			}
			VMOVUPS(acc[i][h], m)
		}
	}
}

// StoreTileMasked is StoreTile for the masked direct kernel: each row's
// second half goes e bytes after its first, and only the lanes set in
// masks are read or written (a nil mask: the whole half). It leaves row
// at the last row.
func StoreTileMasked(row, ldc, e Register, acc [][2]VecPhysical, set bool, masks [2]VecPhysical, tmp VecPhysical) {
	for i := range acc {
		if i > 0 {
			ADDQ(ldc, row)
		}
		for h := range 2 {
			m := Mem{Base: row}
			if h == 1 {
				m = Mem{Base: row, Index: e, Scale: 1}
			}
			if masks[h] == nil {
				if !set {
					VADDPS(m, acc[i][h], acc[i][h])
				}
				VMOVUPS(acc[i][h], m)
				continue
			}
			if !set {
				VMASKMOVPS(m, masks[h], tmp)
				VADDPS(tmp, acc[i][h], acc[i][h])
			}
			VMASKMOVPS(acc[i][h], masks[h], m)
		}
	}
}
