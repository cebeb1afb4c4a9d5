package kernels

import "testing"

// BenchmarkFMAPeak measures the FP32 FMA peak the machine gives right now:
// twelve independent register-only FMAs per trip, no memory. On a shared
// machine the GFLOP/s of the other benchmarks are best read as a
// fraction of this, taken in the same run. /1 is one core; /all runs one
// loop per GOMAXPROCS (compare with -cpu 1,2 for the scaling ceiling).
func BenchmarkFMAPeak(b *testing.B) {
	if Active() == Generic {
		b.Skip("needs the AVX2 path")
	}
	const trips = 1 << 16
	flops := 192.0 * trips
	b.Run("1", func(b *testing.B) {
		for range b.N {
			fmaPeakAVX2(trips)
		}
		reportGFLOPs(b, flops)
	})
	b.Run("all", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				fmaPeakAVX2(trips)
			}
		})
		reportGFLOPs(b, flops)
	})
}
