package kernels

// Direct depthwise kernels (SPEC section 1, kernels: depthwise 3x3 stride
// 1 and 2, forward and both backwards), one plane at a time.
//
// The inner loops are row kernels (dwRow3x3, dwRowGrad3x3: AVX2 generated
// by asm/conv, NEON in conv_arm64.s, the Go definitions below) that sweep
// output columns whose taps are all inside the input. Stride 1 copies the
// plane into a zero frame first, so the whole flattened plane is a single
// row-kernel call with no border cases (small late-network planes would
// otherwise be all borders and call overhead). Stride 2 sweeps row by
// row, reading rows above or below the image from a zero row, with the
// border columns done in Go. Other kernel shapes use the definitions in
// conv_generic.go. The stride-1 backward-data pass is the forward pass of
// dy with the taps rotated 180 degrees and the complementary padding.

import "sync"

// dw3x3 reports whether p gets the 3x3 direct kernels.
func dw3x3(p *ConvParams) bool {
	return p.KH == 3 && p.KW == 3 && p.DilH == 1 && p.DilW == 1 &&
		p.StrideH == p.StrideW && (p.StrideH == 1 || p.StrideH == 2)
}

// dwGeom is the geometry a 3x3 depthwise plane kernel needs, computed once
// per task rather than per plane.
type dwGeom struct {
	oh0, ow0, s, ph, pw, h, w int
	lo, hi                    int // output columns whose three taps are all inside
}

func newDWGeom(p *ConvParams) dwGeom {
	g := dwGeom{oh0: p.OutH(), ow0: p.OutW(), s: p.StrideW, ph: p.PadH, pw: p.PadW, h: p.H, w: p.W}
	g.lo, _ = validRange(g.ow0, g.s, -g.pw, g.w)
	_, g.hi = validRange(g.ow0, g.s, 2-g.pw, g.w)
	g.hi = max(g.lo, g.hi)
	return g
}

// dwScratch is one task's scratch: a zero row standing in for rows
// outside the image, and the taps and gradient handed to the row kernels
// (heap fields, so passing them costs no allocation).
type dwScratch struct {
	zero     []float32
	pad, out []float32 // stride 1: the padded input plane, the output on its grid
	taps     [10]float32
	grad     [9]float32
}

var dwScratches = sync.Pool{New: func() any { return new(dwScratch) }}

func getDWScratch(g *dwGeom) *dwScratch {
	sc := dwScratches.Get().(*dwScratch)
	sc.zero = grow(sc.zero, g.w)
	if g.s == 1 {
		wp := g.w + 2*g.pw
		sc.pad = grow(sc.pad, (g.h+2*g.ph)*wp+2)
		sc.out = grow(sc.out, g.oh0*wp)
	}
	return sc
}

// grow returns s resized to n, reallocated only when too small.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// padPlane copies plane x into sc.pad with a zero frame of ph rows and pw
// columns (and two zero floats past the end for the row kernel's reach).
// The flattened padded plane is one long row: output (oh, ow) of a
// stride-1 3x3 convolution is position oh*wp+ow of a row convolution over
// it, so a whole plane is one row-kernel call with no border cases; the
// wp-ow0 positions per row that wrap around are discarded.
func (g *dwGeom) padPlane(x []float32, sc *dwScratch) (wp int) {
	wp = g.w + 2*g.pw
	clear(sc.pad)
	for ih := range g.h {
		copy(sc.pad[(ih+g.ph)*wp+g.pw:][:g.w], x[ih*g.w:(ih+1)*g.w])
	}
	return wp
}

// rows returns the three input rows under output row oh, the zero row for
// rows outside the image.
func (g *dwGeom) rows(x, zero []float32, oh int) (r0, r1, r2 []float32) {
	ih := oh*g.s - g.ph
	r0, r1, r2 = zero, zero, zero
	if ih >= 0 && ih < g.h {
		r0 = x[ih*g.w : (ih+1)*g.w]
	}
	if ih+1 >= 0 && ih+1 < g.h {
		r1 = x[(ih+1)*g.w : (ih+2)*g.w]
	}
	if ih+2 >= 0 && ih+2 < g.h {
		r2 = x[(ih+2)*g.w : (ih+3)*g.w]
	}
	return r0, r1, r2
}

