package kernels

// Tile of the hand-written NEON micro-kernel in gemm_arm64.s.
const (
	neonMR = 8
	neonNR = 12
)

// sgemmMicroNEON adds a packed 8 x kc A panel times a packed kc x 12 B
// panel to the 8x12 tile of C at c (row stride ldc floats).
//
//go:noescape
func sgemmMicroNEON(kc int, a, b, c []float32, ldc int)

// setGEMMPath points the SGEMM micro-kernel at path p.
func setGEMMPath(p Path) {
	if p == NEON {
		sgemmMicro, sgemmPackB, gemmMR, gemmNR = sgemmMicroNEON, sgemmPackBGeneric, neonMR, neonNR
		return
	}
	sgemmMicro, sgemmPackB, gemmMR, gemmNR = sgemmMicroGeneric, sgemmPackBGeneric, genericMR, genericNR
}

// packBT16 has no kernel here (packBT16On stays false).
func packBT16(int, []float32, *[16]int, []float32) { panic("kernels: packBT16 without a kernel") }
