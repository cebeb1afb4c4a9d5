package kernels

// neonKernels is the arm64 path: every arm64 CPU Go supports has Advanced
// SIMD (NEON).
var neonKernels = pathKernels{NEON, gemmNEON, convNEON, poolNEON, elementwiseNEON, quantNEON}

// machinePaths are the paths this CPU can run, generic first, fastest last.
var machinePaths = []pathKernels{genericKernels, neonKernels}