// dw3x3Forward computes one output plane y = b + x (*) w, or adds it to y
// when acc is set (the stride-1 backward-data pass is a forward pass with
// the taps rotated).
func dw3x3Forward(g *dwGeom, x, w []float32, b float32, y []float32, sc *dwScratch, acc bool) {
	copy(sc.taps[:9], w[:9])
	sc.taps[9] = b
	if g.s == 1 {
		wp := g.padPlane(x, sc)
		dwRow3x3(1, sc.out, sc.pad, sc.pad[wp:], sc.pad[2*wp:], &sc.taps, false)
		for oh := range g.oh0 {
			src := sc.out[oh*wp:][:g.ow0]
			dst := y[oh*g.ow0:][:g.ow0]
			if !acc {
				copy(dst, src)
				continue
			}
			for i, v := range src {
				dst[i] += v
			}
		}
		return
	}
	s, pw, lo, hi := g.s, g.pw, g.lo, g.hi
	for oh := range g.oh0 {
		r0, r1, r2 := g.rows(x, sc.zero, oh)
		yrow := y[oh*g.ow0 : (oh+1)*g.ow0]
		if lo < hi {
			i := lo*s - pw
			dwRow3x3(s, yrow[lo:hi], r0[i:], r1[i:], r2[i:], &sc.taps, acc)
		}
		for ow := 0; ow < g.ow0; ow++ {
			if ow == lo && lo < hi {
				ow = hi - 1 // the row kernel did [lo, hi)
				continue
			}
			v := b
			for kw := range 3 {
				iw := ow*s - pw + kw
				if iw >= 0 && iw < g.w {
					v += w[kw]*r0[iw] + w[3+kw]*r1[iw] + w[6+kw]*r2[iw]
				}
			}
			if acc {
				yrow[ow] += v
			} else {
				yrow[ow] = v
			}
		}
	}
}

// dwRow3x3Generic computes one row's interior outputs:
// y[i] = w[9] + sum over kh, kw of w[kh*3+kw]*r_kh[s*i+kw], stored or (acc)
// added. Partial sums per input row keep the add chains short.
func dwRow3x3Generic(s int, y, r0, r1, r2 []float32, w *[10]float32, acc bool) {
	for i := range y {
		j := s * i
		a, c, d := r0[j:j+3:j+3], r1[j:j+3:j+3], r2[j:j+3:j+3]
		v0 := w[0]*a[0] + w[1]*a[1] + w[2]*a[2]
		v1 := w[3]*c[0] + w[4]*c[1] + w[5]*c[2]
		v2 := w[6]*d[0] + w[7]*d[1] + w[8]*d[2]
		v := w[9] + (v0 + v1 + v2)
		if acc {
			y[i] += v
		} else {
			y[i] = v
		}
	}
}

// dwRowGrad3x3Generic adds one row's interior contribution to the filter
// gradient: g[kh*3+kw] += sum over i of dy[i]*r_kh[s*i+kw].
func dwRowGrad3x3Generic(s int, dy, r0, r1, r2 []float32, g *[9]float32) {
	var g0, g1, g2, g3, g4, g5, g6, g7, g8 float32
	for i, d := range dy {
		j := s * i
		a, c, e := r0[j:j+3:j+3], r1[j:j+3:j+3], r2[j:j+3:j+3]
		g0 += d * a[0]
		g1 += d * a[1]
		g2 += d * a[2]
		g3 += d * c[0]
		g4 += d * c[1]
		g5 += d * c[2]
		g6 += d * e[0]
		g7 += d * e[1]
		g8 += d * e[2]
	}
	g[0] += g0
	g[1] += g1
	g[2] += g2
	g[3] += g3
	g[4] += g4
	g[5] += g5
	g[6] += g6
	g[7] += g7
	g[8] += g8
}

