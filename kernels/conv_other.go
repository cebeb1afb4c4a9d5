//go:build !amd64 && !arm64

package kernels

// setConvPath: the depthwise row kernels have no assembly here.
func setConvPath(Path) {
	dwRow3x3, dwRowGrad3x3, gatherEven = dwRow3x3Generic, dwRowGrad3x3Generic, gatherEvenGeneric
}
