package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchN is the length of the benchmarked slices: 256 KB per operand,
// the L2-resident size of a mid-network activation plane batch.
const benchN = 1 << 16

// benchPaths runs f as one sub-benchmark per available kernel path.
func benchPaths(b *testing.B, f func(b *testing.B)) {
	saved := Active()
	defer use(saved)
	for _, p := range Available() {
		use(p)
		b.Run(string(p), f)
	}
}

// reportFlops adds a GFLOP/s metric for flops floating-point operations
// per iteration.
func reportFlops(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func benchOperands(n int) (x, y, z []float32) {
	r := rand.New(rand.NewPCG(1, 1))
	return randSlice(r, n, 1), randSlice(r, n, 1), make([]float32, n)
}

func BenchmarkAxpy(b *testing.B) {
	x, y, _ := benchOperands(benchN)
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(3 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			Axpy(1e-3, x, y)
		}
		reportFlops(b, 2*benchN)
	})
}

func BenchmarkDot(b *testing.B) {
	x, y, _ := benchOperands(benchN)
	var sink float32
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(2 * 4 * benchN)
		b.ReportAllocs()
		for b.Loop() {
			sink += Dot(x, y)
		}
		reportFlops(b, 2*benchN)
	})
	_ = sink
}

func BenchmarkBinary(b *testing.B) {
	x, y, z := benchOperands(benchN)
	for _, c := range []struct {
		name string
		f    func(dst, a, b []float32)
	}{
		{"Add", Add}, {"Sub", Sub}, {"Mul", Mul},
		{"Scale", func(dst, a, _ []float32) { Scale(dst, 0.5, a) }},
		{"ReLU", func(dst, a, _ []float32) { ReLU(dst, a) }},
		{"ReLU6", func(dst, a, _ []float32) { ReLU6(dst, a) }},
		{"ReLUBackward", func(dst, a, b []float32) { ReLUBackward(a, b, dst) }},
		{"ReLU6Backward", func(dst, a, b []float32) { ReLU6Backward(a, b, dst) }},
		// A first contribution to a gradient: the buffer cleared and added
		// to, as autograd did, against the storing kernel.
		{"ReLUBackwardCleared", func(dst, a, b []float32) { Fill(dst, 0); ReLUBackward(a, b, dst) }},
		{"ReLUBackwardSet", func(dst, a, b []float32) { ReLUBackwardSet(a, b, dst) }},
		{"ReLU6BackwardSet", func(dst, a, b []float32) { ReLU6BackwardSet(a, b, dst) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			benchPaths(b, func(b *testing.B) {
				b.SetBytes(3 * 4 * benchN)
				b.ReportAllocs()
				for b.Loop() {
					c.f(z, x, y)
				}
			})
		})
	}
}

func BenchmarkSum(b *testing.B) {
	x, _, _ := benchOperands(benchN)
	var sink float32
	for _, c := range []struct {
		name string
		f    func([]float32) float32
	}{{"Sum", Sum}, {"SumSquares", SumSquares}} {
		b.Run(c.name, func(b *testing.B) {
			benchPaths(b, func(b *testing.B) {
				b.SetBytes(4 * benchN)
				b.ReportAllocs()
				for b.Loop() {
					sink += c.f(x)
				}
			})
		})
	}
	_ = sink
}

func BenchmarkRowMaxMin(b *testing.B) {
	const rows = 64
	x, _, _ := benchOperands(benchN)
	mx, mn := make([]float32, rows), make([]float32, rows)
	b.SetBytes(4 * benchN)
	b.ReportAllocs()
	for b.Loop() {
		RowMaxMin(rows, benchN/rows, x, mx, mn, nil, nil)
	}
}

// bnBenchShape is one batch of a mid-network ResNet activation:
// 8 x 64 x 28 x 28.
var bnBenchShape = [3]int{8, 64, 28 * 28}

func BenchmarkChannelMoments(b *testing.B) {
	n, c, hw := bnBenchShape[0], bnBenchShape[1], bnBenchShape[2]
	x, _, _ := benchOperands(n * c * hw)
	mean, meanSq := make([]float32, c), make([]float32, c)
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(int64(4 * len(x)))
		b.ReportAllocs()
		for b.Loop() {
			ChannelMoments(n, c, hw, x, mean, meanSq)
		}
	})
}

func BenchmarkChannelMomentsBackward(b *testing.B) {
	n, c, hw := bnBenchShape[0], bnBenchShape[1], bnBenchShape[2]
	x, _, dx := benchOperands(n * c * hw)
	dm, dms, _ := benchOperands(c)
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(int64(3 * 4 * len(x)))
		b.ReportAllocs()
		for b.Loop() {
			ChannelMomentsBackward(n, c, hw, x, dm, dms, dx)
		}
	})
}

