package autograd

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// arenaNet is a small network and loss that exercise elementwise,
// reduction, shape, pooling and linear ops.
type arenaNet struct {
	units  []*convBNReLU
	fc     *Var
	lo, hi []float32
}

// step is one training step: it returns the loss and copies of the
// gradients of the input and of the first weight.
func (n *arenaNet) step(t *testing.T, x *Var) (loss float32, dx, dw []float32) {
	t.Helper()
	x.ZeroGrad()
	n.units[0].w.ZeroGrad()
	y0 := n.units[0].forward(Crop(FlipW(ClampST(x, n.lo, n.hi)), 1, 1, 32, 32))
	y := Add(y0, n.units[1].forward(y0)) // y0's gradient has two sources
	p := MaxPool2d(Pad(y, 1, 0, 1, 0), [2]int{2, 2}, [2]int{2, 2}, [2]int{0, 0})
	m, ms := ChannelMoments(p)
	sd := Std(y, []int{2, 3}, true)
	l := Add(SumSquares(Reshape(y, 2, -1)), Scale(Sum(Mul(sd, sd)), 0.5))
	l = Add(l, Sum(Linear(GlobalAvgPool(p), n.fc, nil)))
	l = Add(l, SumSquares(Sub(ms, Mul(m, m))))
	if err := l.Backward(); err != nil {
		t.Fatal(err)
	}
	return l.Value.Data[0], slices.Clone(x.Grad.Data), slices.Clone(n.units[0].w.Grad.Data)
}

// poison fills every buffer the arena holds for reuse with NaN, so an op
// that leaves part of a reused output unwritten shows.
func poison(a *Arena) {
	for _, bufs := range a.free {
		for _, b := range bufs {
			for i := range b {
				b[i] = float32(math.NaN())
			}
		}
	}
}

// TestArenaMatchesHeap checks that steps computed in an arena, reset
// between steps so buffers are reused, give exactly the values and
// gradients of heap-allocated steps, that the leaf gradients stay off the
// arena, and that a warm arena allocates no activation or gradient.
func TestArenaMatchesHeap(t *testing.T) {
	r := tensor.NewRNG(2)
	net := &arenaNet{
		units: []*convBNReLU{newConvBNReLU(r, 3, 4, true), newConvBNReLU(r, 4, 4, true)},
		fc:    NewVar(r.Randn(2, 4), true),
		lo:    []float32{-1, -0.5, -2}, hi: []float32{1, 0.5, 2},
	}
	xv := r.Randn(2, 3, 34, 34)
	wantLoss, wantDx, wantDw := net.step(t, NewVar(xv, true))

	a := NewArena()
	x := NewVar(xv, true)
	x.SetArena(a)
	for step := range 3 {
		loss, dx, dw := net.step(t, x)
		grad := x.Grad
		a.Reset()
		poison(a)
		if loss != wantLoss || !slices.Equal(dx, wantDx) || !slices.Equal(dw, wantDw) {
			t.Fatalf("step %d in the arena: loss %v, want %v (or gradients differ)", step, loss, wantLoss)
		}
		if !slices.Equal(grad.Data, wantDx) {
			t.Fatalf("step %d: the leaf gradient changed after Reset", step)
		}
	}
	if len(a.free) == 0 {
		t.Fatal("nothing was allocated in the arena")
	}
	if raceEnabled {
		return // allocation counts say nothing about the pools (race_test.go)
	}
	// Measured on one P: with more, what the pools hand out depends on
	// which P each worker ran on and on when the collector emptied them,
	// which moved the arena's figure between 70 and 320 KB on 2 cores
	// and to 870 KB (of a heap step's 1.7 MB) on a 16-core server.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	withArena := bytesPerRun(func() {
		net.step(t, x)
		a.Reset()
	})
	onHeap := bytesPerRun(func() { net.step(t, NewVar(xv, true)) })
	t.Logf("bytes allocated per step: %d in the arena, %d on the heap", withArena, onHeap)
	// What is left is the graph's bookkeeping, the small per-channel
	// buffers and this test's copies of the gradients: 51 KB of 835 KB
	// here on every path.
	if withArena > onHeap/4 {
		t.Errorf("a warm arena step allocates %d bytes, more than a quarter of a heap step's %d", withArena, onHeap)
	}
}

// bytesPerRun is the heap allocation of one call of f, averaged over a
// few calls after a warm-up.
func bytesPerRun(f func()) uint64 {
	const runs = 5
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}
