package kernels

import (
	"slices"
	"testing"
)

// BenchmarkFMAPeak measures the FP32 FMA peak the machine gives right now:
// twelve independent register-only FMAs per trip, no memory. On a shared
// machine the GFLOP/s of the other benchmarks are best read as a
// fraction of this, taken in the same run. /1 is one core; /all runs one
// loop per GOMAXPROCS (compare with -cpu 1,2 for the scaling ceiling).
func BenchmarkFMAPeak(b *testing.B) {
	if Active() == Generic {
		b.Skip("needs the AVX2 path")
	}
	benchPeak(b, fmaPeakAVX2, 1<<16, 192)
}

// benchPeak runs the peak loop fn of flopsPerTrip, trips trips a call,
// on one core (/1) and on every GOMAXPROCS (/all).
func benchPeak(b *testing.B, fn func(n int), trips int, flopsPerTrip float64) {
	flops := flopsPerTrip * float64(trips)
	b.Run("1", func(b *testing.B) {
		for range b.N {
			fn(trips)
		}
		reportGFLOPs(b, flops)
	})
	b.Run("all", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				fn(trips)
			}
		})
		reportGFLOPs(b, flops)
	})
}

// BenchmarkFMAPeak512 is BenchmarkFMAPeak for 512-bit FMAs (24
// independent chains of ZMM registers, 768 flops a trip): the yardstick
// of the AVX-512 path, twice the AVX2 one on cores with two 512-bit FMA
// units, the same on those that split them.
func BenchmarkFMAPeak512(b *testing.B) {
	if !slices.Contains(Available(), AVX512) {
		b.Skip("needs AVX-512")
	}
	benchPeak(b, fmaPeakAVX512, 1<<15, 768)
}

// BenchmarkCoreClock measures the clock the core runs at now, from a chain
// of dependent one-cycle adds, and the FMA peak that clock allows on the
// AVX2 path (two 8-lane FMA pipes: 32 flops a cycle). A shared core's
// clock moves with its neighbours' load; when FMAPeak falls short of the
// bound, something else is using the FMA pipes (an SMT sibling).
func BenchmarkCoreClock(b *testing.B) {
	const trips = 1 << 20
	for range b.N {
		if got := clockChain(trips); got != 8*trips {
			b.Fatalf("clockChain(%d) = %d, want %d", trips, got, 8*trips)
		}
	}
	ghz := 8 * trips * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(ghz, "GHz")
	b.ReportMetric(32*ghz, "GFLOP/s-bound")
}

func TestClockChain(t *testing.T) {
	for _, n := range []int{0, 1, 7, 1000} {
		if got := clockChain(n); got != 8*n {
			t.Errorf("clockChain(%d) = %d, want %d", n, got, 8*n)
		}
	}
}
