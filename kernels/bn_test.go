package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bnShapes are (n, c, hw) triples with odd plane sizes around the SIMD
// block widths; the last is split over the worker pool.
var bnShapes = [][3]int{{1, 1, 1}, {2, 3, 7}, {1, 2, 17}, {3, 2, 33}, {2, 5, 49}, {1, 3, 100}, {3, 5, 5000}}

func TestChannelMoments(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, s := range bnShapes {
			n, c, hw := s[0], s[1], s[2]
			x := randSlice(r, n*c*hw, 2)
			for i := range x {
				x[i] += 3 // a non-zero mean
			}
			mean, meanSq := make([]float32, c), make([]float32, c)
			ChannelMoments(n, c, hw, x, mean, meanSq)
			for ch := range c {
				var s, ss float64
				for b := range n {
					for _, v := range x[(b*c+ch)*hw : (b*c+ch+1)*hw] {
						s += float64(v)
						ss += float64(v) * float64(v)
					}
				}
				cnt := float64(n * hw)
				checkClose(t, "mean", ch, float64(mean[ch]), s/cnt, math.Abs(s/cnt), u32)
				checkClose(t, "meanSq", ch, float64(meanSq[ch]), ss/cnt, ss/cnt, u32)
			}
		}
	})
}

func TestChannelMomentsBackward(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(23, 24))
		for _, s := range bnShapes {
			n, c, hw := s[0], s[1], s[2]
			x := randSlice(r, n*c*hw, 2)
			dMean, dMeanSq := randSlice(r, c, 1), randSlice(r, c, 1)
			for _, which := range []string{"both", "mean", "meanSq"} {
				dm, dms := dMean, dMeanSq
				switch which {
				case "mean":
					dms = nil
				case "meanSq":
					dm = nil
				}
				dx := randSlice(r, len(x), 1)
				dx0 := append([]float32(nil), dx...)
				ChannelMomentsBackward(n, c, hw, x, dm, dms, dx)
				cnt := float64(n * hw)
				for i := range x {
					ch := i / hw % c
					want, mag := float64(dx0[i]), math.Abs(float64(dx0[i]))
					if dm != nil {
						want += float64(dm[ch]) / cnt
						mag += math.Abs(float64(dm[ch]) / cnt)
					}
					if dms != nil {
						g := 2 * float64(x[i]) * float64(dms[ch]) / cnt
						want += g
						mag += math.Abs(g)
					}
					checkClose(t, which, i, float64(dx[i]), want, mag, 4*u32)
				}
			}
		}
	})
}

func actRef(act Activation, v float64) float64 {
	switch act {
	case ActReLU:
		return math.Max(v, 0)
	case ActReLU6:
		return math.Min(math.Max(v, 0), 6)
	}
	return v
}

// TestScaleShiftMoments checks that the fused kernel is bit for bit
// ScaleShift and ChannelMoments (which are checked against float64
// definitions above), also in place and on shapes split over the pool.
func TestScaleShiftMoments(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(29, 30))
		shapes := append([][3]int{{32, 16, 1024}, {3, 5, 4099}}, bnShapes...)
		for _, act := range []Activation{ActNone, ActReLU} {
			for _, s := range shapes {
				n, c, hw := s[0], s[1], s[2]
				x := randSlice(r, n*c*hw, 3)
				scale, shift := randSlice(r, c, 2), randSlice(r, c, 2)
				wantY := make([]float32, len(x))
				ScaleShift(n, c, hw, x, scale, shift, wantY, act)
				wantM, wantSq := make([]float32, c), make([]float32, c)
				ChannelMoments(n, c, hw, x, wantM, wantSq)
				for _, inPlace := range []bool{false, true} {
					xx := slices.Clone(x)
					y := xx
					if !inPlace {
						y = make([]float32, len(x))
					}
					m, sq := make([]float32, c), make([]float32, c)
					ScaleShiftMoments(n, c, hw, xx, scale, shift, y, act, m, sq)
					for _, cmp := range []struct {
						what      string
						got, want []float32
					}{{"y", y, wantY}, {"mean", m, wantM}, {"meanSq", sq, wantSq}} {
						for i := range cmp.want {
							if math.Float32bits(cmp.got[i]) != math.Float32bits(cmp.want[i]) {
								t.Fatalf("%v shape %v in place %v: %s[%d] = %g, want %g", act, s, inPlace, cmp.what, i, cmp.got[i], cmp.want[i])
							}
						}
					}
				}
			}
		}
	})
}

