package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Shared with the other kernel tests: acrossPaths and randSlice
// (elementwise_test.go).

// closeTo checks got against a float64 reference with the float32
// rounding bound of a k-term dot product: k*eps*sum|terms| (plus one ulp
// of the result).
func closeTo(got float32, want, absSum float64, k int) bool {
	const eps = 1.0 / (1 << 23)
	tol := float64(k+2)*eps*absSum + eps*math.Abs(want) + 1e-30
	return math.Abs(float64(got)-want) <= tol
}

func TestSgemm(t *testing.T) {
	sizes := []int{1, 3, 7, 17, 33}
	type shape struct{ m, n, k int }
	var shapes []shape
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range []int{1, 7, 33} {
				shapes = append(shapes, shape{m, n, k})
			}
		}
	}
	// Past the cache blocks (mc=120, kc=256) with tails everywhere; the
	// AVX-512 tile's 24 rows whole, once and twice, and one short or over.
	shapes = append(shapes, shape{130, 61, 300}, shape{250, 97, 520}, shape{7, 3100, 9}, shape{0, 5, 5}, shape{5, 5, 0},
		shape{24, 32, 40}, shape{48, 16, 17}, shape{23, 47, 64}, shape{25, 16, 8})
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		abs := [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}, {0, 0.5}}
		for si, s := range shapes {
			for ti, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				// Every (alpha, beta) pair meets every transpose pair
				// across neighbouring shapes.
				ab := abs[(si+ti)%len(abs)]
				name := fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v_a%v_b%v", s.m, s.n, s.k, tr[0], tr[1], ab[0], ab[1])
				checkSgemm(t, r, name, s.m, s.n, s.k, tr[0], tr[1], ab[0], ab[1])
			}
		}
	})
}

func checkSgemm(t *testing.T, r *rand.Rand, name string, m, n, k int, tA, tB bool, alpha, beta float32) {
	t.Helper()
	// Leading dimensions larger than the rows, to catch stride bugs.
	ar, ac := m, k
	if tA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tB {
		br, bc = n, k
	}
	lda, ldb, ldc := ac+3, bc+2, n+5
	a := randSlice(r, max(ar*lda, 1), 1)
	b := randSlice(r, max(br*ldb, 1), 1)
	c := randSlice(r, max(m*ldc, 1), 1)
	if beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN()) // beta 0 must not read C
		}
	}
	c0 := append([]float32(nil), c...)
	Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	opA := func(i, p int) float64 {
		if tA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	opB := func(p, j int) float64 {
		if tB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}
	for i := range m {
		for j := range n {
			var s, abs float64
			for p := range k {
				v := opA(i, p) * opB(p, j)
				s += v
				abs += math.Abs(v)
			}
			want := float64(alpha) * s
			abs *= math.Abs(float64(alpha))
			if beta != 0 {
				want += float64(beta) * float64(c0[i*ldc+j])
				abs += math.Abs(float64(beta) * float64(c0[i*ldc+j]))
			}
			if got := c[i*ldc+j]; !closeTo(got, want, abs, k) {
				t.Fatalf("%s: C[%d,%d] = %v, want %v", name, i, j, got, want)
			}
		}
		// Padding columns of C must be untouched.
		for j := n; j < ldc && i*ldc+j < len(c); j++ {
			if c[i*ldc+j] != c0[i*ldc+j] && !(math.IsNaN(float64(c[i*ldc+j])) && math.IsNaN(float64(c0[i*ldc+j]))) {
				t.Fatalf("%s: C[%d,%d] past n was written", name, i, j)
			}
		}
	}
}

// TestSgemmMicro checks the active path's micro-kernels one call at a
// time against the float64 product of the packed panels: the full tile
// adding and storing (the stored one over NaNs, which it must not read),
// and each edge kernel, which must leave the rows past its own alone.
func TestSgemmMicro(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		g := &active.gemm
		mr, nr := g.mr, g.nr
		r := rand.New(rand.NewPCG(3, 4))
		type kernel struct {
			rows int
			set  bool
			f    func(kc int, a, b, c []float32, ldc int)
		}
		ks := []kernel{{mr, false, g.micro}}
		if g.microSet != nil {
			ks = append(ks, kernel{mr, true, g.microSet})
		}
		if g.microRows != nil {
			for h := 1; h < mr; h++ {
				ks = append(ks, kernel{h, false, g.microRows[0][h]}, kernel{h, true, g.microRows[1][h]})
			}
		}
		for _, k := range ks {
			for _, kc := range []int{0, 1, 3, 4, 9, 64} {
				ldc := nr + 3
				a, b := randSlice(r, mr*kc, 1), randSlice(r, kc*nr, 1)
				c := randSlice(r, (mr+1)*ldc, 1)
				if k.set {
					for i := range k.rows * ldc {
						if i%ldc < nr {
							c[i] = float32(math.NaN())
						}
					}
				}
				c0 := append([]float32(nil), c...)
				k.f(kc, a, b, c, ldc)
				for i := range mr + 1 {
					for j := range ldc {
						got := c[i*ldc+j]
						if i >= k.rows || j >= nr {
							if got != c0[i*ldc+j] {
								t.Fatalf("rows %d set %v kc %d: C[%d,%d] outside the tile was written", k.rows, k.set, kc, i, j)
							}
							continue
						}
						var want, abs float64
						for p := range kc {
							v := float64(a[p*mr+i]) * float64(b[p*nr+j])
							want += v
							abs += math.Abs(v)
						}
						if !k.set {
							want += float64(c0[i*ldc+j])
							abs += math.Abs(float64(c0[i*ldc+j]))
						}
						if !closeTo(got, want, abs, kc+1) {
							t.Fatalf("rows %d set %v kc %d: C[%d,%d] = %v, want %v", k.rows, k.set, kc, i, j, got, want)
						}
					}
				}
			}
		}
	})
}
