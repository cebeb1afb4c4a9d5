//go:build !amd64 && !arm64

package kernels

// setGEMMPath: only the generic micro-kernel exists off amd64 and arm64.
func setGEMMPath(Path) {
	sgemmMicro, sgemmPackB, gemmMR, gemmNR = sgemmMicroGeneric, sgemmPackBGeneric, genericMR, genericNR
}
