//go:build !amd64 && !arm64

package kernels

func available() []Path { return []Path{Generic} }
