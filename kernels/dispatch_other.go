//go:build !amd64 && !arm64

package kernels

// machinePaths: off amd64 and arm64 only the generic path exists.
var machinePaths = []pathKernels{genericKernels}
