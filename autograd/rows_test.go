package autograd

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// TestRowReductionsOnThePool checks Mean, MeanSquare and Std over
// trailing axes of an array large enough for the pool (kernels.SpreadRows):
// values and input gradients are bit for bit the same at 1 and 4 workers,
// and Std's are exactly the row-by-row formula's.
func TestRowReductionsOnThePool(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	x0 := randn(tensor.NewRNG(9), 8, 256, 7, 7) // 100352 values, 2048 rows of 49
	run := func(procs int) (vals, grads [][]float32) {
		runtime.GOMAXPROCS(procs)
		for _, f := range []func(*Var) *Var{
			func(x *Var) *Var { return Mean(x, 2, 3) },
			func(x *Var) *Var { return MeanSquare(x, 2, 3) },
			func(x *Var) *Var { return Std(x, []int{2, 3}, true) },
		} {
			x := NewVar(x0.Clone(), true)
			y := f(x)
			// A weight per output, so each row's gradient differs.
			w := tensor.New(y.Value.Shape...)
			for i := range w.Data {
				w.Data[i] = float32(i%7) - 3
			}
			if err := Sum(Mul(y, Const(w))).Backward(); err != nil {
				t.Fatal(err)
			}
			vals = append(vals, slices.Clone(y.Value.Data))
			grads = append(grads, slices.Clone(x.Grad.Data))
		}
		return vals, grads
	}
	v1, g1 := run(1)
	v4, g4 := run(4)
	names := []string{"Mean", "MeanSquare", "Std"}
	for i := range names {
		for j := range v1[i] {
			if math.Float32bits(v1[i][j]) != math.Float32bits(v4[i][j]) {
				t.Fatalf("%s: output %d is %g on 1 worker, %g on 4", names[i], j, v1[i][j], v4[i][j])
			}
		}
		for j := range g1[i] {
			if math.Float32bits(g1[i][j]) != math.Float32bits(g4[i][j]) {
				t.Fatalf("%s: gradient %d is %g on 1 worker, %g on 4", names[i], j, g1[i][j], g4[i][j])
			}
		}
	}
	// Std against the formula, row by row.
	for row := range 8 * 256 {
		seg := x0.Data[row*49 : (row+1)*49]
		m, dev := meanDeviation(seg)
		sd := float32(math.Sqrt(dev / 48))
		if v4[2][row] != sd {
			t.Fatalf("Std row %d = %g, want %g", row, v4[2][row], sd)
		}
		k := float64(float32(row%7)-3) / (48 * float64(sd))
		for i, v := range seg {
			if want := float32(k * (float64(v) - m)); g4[2][row*49+i] != want {
				t.Fatalf("Std gradient row %d column %d = %g, want %g", row, i, g4[2][row*49+i], want)
			}
		}
	}
}
