//go:build !amd64 && !arm64

package kernels

func setElementwisePath(Path) { useElementwiseGeneric() }