// TestScaleShiftMomentsBackward: the fused pass adds into dx (or stores
// over garbage) bit for bit what ScaleShiftBackward and then
// ChannelMomentsBackward add (to zeros), on every path.
func TestScaleShiftMomentsBackward(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(31, 32))
		for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
			for _, s := range bnShapes {
				n, c, hw := s[0], s[1], s[2]
				x, dy, dx0 := randSlice(r, n*c*hw, 3), randSlice(r, n*c*hw, 1), randSlice(r, n*c*hw, 1)
				scale, shift, dm := randSlice(r, c, 2), randSlice(r, c, 2), randSlice(r, 2*c, 5)
				// Channel 0: x*scale + shift is 2^-24 - 2^-47 fused, 0 if
				// the product is rounded first, so the mask must be
				// recomputed exactly as the forward pass computed y.
				scale[0], shift[0] = math.Float32frombits(0x3f800001), -1
				for i := range hw {
					x[i] = math.Float32frombits(0x3f7fffff)
				}
				y := make([]float32, len(x))
				ScaleShift(n, c, hw, x, scale, shift, y, act)
				want := slices.Clone(dx0)
				ScaleShiftBackward(n, c, hw, x, scale, y, dy, want, nil, nil, act)
				ChannelMomentsBackward(n, c, hw, x, dm[:c], dm[c:], want)
				got := slices.Clone(dx0)
				ScaleShiftMomentsBackward(n, c, hw, x, scale, shift, y, dy, got, dm, act, false)
				// Overwriting: as if dx held zeros, never read (NaN in).
				wantSet := make([]float32, len(x))
				ScaleShiftBackward(n, c, hw, x, scale, y, dy, wantSet, nil, nil, act)
				ChannelMomentsBackward(n, c, hw, x, dm[:c], dm[c:], wantSet)
				gotSet := make([]float32, len(x))
				for i := range gotSet {
					gotSet[i] = float32(math.NaN())
				}
				ScaleShiftMomentsBackward(n, c, hw, x, scale, shift, y, dy, gotSet, dm, act, true)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v shape %v: dx[%d] = %g, want %g", act, s, i, got[i], want[i])
					}
					if math.Float32bits(gotSet[i]) != math.Float32bits(wantSet[i]) {
						t.Fatalf("%v shape %v set: dx[%d] = %g, want %g", act, s, i, gotSet[i], wantSet[i])
					}
				}
			}
		}
	})
}

func TestScaleShift(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(25, 26))
		for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
			for _, s := range bnShapes {
				n, c, hw := s[0], s[1], s[2]
				x := randSlice(r, n*c*hw, 3)
				scale, shift := randSlice(r, c, 2), randSlice(r, c, 2)
				y := make([]float32, len(x)+1)
				y[len(x)] = 42
				ScaleShift(n, c, hw, x, scale, shift, y[:len(x)], act)
				for i := range x {
					ch := i / hw % c
					p := float64(x[i])*float64(scale[ch]) + float64(shift[ch])
					mag := math.Abs(float64(x[i])*float64(scale[ch])) + math.Abs(float64(shift[ch]))
					checkClose(t, "ScaleShift", i, float64(y[i]), actRef(act, p), mag, 2*u32)
				}
				if y[len(x)] != 42 {
					t.Fatal("ScaleShift wrote past the end")
				}
			}
		}
	})
}

func TestScaleShiftBackward(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(27, 28))
		for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
			for _, s := range bnShapes {
				n, c, hw := s[0], s[1], s[2]
				x := randSlice(r, n*c*hw, 3)
				scale, shift := randSlice(r, c, 2), randSlice(r, c, 2)
				y := make([]float32, len(x))
				ScaleShift(n, c, hw, x, scale, shift, y, act)
				dy := randSlice(r, len(x), 1)
				dx, dScale, dShift := randSlice(r, len(x), 1), randSlice(r, c, 1), randSlice(r, c, 1)
				dx0 := append([]float32(nil), dx...)
				ds0, db0 := append([]float32(nil), dScale...), append([]float32(nil), dShift...)
				ScaleShiftBackward(n, c, hw, x, scale, y, dy, dx, dScale, dShift, act)
				wantS, wantB := make([]float64, c), make([]float64, c)
				magS, magB := make([]float64, c), make([]float64, c)
				for i := range x {
					ch := i / hw % c
					g := float64(dy[i])
					switch act {
					case ActReLU:
						if !(y[i] > 0) {
							g = 0
						}
					case ActReLU6:
						if !(y[i] > 0 && y[i] < 6) {
							g = 0
						}
					}
					gs := g * float64(scale[ch])
					checkClose(t, "dx", i, float64(dx[i]), float64(dx0[i])+gs, math.Abs(float64(dx0[i]))+math.Abs(gs), 2*u32)
					wantS[ch] += g * float64(x[i])
					magS[ch] += math.Abs(g * float64(x[i]))
					wantB[ch] += g
					magB[ch] += math.Abs(g)
				}
				for ch := range c {
					checkClose(t, "dScale", ch, float64(dScale[ch]), float64(ds0[ch])+wantS[ch], math.Abs(float64(ds0[ch]))+magS[ch], 2*u32)
					checkClose(t, "dShift", ch, float64(dShift[ch]), float64(db0[ch])+wantB[ch], math.Abs(float64(db0[ch]))+magB[ch], 2*u32)
				}
				// Optional outputs may be nil; dShift alone must agree.
				dShift2 := append([]float32(nil), db0...)
				ScaleShiftBackward(n, c, hw, x, scale, y, dy, nil, nil, dShift2, act)
				for ch := range c {
					if dShift2[ch] != dShift[ch] {
						t.Fatalf("dShift with nil dx/dScale [%d] = %g, want %g", ch, dShift2[ch], dShift[ch])
					}
				}
			}
		}
	})
}

