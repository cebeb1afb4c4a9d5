package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkSGEMMMicro times the active micro-kernel alone on one packed A
// panel and one packed B panel that stay in L1 (kc = gemmKC): the ceiling
// the whole SGEMM's efficiency is measured against.
func BenchmarkSGEMMMicro(b *testing.B) {
	mr, nr, kc := active.gemm.mr, active.gemm.nr, gemmKC
	r := rand.New(rand.NewPCG(1, 2))
	ap, bp, c := randSlice(r, mr*kc, 1), randSlice(r, kc*nr, 1), make([]float32, mr*nr)
	b.ResetTimer()
	for range b.N {
		active.gemm.micro(kc, ap, bp, c, nr)
	}
	reportGFLOPs(b, 2*float64(mr*nr*kc))
}
