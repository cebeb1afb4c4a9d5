package kernels

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// Oracle tests against PyTorch (tools/torchref/kernels.py, docs/DESIGN.md, "Testing and numerics").

func readFixture(t *testing.T, name string) []float32 {
	t.Helper()
	x, err := tensor.ReadNPY(filepath.Join("testdata", name+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	return x.Data
}

// TestFakeQuantTorch compares q(x), the straight-through dx and the LSQ
// gradient of delta with torch autograd of BRECQ's quantizer.
func TestFakeQuantTorch(t *testing.T) {
	x, dy := readFixture(t, "fake_quant_x"), readFixture(t, "fake_quant_dy")
	wantQ, wantDx := readFixture(t, "fake_quant_q"), readFixture(t, "fake_quant_dx")
	delta, zp := readFixture(t, "fake_quant_delta")[0], readFixture(t, "fake_quant_zp")[0]
	levels := int(readFixture(t, "fake_quant_levels")[0])
	wantDDelta := float64(readFixture(t, "fake_quant_ddelta")[0])
	acrossPaths(t, func(t *testing.T) {
		q := make([]float32, len(x))
		FakeQuant(q, x, delta, zp, levels)
		for i := range q {
			if q[i] != wantQ[i] {
				t.Fatalf("q[%d] = %g, torch %g (x = %g)", i, q[i], wantQ[i], x[i])
			}
		}
		dx := make([]float32, len(x))
		got := float64(FakeQuantBackward(x, dy, dx, delta, zp, levels))
		for i := range dx {
			if dx[i] != wantDx[i] {
				t.Fatalf("dx[%d] = %g, torch %g", i, dx[i], wantDx[i])
			}
		}
		// torch sums in float32; bound its error by n*u*sum|terms|.
		var mag float64
		for i, v := range x {
			mag += math.Abs(float64(dy[i])) * math.Max(float64(levels), math.Abs(float64(v/delta)))
		}
		checkClose(t, "dDelta", 0, got, wantDDelta, mag, float64(len(x))*u32)
	})
}

// TestScaleSearchTorch compares the per-tensor and per-channel searches
// with BRECQ's loop run by torch. Where the choices differ, torch's
// choice must score within float32 summation noise of ours (a tie).
func TestScaleSearchTorch(t *testing.T) {
	check := func(t *testing.T, x []float32, d, z, wantD, wantZ float32) {
		t.Helper()
		if d == wantD && z == wantZ {
			return
		}
		ours := QuantErrorLp(x, d, z, 16, 2.4)
		theirs := QuantErrorLp(x, wantD, wantZ, 16, 2.4)
		if theirs > ours*(1+float64(len(x))*u32) || ours > theirs*(1+float64(len(x))*u32) {
			t.Fatalf("delta/zp = %g/%g (error %g), torch %g/%g (error %g)", d, z, ours, wantD, wantZ, theirs)
		}
	}
	acrossPaths(t, func(t *testing.T) {
		x := readFixture(t, "search_tensor_x")
		d, z, lp := ScaleSearchLp(x, 16, 2.4)
		check(t, x, d, z, readFixture(t, "search_tensor_delta")[0], readFixture(t, "search_tensor_zp")[0])
		score := float64(readFixture(t, "search_tensor_score")[0]) * float64(len(x))
		checkClose(t, "score", 0, lp, score, score, float64(len(x))*u32)

		w := readFixture(t, "search_channel_x")
		wantD, wantZ := readFixture(t, "search_channel_delta"), readFixture(t, "search_channel_zp")
		rows := len(wantD)
		ds, zs := make([]float32, rows), make([]float32, rows)
		ScaleSearchLpPerChannel(w, rows, 16, 2.4, ds, zs)
		cols := len(w) / rows
		for r := range rows {
			check(t, w[r*cols:(r+1)*cols], ds[r], zs[r], wantD[r], wantZ[r])
		}
	})
}
