package kernels

import (
	"math/rand/v2"
	"testing"
)

func quantBenchInput() []float32 {
	return randSlice(rand.New(rand.NewPCG(2, 2)), benchN, 1)
}

func BenchmarkFakeQuant(b *testing.B) {
	x := quantBenchInput()
	dst := make([]float32, len(x))
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(2 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			FakeQuant(dst, x, 0.05, 8, 16)
		}
	})
}

func BenchmarkFakeQuantPerChannel(b *testing.B) {
	const rows = 64
	x := quantBenchInput()
	dst := make([]float32, len(x))
	delta, zp := make([]float32, rows), make([]float32, rows)
	for i := range delta {
		delta[i], zp[i] = 0.05+0.001*float32(i), 8
	}
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(2 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			FakeQuantPerChannel(dst, x, rows, delta, zp, 16)
		}
	})
}

func BenchmarkFakeQuantBackward(b *testing.B) {
	x := quantBenchInput()
	dy := quantBenchInput()
	dx := make([]float32, len(x))
	var sink float32
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(3 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			sink += FakeQuantBackward(x, dy, dx, 0.05, 8, 16)
		}
	})
	_ = sink
}

// BenchmarkQuantErrorLp reports Melem/s: each element costs a
// quantization and one |e|^2.4.
func BenchmarkQuantErrorLp(b *testing.B) {
	x := quantBenchInput()
	var sink float64
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			sink += QuantErrorLp(x, 0.05, 8, 16, 2.4)
		}
		b.ReportMetric(float64(benchN)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
	})
	_ = sink
}

// BenchmarkScaleSearchLp is the per-tensor search of docs/DESIGN.md, "BRECQ", step 3 on 64K
// activations: 80 candidates per element.
func BenchmarkScaleSearchLp(b *testing.B) {
	x := quantBenchInput()
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(4 * benchN)
		for b.Loop() {
			ScaleSearchLp(x, 16, 2.4)
		}
		b.ReportMetric(float64(benchN*ScaleSearchSteps)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
	})
}

// BenchmarkAdaRound runs the per-iteration AdaRound work of one 64K-weight
// layer: soft rounding, its backward and the rounding term with gradient.
func BenchmarkAdaRound(b *testing.B) {
	benchPaths(b, benchAdaRound)
}

func benchAdaRound(b *testing.B) {
	const rows = 64
	w := quantBenchInput()
	alpha := quantBenchInput()
	dst := make([]float32, len(w))
	delta, zp := make([]float32, rows), make([]float32, rows)
	for i := range delta {
		delta[i], zp[i] = 0.05, 8
	}
	b.Run("Forward", func(b *testing.B) {
		b.SetBytes(3 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			AdaRoundForward(dst, w, alpha, rows, delta, zp, 16)
		}
	})
	b.Run("Backward", func(b *testing.B) {
		b.SetBytes(4 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			AdaRoundBackward(w, alpha, w, dst, rows, delta, zp, 16)
		}
	})
	b.Run("Regularizer", func(b *testing.B) {
		b.SetBytes(2 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			AdaRoundRegularizer(alpha, 10, dst, 0.01)
		}
	})
}