// dw3x3BackwardWeight adds one plane's filter gradient to dw:
// dw[kh][kw] += sum of dy[oh][ow] * x[oh*s-ph+kh][ow*s-pw+kw].
func dw3x3BackwardWeight(g *dwGeom, x, dy, dw []float32, sc *dwScratch) {
	gr := &sc.grad
	*gr = [9]float32{}
	if g.s == 1 {
		// dy on the padded grid, zero where the grid wraps around.
		wp := g.padPlane(x, sc)
		clear(sc.out)
		for oh := range g.oh0 {
			copy(sc.out[oh*wp:][:g.ow0], dy[oh*g.ow0:][:g.ow0])
		}
		dwRowGrad3x3(1, sc.out, sc.pad, sc.pad[wp:], sc.pad[2*wp:], gr)
		for i, v := range gr {
			dw[i] += v
		}
		return
	}
	s, pw, lo, hi := g.s, g.pw, g.lo, g.hi
	for oh := range g.oh0 {
		r0, r1, r2 := g.rows(x, sc.zero, oh)
		dyrow := dy[oh*g.ow0 : (oh+1)*g.ow0]
		if lo < hi {
			i := lo*s - pw
			dwRowGrad3x3(s, dyrow[lo:hi], r0[i:], r1[i:], r2[i:], gr)
		}
		for ow := 0; ow < g.ow0; ow++ {
			if ow == lo && lo < hi {
				ow = hi - 1
				continue
			}
			d := dyrow[ow]
			for kw := range 3 {
				iw := ow*s - pw + kw
				if iw >= 0 && iw < g.w {
					gr[kw] += d * r0[iw]
					gr[3+kw] += d * r1[iw]
					gr[6+kw] += d * r2[iw]
				}
			}
		}
	}
	for i, v := range gr {
		dw[i] += v
	}
}

// dw3x3S2BackwardData adds one plane's input gradient for stride 2 by
// scattering each dy row into the three dx rows under it.
func dw3x3S2BackwardData(g *dwGeom, dy, w, dx []float32) {
	pw, lo, hi := g.pw, g.lo, g.hi
	for oh := range g.oh0 {
		dyrow := dy[oh*g.ow0 : (oh+1)*g.ow0]
		for kh := range 3 {
			ih := 2*oh - g.ph + kh
			if ih < 0 || ih >= g.h {
				continue
			}
			row := dx[ih*g.w : (ih+1)*g.w]
			w0, w1, w2 := w[3*kh], w[3*kh+1], w[3*kh+2]
			for ow := lo; ow < hi; ow++ {
				d := dyrow[ow]
				i := 2*ow - pw
				r := row[i : i+3 : i+3]
				r[0] += w0 * d
				r[1] += w1 * d
				r[2] += w2 * d
			}
			for ow := 0; ow < g.ow0; ow++ {
				if ow == lo && lo < hi {
					ow = hi - 1
					continue
				}
				for kw := range 3 {
					if iw := 2*ow - pw + kw; iw >= 0 && iw < g.w {
						row[iw] += w[3*kh+kw] * dyrow[ow]
					}
				}
			}
		}
	}
}

// The row kernels in use (and im2col's stride-2 gather), set by
// setConvPath.
var (
	dwRow3x3     = dwRow3x3Generic
	dwRowGrad3x3 = dwRowGrad3x3Generic
	gatherEven   = gatherEvenGeneric
)

// dwFlipped3x3 describes the stride-1 backward-data pass as a forward
// pass over dy: same kernel rotated 180 degrees, complementary padding.
func dwFlipped3x3(p *ConvParams) (ConvParams, bool) {
	if p.StrideH != 1 || p.PadH > 2 || p.PadW > 2 {
		return ConvParams{}, false
	}
	q := *p
	q.H, q.W = p.OutH(), p.OutW()
	q.PadH, q.PadW = 2-p.PadH, 2-p.PadW
	return q, true
}
