package kernels

// gemmNEON is the NEON path's GEMM table: the hand-written 8x12
// micro-kernel in gemm_arm64.s, the Go packer, no optional kernels.
var gemmNEON = gemmKernels{mr: 8, nr: 12, micro: sgemmMicroNEON, packB: sgemmPackBGeneric}

// sgemmMicroNEON adds a packed 8 x kc A panel times a packed kc x 12 B
// panel to the 8x12 tile of C at c (row stride ldc floats).
//
//go:noescape
func sgemmMicroNEON(kc int, a, b, c []float32, ldc int)
