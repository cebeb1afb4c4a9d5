package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// TestOptimizerUpdates checks the split updates against the same
// per-element arithmetic in one loop, bit for bit, on lengths short of a
// block and over several (the pool's split).
func TestOptimizerUpdates(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 17, bigLength} {
		p, g := randSlice(r, n, 1), randSlice(r, n, 1)
		m, sq := randSlice(r, n, 0.1), randSlice(r, n, 0.1)
		for i := range sq {
			sq[i] *= sq[i]
		}
		for _, rule := range []RAdamRule{
			{B1: 0.9, B2: 0.999, Keep1: 0.1, Keep2: 0.001, Eps: 1e-8, LR: 16, BC1: 0.19, BC2Sqrt: 0.7, Rect: 0.3, Rectified: true},
			{B1: 0.9, B2: 0.999, Keep1: 0.1, Keep2: 0.001, WD: 0.01, Eps: 1e-8, LR: 0.5, BC1: 0.1},
		} {
			wp, wm, wsq := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), sq...)
			for e := range wp {
				d := g[e] + rule.WD*wp[e]
				wm[e] = wm[e]*rule.B1 + rule.Keep1*d
				wsq[e] = wsq[e]*rule.B2 + rule.Keep2*d*d
				mHat := wm[e] / rule.BC1
				if rule.Rectified {
					wp[e] -= mHat * rule.LR * (rule.BC2Sqrt * (1 / (float32(math.Sqrt(float64(wsq[e]))) + rule.Eps))) * rule.Rect
				} else {
					wp[e] -= mHat * rule.LR
				}
			}
			gp, gm, gsq := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), sq...)
			RAdamUpdate(gp, g, gm, gsq, rule)
			for e := range gp {
				if gp[e] != wp[e] || gm[e] != wm[e] || gsq[e] != wsq[e] {
					t.Fatalf("RAdamUpdate n=%d rectified=%v: [%d] = %g %g %g, want %g %g %g", n, rule.Rectified, e, gp[e], gm[e], gsq[e], wp[e], wm[e], wsq[e])
				}
			}
		}
		for _, ams := range []bool{false, true} {
			rule := AdamRule{B1: 0.9, B2: 0.999, Keep1: 0.1, Keep2: 0.001, WD: 0.1, Eps: 1e-8, StepSize: 1e-3, BC2Sqrt: 0.2}
			mx := randSlice(r, n, 0.1)
			for i := range mx {
				mx[i] *= mx[i]
			}
			wp, wm, wsq, wmx := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), sq...), append([]float32(nil), mx...)
			for e := range wp {
				d := g[e] + rule.WD*wp[e]
				wm[e] = wm[e]*rule.B1 + rule.Keep1*d
				wsq[e] = wsq[e]*rule.B2 + rule.Keep2*d*d
				second := wsq[e]
				if ams {
					wmx[e] = max(wmx[e], wsq[e])
					second = wmx[e]
				}
				wp[e] -= rule.StepSize * wm[e] / (float32(math.Sqrt(float64(second)))/rule.BC2Sqrt + rule.Eps)
			}
			gp, gm, gsq, gmx := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), sq...), append([]float32(nil), mx...)
			var maxSq []float32
			if ams {
				maxSq = gmx
			}
			AdamUpdate(gp, g, gm, gsq, maxSq, rule)
			for e := range gp {
				if gp[e] != wp[e] || gm[e] != wm[e] || gsq[e] != wsq[e] || ams && gmx[e] != wmx[e] {
					t.Fatalf("AdamUpdate n=%d amsgrad=%v: [%d] = %g %g %g, want %g %g %g", n, ams, e, gp[e], gm[e], gsq[e], wp[e], wm[e], wsq[e])
				}
			}
		}
	}
}

