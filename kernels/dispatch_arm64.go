package kernels

// available: every arm64 CPU Go supports has Advanced SIMD (NEON).
func available() []Path { return []Path{Generic, NEON} }
