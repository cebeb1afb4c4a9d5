package kernels

import "github.com/klauspost/cpuid/v2"

// The amd64 paths: AVX2+FMA, and AVX-512 (F, DQ, BW, VL) whose tables are
// the AVX2 ones until it has kernels of its own (each family's *AVX512
// literal says so).
var (
	avx2Kernels   = pathKernels{AVX2, gemmAVX2, convAVX2, poolAVX2, elementwiseAVX2, quantAVX2}
	avx512Kernels = pathKernels{AVX512, gemmAVX512, convAVX512, poolAVX512, elementwiseAVX512, quantAVX512}
)

// machinePaths are the paths this CPU can run, generic first, fastest last.
var machinePaths = func() []pathKernels {
	paths := []pathKernels{genericKernels}
	if cpuid.CPU.Supports(cpuid.AVX, cpuid.AVX2, cpuid.FMA3) {
		paths = append(paths, avx2Kernels)
		if cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512DQ, cpuid.AVX512BW, cpuid.AVX512VL) {
			paths = append(paths, avx512Kernels)
		}
	}
	return paths
}()