// TestFillCopy checks the pool's fill and copy on every test length,
// and that neither writes past the slice.
func TestFillCopy(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, n := range testLengths {
		src := randSlice(r, n, 1)
		for _, v := range []float32{0, -2.5} {
			d := randSlice(r, n+1, 1)
			guard := d[n]
			Fill(d[:n], v)
			for i := range n {
				if d[i] != v {
					t.Fatalf("Fill(n=%d, %g): [%d] = %g", n, v, i, d[i])
				}
			}
			if d[n] != guard {
				t.Fatalf("Fill(n=%d) wrote past the end", n)
			}
		}
		d := randSlice(r, n+1, 1)
		guard := d[n]
		Copy(d[:n], src)
		for i := range n {
			if d[i] != src[i] {
				t.Fatalf("Copy(n=%d): [%d] = %g, want %g", n, i, d[i], src[i])
			}
		}
		if d[n] != guard {
			t.Fatalf("Copy(n=%d) wrote past the end", n)
		}
	}
}

// TestCopyWindows checks CopyWindows against a plain loop, storing and
// adding, a crop's direction and a pad's, on batches small enough to run
// on the calling goroutine and large enough for the pool, at 1 and 4
// workers: every window element exact (adding is dst + src to the bit),
// every element outside the windows untouched.
func TestCopyWindows(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, procs := range []int{1, 4} {
		runtime.GOMAXPROCS(procs)
		for _, c := range []struct{ planes, bh, bw, h, w, top, left int }{
			{3, 7, 9, 4, 5, 2, 3},
			{96, 40, 40, 32, 32, 5, 3}, // 98304 floats moved: on the pool
			{1, 1, 1, 1, 1, 0, 0},
		} {
			big := randSlice(r, c.planes*c.bh*c.bw, 1)
			small := randSlice(r, c.planes*c.h*c.w, 1)
			for _, add := range []bool{false, true} {
				// Crop direction: the window of big into small.
				want := slices.Clone(small)
				for p := range c.planes {
					for i := range c.h {
						for j := range c.w {
							s := big[(p*c.bh+c.top+i)*c.bw+c.left+j]
							d := &want[(p*c.h+i)*c.w+j]
							if add {
								*d += s
							} else {
								*d = s
							}
						}
					}
				}
				got := slices.Clone(small)
				CopyWindows(c.planes, c.h, c.w, got, c.h*c.w, 0, c.w, big, c.bh*c.bw, c.top*c.bw+c.left, c.bw, add)
				if !slices.Equal(got, want) {
					t.Fatalf("procs %d %+v add=%v: crop direction differs", procs, c, add)
				}
				// Pad direction: small into the window of big; the
				// rest of big keeps its values.
				wantBig := slices.Clone(big)
				for p := range c.planes {
					for i := range c.h {
						for j := range c.w {
							s := small[(p*c.h+i)*c.w+j]
							d := &wantBig[(p*c.bh+c.top+i)*c.bw+c.left+j]
							if add {
								*d += s
							} else {
								*d = s
							}
						}
					}
				}
				gotBig := slices.Clone(big)
				CopyWindows(c.planes, c.h, c.w, gotBig, c.bh*c.bw, c.top*c.bw+c.left, c.bw, small, c.h*c.w, 0, c.w, add)
				if !slices.Equal(gotBig, wantBig) {
					t.Fatalf("procs %d %+v add=%v: pad direction differs", procs, c, add)
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an overrunning window did not panic")
		}
	}()
	CopyWindows(2, 3, 3, make([]float32, 17), 9, 0, 3, make([]float32, 18), 9, 0, 3, false)
}

// TestFlipRows checks FlipRows against a plain loop, storing and adding,
// at 1 and 4 workers, on a batch small enough for the calling goroutine
// and one large enough for the pool.
func TestFlipRows(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, procs := range []int{1, 4} {
		runtime.GOMAXPROCS(procs)
		for _, c := range []struct{ rows, w int }{{5, 7}, {3 * 64 * 32, 37}, {1, 1}} {
			src := randSlice(r, c.rows*c.w, 1)
			dst := randSlice(r, c.rows*c.w+1, 1)
			for _, add := range []bool{false, true} {
				want := slices.Clone(dst)
				for i := range c.rows {
					for j := range c.w {
						s := src[i*c.w+j]
						if add {
							want[i*c.w+c.w-1-j] += s
						} else {
							want[i*c.w+c.w-1-j] = s
						}
					}
				}
				got := slices.Clone(dst)
				FlipRows(got, src, c.w, add)
				if !slices.Equal(got, want) {
					t.Fatalf("procs %d %+v add=%v: differs (or wrote past the rows)", procs, c, add)
				}
			}
		}
	}
}
