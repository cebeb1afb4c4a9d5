package tensor

// Seeded random numbers that are bit-identical on every platform, so a DGH
// run (docs/DESIGN.md, "DGH": initial images, batch order, flips, crops) repeats
// exactly for a given seed on amd64 and arm64 alike, and can be resumed
// from a saved state.
//
// The generator is xoshiro256** seeded through splitmix64 (integer
// operations only). Normal draws use the Marsaglia polar method with our
// own logarithm: math.Log has assembly on amd64 and pure Go elsewhere, and
// the Go compiler may fuse x*y+z into one FMA on some architectures, so
// every product below is wrapped in an explicit float64 conversion, which
// the language spec defines as forcing the rounding (no fusion).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// RNG is a deterministic pseudo-random generator. It is not safe for
// concurrent use; give each goroutine its own (see Split).
type RNG struct {
	s [4]uint64
	// The polar method yields normals in pairs; the second one waits here.
	spare    float64
	hasSpare bool
}

// NewRNG returns a generator seeded with seed.
func NewRNG(seed uint64) *RNG {
	r := &RNG{}
	r.Seed(seed)
	return r
}

// Seed resets r to the state NewRNG(seed) starts in.
func (r *RNG) Seed(seed uint64) {
	x := seed
	for i := range r.s {
		x, r.s[i] = splitMix64(x)
	}
	r.spare, r.hasSpare = 0, false
}

// splitMix64 advances a splitmix64 state and returns the new state and
// its output; it spreads one seed word over xoshiro's four.
func splitMix64(x uint64) (uint64, uint64) {
	x += 0x9e3779b97f4a7c15
	z := x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return x, z ^ (z >> 31)
}

// Uint64 returns 64 uniformly random bits (xoshiro256**).
func (r *RNG) Uint64() uint64 {
	s := &r.s
	out := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return out
}

// Split returns a new generator seeded from r, for an independent stream
// (a worker, a batch) that stays reproducible.
func (r *RNG) Split() *RNG { return NewRNG(r.Uint64()) }

// Float64 returns a uniform value in [0, 1) with 53 random bits.
func (r *RNG) Float64() float64 { return float64(r.Uint64()>>11) * 0x1p-53 }

// Float32 returns a uniform value in [0, 1) with 24 random bits.
func (r *RNG) Float32() float32 { return float32(r.Uint64()>>40) * 0x1p-24 }

// Uniform returns a uniform value in [lo, hi).
func (r *RNG) Uniform(lo, hi float64) float64 {
	return lo + float64((hi-lo)*r.Float64())
}

// Bool returns true with probability p, for random flips.
func (r *RNG) Bool(p float64) bool { return r.Float64() < p }

// Normal returns a standard normal value (Marsaglia polar method).
func (r *RNG) Normal() float64 {
	if r.hasSpare {
		r.hasSpare = false
		return r.spare
	}
	for {
		u := 2*r.Float64() - 1
		v := 2*r.Float64() - 1
		s := float64(u*u) + float64(v*v)
		if s >= 1 || s == 0 {
			continue
		}
		f := math.Sqrt(float64(-2*detLog(s)) / s)
		r.spare, r.hasSpare = float64(v*f), true
		return float64(u * f)
	}
}

// Intn returns a uniform integer in [0, n). It panics if n <= 0, like
// math/rand: that is a programming error.
func (r *RNG) Intn(n int) int {
	if n <= 0 {
		panic(fmt.Sprintf("tensor.RNG.Intn: n = %d", n))
	}
	return int(r.uint64n(uint64(n)))
}

// uint64n is Lemire's multiply-shift with rejection: unbiased, and
// usually without a division.
func (r *RNG) uint64n(n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// Perm returns a uniform random permutation of 0..n-1.
func (r *RNG) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// Shuffle permutes n items uniformly (Fisher-Yates) through swap.
func (r *RNG) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.Intn(i+1))
	}
}

// FillNormal sets every element of t to mean + std*N(0,1).
func (r *RNG) FillNormal(t *Tensor, mean, std float32) {
	for i := range t.Data {
		t.Data[i] = float32(float64(float64(std)*r.Normal()) + float64(mean))
	}
}

// FillUniform sets every element of t uniformly in [lo, hi).
func (r *RNG) FillUniform(t *Tensor, lo, hi float32) {
	for i := range t.Data {
		v := float32(r.Uniform(float64(lo), float64(hi)))
		if v >= hi { // rounding to float32 can reach hi
			v = math.Nextafter32(hi, lo)
		}
		t.Data[i] = v
	}
}

// Randn returns a tensor of standard normal values.
func (r *RNG) Randn(shape ...int) *Tensor {
	t := New(shape...)
	r.FillNormal(t, 0, 1)
	return t
}

// rngStateMagic versions the saved state so a future change of generator
// is detected rather than silently misread.
const rngStateMagic = "dghrng1\x00"

// MarshalBinary saves r's full state (for DGH resume).
func (r *RNG) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(rngStateMagic)+4*8+1+8)
	b = append(b, rngStateMagic...)
	for _, w := range r.s {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	var spare byte
	if r.hasSpare {
		spare = 1
	}
	b = append(b, spare)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(r.spare)), nil
}

// UnmarshalBinary restores a state saved by MarshalBinary.
func (r *RNG) UnmarshalBinary(b []byte) error {
	if len(b) != len(rngStateMagic)+4*8+1+8 || string(b[:len(rngStateMagic)]) != rngStateMagic {
		return errors.New("tensor: not a saved RNG state")
	}
	b = b[len(rngStateMagic):]
	var s [4]uint64
	for i := range s {
		s[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	if s == [4]uint64{} {
		return errors.New("tensor: saved RNG state is all zero")
	}
	if b[32] > 1 {
		return errors.New("tensor: corrupt saved RNG state")
	}
	r.s = s
	r.hasSpare = b[32] == 1
	r.spare = math.Float64frombits(binary.LittleEndian.Uint64(b[33:]))
	return nil
}

// detLog is ln(x) for finite x > 0, built from exactly rounded operations
// only so it gives the same bits on every platform. x = m*2^e with m in
// [sqrt(2)/2, sqrt(2)); ln(m) = 2*atanh(s), s = (m-1)/(m+1), |s| < 0.172,
// summed as an odd series to well below one ulp.
func detLog(x float64) float64 {
	m, e := math.Frexp(x)
	if m < math.Sqrt2/2 {
		m *= 2
		e--
	}
	s := (m - 1) / (m + 1)
	s2 := float64(s * s)
	// Horner on 1 + s2/3 + s2^2/5 + ... + s2^11/23.
	sum := 0.0
	for k := 23; k >= 1; k -= 2 {
		sum = float64(sum*s2) + 1/float64(k)
	}
	lnM := float64(float64(2*s) * sum)
	// ln2 split so e*ln2Hi is exact for |e| < 2^11.
	const ln2Hi = 6.93147180369123816490e-01
	const ln2Lo = 1.90821492927058770002e-10
	fe := float64(e)
	return float64(fe*ln2Hi) + (lnM + float64(fe*ln2Lo))
}