func BenchmarkScaleShift(b *testing.B) {
	n, c, hw := bnBenchShape[0], bnBenchShape[1], bnBenchShape[2]
	x, _, y := benchOperands(n * c * hw)
	scale, shift, _ := benchOperands(c)
	for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
		b.Run(fmt.Sprintf("act=%d", act), func(b *testing.B) {
			benchPaths(b, func(b *testing.B) {
				b.SetBytes(int64(2 * 4 * len(x)))
				b.ReportAllocs()
				for b.Loop() {
					ScaleShift(n, c, hw, x, scale, shift, y, act)
				}
				reportFlops(b, float64(2*len(x)))
			})
		})
	}
}

// BenchmarkScaleShiftStream is one batch-norm pass at resnet18's stem
// size in a DGH step (32 x 64 x 112 x 112: 103 MB in, 103 MB out, far
// past any cache) on the active path: the memory bandwidth a pass over
// activations gets. Its figures over -cpu 1,2,4,... say how far the
// memory-bound passes of a step can scale on the machine.
func BenchmarkScaleShiftStream(b *testing.B) {
	n, c, hw := 32, 64, 112*112
	x, _, y := benchOperands(n * c * hw)
	scale, shift, _ := benchOperands(c)
	b.SetBytes(int64(2 * 4 * len(x)))
	for b.Loop() {
		ScaleShift(n, c, hw, x, scale, shift, y, ActReLU)
	}
}

func BenchmarkScaleShiftBackward(b *testing.B) {
	n, c, hw := bnBenchShape[0], bnBenchShape[1], bnBenchShape[2]
	x, dy, dx := benchOperands(n * c * hw)
	scale, shift, _ := benchOperands(c)
	y := make([]float32, len(x))
	ScaleShift(n, c, hw, x, scale, shift, y, ActReLU)
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(int64(4 * 4 * len(x)))
		b.ReportAllocs()
		for b.Loop() {
			ScaleShiftBackward(n, c, hw, x, scale, y, dy, dx, nil, nil, ActReLU)
		}
	})
}

func BenchmarkMaxPool2d(b *testing.B) {
	// The ResNet stem pool: 3x3 stride 2 pad 1 on 64 x 112 x 112.
	p := PoolParams{N: 1, C: 64, H: 112, W: 112, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	x, _, _ := benchOperands(p.N * p.C * p.H * p.W)
	y := make([]float32, p.N*p.C*p.OutH()*p.OutW())
	arg := make([]int32, len(y))
	b.SetBytes(int64(4 * len(x)))
	b.ReportAllocs()
	for b.Loop() {
		MaxPool2dForward(p, x, y, arg)
	}
}

// BenchmarkMaxPool2dBackward times the stem pool's backward at resnet18's
// DGH batch (32 x 64 x 112 x 112, 103 MB of dx, out of cache) the two ways
// a first gradient can be made: clear dx, then scatter into it; or
// MaxPool2dBackwardSet, which clears each plane just before its scatter.
func BenchmarkMaxPool2dBackward(b *testing.B) {
	p := PoolParams{N: 32, C: 64, H: 112, W: 112, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	x, _, _ := benchOperands(p.N * p.C * p.H * p.W)
	y := make([]float32, p.N*p.C*p.OutH()*p.OutW())
	arg := make([]int32, len(y))
	MaxPool2dForward(p, x, y, arg)
	dy, dx := y, make([]float32, len(x))
	b.Run("clear+add", func(b *testing.B) {
		b.SetBytes(int64(4 * len(x)))
		for b.Loop() {
			Fill(dx, 0)
			MaxPool2dBackward(p, dy, arg, dx)
		}
	})
	b.Run("set", func(b *testing.B) {
		b.SetBytes(int64(4 * len(x)))
		for b.Loop() {
			MaxPool2dBackwardSet(p, dy, arg, dx)
		}
	})
}

func BenchmarkAvgPoolGlobal(b *testing.B) {
	n, c, hw := 8, 512, 49
	x, _, _ := benchOperands(n * c * hw)
	y := make([]float32, n*c)
	benchPaths(b, func(b *testing.B) {
		b.SetBytes(int64(4 * len(x)))
		b.ReportAllocs()
		for b.Loop() {
			AvgPoolGlobalForward(n, c, hw, x, y)
		}
	})
}
