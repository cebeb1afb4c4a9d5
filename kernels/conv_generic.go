package kernels

// The pure-Go pieces of 2-D convolution (docs/DESIGN.md, "Kernels": conv by
// im2col / implicit GEMM, direct depthwise): unfolding the input into
// columns and folding gradients back, and the direct depthwise kernels
// for any kernel size, stride, padding and dilation. They work one tap
// (kh, kw) at a time over whole output rows, so no inner loop tests bounds.

// convGeneric is the generic path's convolution table: the Go plane, row
// and gather loops, no direct micro-kernels.
var convGeneric = convKernels{
	dwPlane:     dwPlaneGeneric,
	dwPlaneGrad: dwPlaneGradGeneric,
	dwRow:       dwRowGeneric,
	dwRowGrad:   dwRowGradGeneric,
	gatherEven:  gatherEvenGeneric,
}

// validRange returns the output positions [lo, hi) of a row of out
// positions whose input index o*stride+off falls inside [0, in).
func validRange(out, stride, off, in int) (lo, hi int) {
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	if in-1-off < 0 {
		return 0, 0
	}
	hi = min(out, (in-1-off)/stride+1)
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// im2col unfolds columns [q0, q0+nq) of the unfolded input of one group
// into col. Column q is output position (n, oh, ow) flattened over the
// batch, so small images share one wide slab; row r = (c*KH+kh)*KW+kw
// holds x[n][c][oh*sh-ph+kh*dh][ow*sw-pw+kw*dw] (zero outside) at
// col[r*nq+q-q0]. x starts at the group's first channel of image 0.
func im2col(p *ConvParams, x []float32, cg, q0, nq int, col []float32) {
	oh0, ow0 := p.OutH(), p.OutW()
	ohw := oh0 * ow0
	hw := p.H * p.W
	img := p.C * hw
	n0, oh00, ow00 := q0/ohw, q0%ohw/ow0, q0%ow0 // position of column q0
	for c := range cg {
		for kh := range p.KH {
			for kw := range p.KW {
				r := (c*p.KH+kh)*p.KW + kw
				dst := col[r*nq : (r+1)*nq]
				offW := kw*p.DilW - p.PadW
				lo, hi := validRange(ow0, p.StrideW, offW, p.W)
				// Walk the slab one output row segment at a time,
				// tracking (n, oh, ow) instead of dividing.
				n, oh, a0 := n0, oh00, ow00
				for q := 0; q < nq; {
					a1 := min(ow0, a0+nq-q)
					seg := dst[q : q+a1-a0]
					q += a1 - a0
					ih := oh*p.StrideH - p.PadH + kh*p.DilH
					a, b := max(lo, a0), min(hi, a1)
					if ih < 0 || ih >= p.H || a >= b {
						zero(seg)
					} else {
						xrow := x[n*img+c*hw+ih*p.W:][:p.W]
						zero(seg[:a-a0])
						zero(seg[b-a0:])
						switch p.StrideW {
						case 1:
							src := xrow[a+offW : b+offW]
							if len(src) < 16 {
								// Short rows (late layers): a call to
								// memmove costs more than the copy.
								d := seg[a-a0 : b-a0]
								//lint:ignore S1001 measured: the loop beats memmove below 16 elements
								for i := range src {
									d[i] = src[i]
								}
							} else {
								copy(seg[a-a0:b-a0], src)
							}
						case 2:
							active.conv.gatherEven(seg[a-a0:b-a0], xrow[2*a+offW:])
						default:
							for ow := a; ow < b; ow++ {
								seg[ow-a0] = xrow[ow*p.StrideW+offW]
							}
						}
					}
					a0 = 0
					if oh++; oh == oh0 {
						oh, n = 0, n+1
					}
				}
			}
		}
	}
}

// zero clears a short slice in place (the borders of im2col rows are
// a float or two, for which a call to memclr costs more than the stores).
func zero(s []float32) {
	if len(s) > 16 {
		clear(s)
		return
	}
	for i := 0; i < len(s); i++ {
		s[i] = 0
	}
}

// gatherEvenGeneric sets dst[i] = src[2*i]: an im2col row segment of a
// stride-2 convolution.
func gatherEvenGeneric(dst, src []float32) {
	for i := range dst {
		dst[i] = src[2*i]
	}
}

// col2im is the adjoint of im2col: it adds col's columns [s0, s0+ns) back
// into the cg input planes dx.
func col2im(p *ConvParams, col []float32, cg, s0, ns int, dx []float32) {
	ow0 := p.OutW()
	hw := p.H * p.W
	for c := range cg {
		xp := dx[c*hw : (c+1)*hw]
		for kh := range p.KH {
			for kw := range p.KW {
				r := (c*p.KH+kh)*p.KW + kw
				src := col[r*ns : (r+1)*ns]
				offW := kw*p.DilW - p.PadW
				lo, hi := validRange(ow0, p.StrideW, offW, p.W)
				for s := s0; s < s0+ns; {
					oh := s / ow0
					a0 := s - oh*ow0
					a1 := min(ow0, a0+s0+ns-s)
					seg := src[s-s0 : s-s0+a1-a0]
					s += a1 - a0
					ih := oh*p.StrideH - p.PadH + kh*p.DilH
					a, b := max(lo, a0), min(hi, a1)
					if ih < 0 || ih >= p.H || a >= b {
						continue
					}
					xrow := xp[ih*p.W : (ih+1)*p.W]
					if p.StrideW == 1 {
						d := xrow[a+offW : b+offW]
						for i, v := range seg[a-a0 : b-a0] {
							d[i] += v
						}
						continue
					}
					for ow := a; ow < b; ow++ {
						xrow[ow*p.StrideW+offW] += seg[ow-a0]
					}
				}
			}
		}
	}
}

// dwPlaneForwardGeneric computes one depthwise output plane y (OH x OW)
// from input plane x and the plane's KH x KW filter w, plus bias b.
func dwPlaneForwardGeneric(p *ConvParams, x, w []float32, b float32, y []float32) {
	oh0, ow0 := p.OutH(), p.OutW()
	for i := range y[:oh0*ow0] {
		y[i] = b
	}
	for kh := range p.KH {
		for kw := range p.KW {
			wv := w[kh*p.KW+kw]
			offW := kw*p.DilW - p.PadW
			lo, hi := validRange(ow0, p.StrideW, offW, p.W)
			if lo >= hi {
				continue
			}
			for oh := range oh0 {
				ih := oh*p.StrideH - p.PadH + kh*p.DilH
				if ih < 0 || ih >= p.H {
					continue
				}
				xrow := x[ih*p.W : (ih+1)*p.W]
				yrow := y[oh*ow0+lo : oh*ow0+hi]
				for i := range yrow {
					yrow[i] += wv * xrow[(lo+i)*p.StrideW+offW]
				}
			}
		}
	}
}

// dwPlaneBackwardDataGeneric adds the gradient of one depthwise plane to
// its input: dx[ih][iw] += w[kh][kw] * dy[oh][ow].
func dwPlaneBackwardDataGeneric(p *ConvParams, dy, w, dx []float32) {
	oh0, ow0 := p.OutH(), p.OutW()
	for kh := range p.KH {
		for kw := range p.KW {
			wv := w[kh*p.KW+kw]
			offW := kw*p.DilW - p.PadW
			lo, hi := validRange(ow0, p.StrideW, offW, p.W)
			if lo >= hi {
				continue
			}
			for oh := range oh0 {
				ih := oh*p.StrideH - p.PadH + kh*p.DilH
				if ih < 0 || ih >= p.H {
					continue
				}
				xrow := dx[ih*p.W : (ih+1)*p.W]
				dyrow := dy[oh*ow0+lo : oh*ow0+hi]
				for i, d := range dyrow {
					xrow[(lo+i)*p.StrideW+offW] += wv * d
				}
			}
		}
	}
}

// dwPlaneBackwardWeightGeneric adds one plane's filter gradient:
// dw[kh][kw] += sum over (oh, ow) of dy[oh][ow] * x[ih][iw].
func dwPlaneBackwardWeightGeneric(p *ConvParams, x, dy, dw []float32) {
	oh0, ow0 := p.OutH(), p.OutW()
	for kh := range p.KH {
		for kw := range p.KW {
			offW := kw*p.DilW - p.PadW
			lo, hi := validRange(ow0, p.StrideW, offW, p.W)
			if lo >= hi {
				continue
			}
			var s float32
			for oh := range oh0 {
				ih := oh*p.StrideH - p.PadH + kh*p.DilH
				if ih < 0 || ih >= p.H {
					continue
				}
				xrow := x[ih*p.W : (ih+1)*p.W]
				dyrow := dy[oh*ow0+lo : oh*ow0+hi]
				for i, d := range dyrow {
					s += d * xrow[(lo+i)*p.StrideW+offW]
				}
			}
			dw[kh*p.KW+kw] += s
		}
	}
}
