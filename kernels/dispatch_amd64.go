package kernels

import "github.com/klauspost/cpuid/v2"

func available() []Path {
	paths := []Path{Generic}
	if cpuid.CPU.Supports(cpuid.AVX, cpuid.AVX2, cpuid.FMA3) {
		paths = append(paths, AVX2)
		if cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512DQ, cpuid.AVX512BW, cpuid.AVX512VL) {
			paths = append(paths, AVX512)
		}
	}
	return paths
}
