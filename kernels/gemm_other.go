//go:build !amd64 && !arm64

package kernels

// setGEMMPath: only the generic micro-kernel exists off amd64 and arm64.
func setGEMMPath(Path) {
	sgemmMicro, sgemmPackB, gemmMR, gemmNR = sgemmMicroGeneric, sgemmPackBGeneric, genericMR, genericNR
}

// packBT16 has no kernel here (packBT16On stays false).
func packBT16(int, []float32, *[16]int, []float32) { panic("kernels: packBT16 without a kernel") }
