package tensor

import (
	"math"
	"slices"
	"strconv"
	"testing"
)

// TestRNGReference compares against testdata/rng_reference.c, an
// independent C implementation built without FMA contraction; the same
// values must come out on amd64 and arm64 (run under qemu on amd64).
func TestRNGReference(t *testing.T) {
	if _, z := splitMix64(0); z != 0xe220a8397b1dcdaf {
		t.Errorf("splitmix64(0) = %#x, want the published 0xe220a8397b1dcdaf", z)
	}
	wantBits := []uint64{
		1546998764402558742, 6990951692964543102, 12544586762248559009,
		17057574109182124193, 18295552978065317476, 14199186830065750584,
	}
	r := NewRNG(42)
	for i, want := range wantBits {
		if got := r.Uint64(); got != want {
			t.Errorf("Uint64 #%d = %d, want %d", i, got, want)
		}
	}
	wantNormals := []string{
		"0x1.edc0d635eea0bp-1", "-0x1.1052212a30fdep+0", "-0x1.3739755916c21p-2",
		"-0x1.19560dad02138p+0", "0x1.381c0324118c3p-2", "0x1.b5546c837a177p+0",
		"-0x1.b375fc61f0764p+0", "0x1.10da117c21fe7p+1", "-0x1.ab9043786fd34p+0",
		"-0x1.da5db5ec890a1p-3", "-0x1.088cef0d25c93p+0", "0x1.e775088feb92fp-2",
	}
	r = NewRNG(7)
	for i, s := range wantNormals {
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Normal(); got != want {
			t.Errorf("Normal #%d = %x, want %x", i, got, want)
		}
	}
}

func TestDetLog(t *testing.T) {
	xs := []float64{1e-300, 1e-20, 1e-7, 0.1, 0.5, 0.70710678, 0.9999999, 1, 1.0000001, math.Sqrt2, 2, math.E, 10, 12345.678, 1e30, math.MaxFloat64}
	r := NewRNG(1)
	for range 2000 {
		xs = append(xs, r.Float64()) // the polar method's range
	}
	for _, x := range xs {
		got, want := detLog(x), math.Log(x)
		ulp := math.Nextafter(math.Abs(want), math.Inf(1)) - math.Abs(want)
		if math.Abs(got-want) > 2*ulp {
			t.Errorf("detLog(%g) = %.17g, math.Log = %.17g", x, got, want)
		}
	}
}

func TestRNGDistributions(t *testing.T) {
	const n = 200000
	r := NewRNG(3)
	var sum, sumSq, sum3, sum4 float64
	for range n {
		v := r.Normal()
		sum += v
		sumSq += v * v
		sum3 += v * v * v
		sum4 += v * v * v * v
	}
	mean, m2 := sum/n, sumSq/n
	// Standard errors at n = 2e5: mean 0.0022, E[x^2] 0.0032, E[x^3] 0.0087, E[x^4] 0.022.
	for _, c := range []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"mean", mean, 0, 0.012},
		{"E[x^2]", m2, 1, 0.016},
		{"E[x^3]", sum3 / n, 0, 0.045},
		{"E[x^4]", sum4 / n, 3, 0.11},
	} {
		if math.Abs(c.got-c.want) > c.tol {
			t.Errorf("normal %s = %.4f, want %.4f", c.name, c.got, c.want)
		}
	}

	var usum float64
	for range n {
		u := r.Uniform(-2, 3)
		if u < -2 || u >= 3 {
			t.Fatalf("Uniform(-2,3) = %v", u)
		}
		usum += u
	}
	if m := usum / n; math.Abs(m-0.5) > 0.02 {
		t.Errorf("uniform mean %.4f, want 0.5", m)
	}

	// Intn: chi-square over 7 bins (6 degrees of freedom; 22.5 is p = 0.001).
	var counts [7]int
	for range 70000 {
		counts[r.Intn(7)]++
	}
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - 10000
		chi += d * d / 10000
	}
	if chi > 22.5 {
		t.Errorf("Intn(7) counts %v, chi-square %.1f", counts, chi)
	}
}

func TestPerm(t *testing.T) {
	r := NewRNG(5)
	for _, n := range []int{0, 1, 2, 10, 100} {
		p := r.Perm(n)
		s := slices.Clone(p)
		slices.Sort(s)
		for i, v := range s {
			if v != i {
				t.Fatalf("Perm(%d) = %v is not a permutation", n, p)
			}
		}
	}
	// Every position of Perm(3) sees every value about equally often.
	var pos [3][3]int
	for range 30000 {
		for i, v := range r.Perm(3) {
			pos[i][v]++
		}
	}
	for i := range pos {
		for v, c := range pos[i] {
			if c < 9500 || c > 10500 {
				t.Errorf("Perm(3): position %d held %d %d times of 30000", i, v, c)
			}
		}
	}
}

func TestRNGStateRoundTrip(t *testing.T) {
	r := NewRNG(11)
	r.Normal() // leave a spare normal pending: it is part of the state
	saved, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{r.Normal(), r.Normal(), r.Float64(), float64(r.Intn(1000))}

	var q RNG
	if err := q.UnmarshalBinary(saved); err != nil {
		t.Fatal(err)
	}
	got := []float64{q.Normal(), q.Normal(), q.Float64(), float64(q.Intn(1000))}
	if !slices.Equal(got, want) {
		t.Errorf("restored stream %v, want %v", got, want)
	}

	bad := [][]byte{nil, saved[:10], append(slices.Clone(saved), 0)}
	zero := slices.Clone(saved)
	clear(zero[8:40])
	bad = append(bad, zero)
	for i, b := range bad {
		if err := q.UnmarshalBinary(b); err == nil {
			t.Errorf("bad state %d accepted", i)
		}
	}
}

func TestRNGSeedsDiffer(t *testing.T) {
	a, b := NewRNG(1), NewRNG(2)
	c := a.Split()
	same := 0
	for range 64 {
		x, y, z := a.Uint64(), b.Uint64(), c.Uint64()
		if x == y || x == z {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d equal draws between different seeds", same)
	}
}

func TestFill(t *testing.T) {
	r := NewRNG(9)
	x := New(1000)
	r.FillUniform(x, -1, 1)
	for _, v := range x.Data {
		if v < -1 || v >= 1 {
			t.Fatalf("FillUniform value %v outside [-1,1)", v)
		}
	}
	r.FillNormal(x, 5, 0.5)
	var s float64
	for _, v := range x.Data {
		s += float64(v)
	}
	if m := s / 1000; math.Abs(m-5) > 0.1 {
		t.Errorf("FillNormal mean %.3f, want 5", m)
	}
	if y := NewRNG(4).Randn(2, 3); !slices.Equal(y.Shape, []int{2, 3}) {
		t.Errorf("Randn shape %v", y.Shape)
	}
}