// TestScaleShiftAdd: the residual form is bit for bit ScaleShift without
// activation, Add and the activation, with or without the moments, in
// place over x or r, on every path; and close to a float64 reference.
func TestScaleShiftAdd(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(33, 34))
		shapes := append([][3]int{{32, 16, 1024}, {3, 5, 4099}}, bnShapes...)
		for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
			for _, s := range shapes {
				n, c, hw := s[0], s[1], s[2]
				x, res := randSlice(r, n*c*hw, 3), randSlice(r, n*c*hw, 3)
				scale, shift := randSlice(r, c, 2), randSlice(r, c, 2)
				want := make([]float32, len(x))
				ScaleShift(n, c, hw, x, scale, shift, want, ActNone)
				Add(want, want, res)
				switch act {
				case ActReLU:
					ReLU(want, want)
				case ActReLU6:
					ReLU6(want, want)
				}
				for i := range x {
					ch := i / hw % c
					v := float64(x[i])*float64(scale[ch]) + float64(shift[ch]) + float64(res[i])
					mag := math.Abs(float64(x[i])*float64(scale[ch])) + math.Abs(float64(shift[ch])) + math.Abs(float64(res[i]))
					checkClose(t, "ScaleShiftAdd", i, float64(want[i]), actRef(act, v), mag, 3*u32)
				}
				wantM, wantSq := make([]float32, c), make([]float32, c)
				ChannelMoments(n, c, hw, x, wantM, wantSq)
				for _, into := range []string{"y", "x", "r"} {
					for _, moments := range []bool{false, true} {
						xx, rr := slices.Clone(x), slices.Clone(res)
						y := make([]float32, len(x)+1)
						y[len(x)] = 42
						switch into {
						case "x":
							y = xx
						case "r":
							y = rr
						}
						m, sq := make([]float32, c), make([]float32, c)
						if moments {
							ScaleShiftAddMoments(n, c, hw, xx, scale, shift, rr, y[:len(x)], act, m, sq)
						} else {
							ScaleShiftAdd(n, c, hw, xx, scale, shift, rr, y[:len(x)], act)
							m, sq = wantM, wantSq
						}
						if into == "y" && y[len(x)] != 42 {
							t.Fatal("ScaleShiftAdd wrote past the end")
						}
						for _, cmp := range []struct {
							what      string
							got, want []float32
						}{{"y", y, want}, {"mean", m, wantM}, {"meanSq", sq, wantSq}} {
							for i := range cmp.want {
								if math.Float32bits(cmp.got[i]) != math.Float32bits(cmp.want[i]) {
									t.Fatalf("%v shape %v into %s moments %v: %s[%d] = %g, want %g",
										act, s, into, moments, cmp.what, i, cmp.got[i], cmp.want[i])
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestScaleShiftAddMomentsBackward: x's gradient through a ScaleShiftAdd
// takes the activation's mask from the output (the residual moves it
// away from x*scale + shift), bit for bit ScaleShiftBackward and
// ChannelMomentsBackward, added or stored.
func TestScaleShiftAddMomentsBackward(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(35, 36))
		for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
			for _, s := range bnShapes {
				n, c, hw := s[0], s[1], s[2]
				x, res, dy := randSlice(r, n*c*hw, 3), randSlice(r, n*c*hw, 3), randSlice(r, n*c*hw, 1)
				scale, shift, dm := randSlice(r, c, 2), randSlice(r, c, 2), randSlice(r, 2*c, 5)
				y := make([]float32, len(x))
				ScaleShiftAdd(n, c, hw, x, scale, shift, res, y, act)
				for _, set := range []bool{false, true} {
					dx0 := randSlice(r, len(x), 1)
					want := slices.Clone(dx0)
					if set {
						clear(want)
						for i := range dx0 {
							dx0[i] = float32(math.NaN())
						}
					}
					ScaleShiftBackward(n, c, hw, x, scale, y, dy, want, nil, nil, act)
					ChannelMomentsBackward(n, c, hw, x, dm[:c], dm[c:], want)
					got := slices.Clone(dx0)
					ScaleShiftAddMomentsBackward(n, c, hw, x, scale, y, dy, got, dm, act, set)
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v shape %v set %v: dx[%d] = %g, want %g", act, s, set, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}
