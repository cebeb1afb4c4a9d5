package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSGEMM times square C = A*B on the active path; run with
// -cpu 1 for the single-core figure.
func BenchmarkSGEMM(b *testing.B) {
	for _, n := range []int{256, 512, 1024} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			x, y, z := randSlice(r, n*n, 1), randSlice(r, n*n, 1), make([]float32, n*n)
			Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n) // warm the scratch pools
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
			}
			reportGFLOPs(b, 2*float64(n)*float64(n)*float64(n))
		})
	}
}

// BenchmarkSGEMMPerCore runs one single-threaded SGEMM per goroutine
// (GOMAXPROCS of them), each on its own matrices: nothing shared, no
// synchronisation. Its -cpu 2 figure over its -cpu 1 figure is the most
// any split of one product over two cores can gain on this machine.
func BenchmarkSGEMMPerCore(b *testing.B) {
	const n = 512
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(1, 1))
		x, y, z := randSlice(r, n*n, 1), randSlice(r, n*n, 1), make([]float32, n*n)
		for pb.Next() {
			sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n, false)
		}
	})
	reportGFLOPs(b, 2*float64(n)*float64(n)*float64(n))
}

// reportGFLOPs reports flops-per-op as GFLOP/s.
func reportGFLOPs(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
