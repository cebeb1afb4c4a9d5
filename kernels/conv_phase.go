package kernels

// The phase buffer (docs/DESIGN.md, "Kernels"): one image-group's input,
// zero-framed and split by stride phase, so that every tap of a strided
// convolution reads its outputs' inputs as consecutive floats. The direct
// route reads it in place for the micro-kernel, the padded routes pack
// their GEMM's rows (or, backward, add them) as shifted windows of it.

import "slices"

// setPhases fills the geometry of the phase buffer (used by the direct
// and the padded paths): the input of one image-group, zero-framed and
// split by stride phase in both directions, so that with output rows
// dWq floats apart, the input tap (c, kh, kw) reads for output (oh, ow)
// is at dOff[c,kh,kw] + oh*dWq + ow (also in rowOff, as int). Phase
// (ph, pw) of channel c holds the padded input's rows ph, ph+sh, ...
// and columns pw, pw+sw, ....
func (j *convJob) setPhases() {
	p := &j.p
	sh, sw := p.StrideH, p.StrideW
	j.dHq = (p.H + 2*p.PadH + sh - 1) / sh
	j.dWq = (p.W + 2*p.PadW + sw - 1) / sw
	plane := j.dHq * j.dWq
	// Padded column pw + sw*i is input column pw + sw*i - PadW.
	j.dFill = j.dFill[:0]
	for pw := range sw {
		i0 := max(0, (p.PadW-pw+sw-1)/sw)
		x0 := pw + sw*i0 - p.PadW
		j.dFill = append(j.dFill, phaseFill{i0, x0, max(0, (p.W-x0+sw-1)/sw)})
	}
	j.dOff, j.rowOff = j.dOff[:0], j.rowOff[:0]
	for c := range p.C / p.Groups {
		for kh := range p.KH {
			for kw := range p.KW {
				row, col := kh*p.DilH, kw*p.DilW
				o := ((c*sh+row%sh)*sw+col%sw)*plane + row/sh*j.dWq + col/sw
				j.dOff = append(j.dOff, int32(o))
				j.rowOff = append(j.rowOff, o)
			}
		}
	}
	j.dLen = (p.C / p.Groups) * sh * sw * plane
}

// phaseSpan is the phase buffer's length for a GEMM over cols columns
// an image that reads the buffer's rows in place: the row of the last
// tap starts at the largest offset and a wrapped-around column reaches
// up to a row past the planes.
func (j *convJob) phaseSpan(cols int) int {
	return max(j.dLen, int(slices.Max(j.dOff))+cols)
}

// toGrid lays the K/Groups output planes dy of one image-group on the
// phase buffer's output grid: row oh of plane k at grid[k*ld+oh*dWq:].
// The wrapped-around columns between rows are not written (they stay
// zero).
func (j *convJob) toGrid(grid []float32, ld int, dy []float32) {
	oh0, ow0 := j.p.OutH(), j.p.OutW()
	for k := range j.p.K / j.p.Groups {
		for oh := range oh0 {
			copy(grid[k*ld+oh*j.dWq:][:ow0], dy[(k*oh0+oh)*ow0:][:ow0])
		}
	}
}

// fillPhases copies the cg input planes x into the phase buffer buf
// (see setPhases), whose frame is already zero.
func (j *convJob) fillPhases(x, buf []float32) { j.phaseRows(x, buf, false) }

// foldPhases adds the phase buffer buf back into the cg input planes dx:
// the adjoint of fillPhases, the frame dropped.
func (j *convJob) foldPhases(buf, dx []float32) { j.phaseRows(dx, buf, true) }

// phaseRows pairs each row of the cg planes x with where it lies in the
// phase buffer and copies it there (fillRow) or, with fold, adds the
// buffer's row back into it (foldRow).
func (j *convJob) phaseRows(x, buf []float32, fold bool) {
	p := &j.p
	sh, sw := p.StrideH, p.StrideW
	plane := j.dHq * j.dWq
	row := func(b, xr []float32) {
		if fold {
			foldRow(xr, b, sw)
		} else {
			fillRow(b, xr, sw)
		}
	}
	for c := range p.C / p.Groups {
		src := x[c*p.H*p.W:][:p.H*p.W]
		for pw, f := range j.dFill {
			if f.n == 0 {
				continue
			}
			col := ((c*sh)*sw+pw)*plane + f.i0
			if sh == 1 {
				// One row phase: rows dWq apart (no per-row index math:
				// this loop is a tenth of a small-channel convolution).
				dst := buf[col+p.PadH*j.dWq:]
				for ih := range p.H {
					row(dst[ih*j.dWq:][:f.n], src[ih*p.W+f.x0:])
				}
				continue
			}
			// Padded row ih+PadH is row i of row phase ph.
			ph, i := p.PadH%sh, p.PadH/sh
			for ih := range p.H {
				row(buf[col+ph*sw*plane+i*j.dWq:][:f.n], src[ih*p.W+f.x0:])
				if ph++; ph == sh {
					ph, i = 0, i+1
				}
			}
		}
	}
}

// foldRow adds d[i] to row[s*i].
func foldRow(row, d []float32, s int) {
	if s == 1 {
		row = row[:len(d)]
		active.elementwise.add(row, row, d)
		return
	}
	_ = row[s*(len(d)-1)]
	for i, v := range d {
		row[s*i] += v
	}
}

// fillRow sets d[i] = row[s*i].
func fillRow(d, row []float32, s int) {
	switch s {
	case 1:
		copy(d, row)
	case 2:
		active.conv.gatherEven(d, row)
	default:
		for i := range d {
			d[i] = row[s*i]
		}
	}
}

// phaseFill is what one row of input fills of one phase of the buffer:
// n floats from column i0 on, read from input column x0 every stride.
type phaseFill struct{ i0, x0, n int }
