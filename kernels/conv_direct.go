package kernels

import (
	"fmt"
	"slices"
)

// The direct convolution path: no unfolded input at all, packed or not.
//
// The input planes of one image are copied once into a zero-framed buffer,
// split by column phase for a strided convolution (phase ph of a padded
// row holds its columns ph, ph+s, ph+2s, ...). In that buffer the input
// that tap (c, kh, kw) reads for eight outputs of one output row is eight
// consecutive floats, off[c,kh,kw] after where the group's first tap
// starts. A micro-kernel multiplies a packed panel of weights (all of
// K = C/G*KH*KW, no k blocking) by sixteen such outputs read in place and
// writes the h x 16 tile straight into y: no B packing, no output tile to
// copy back, and only the rows the layer has are computed. It serves
// output planes whose width is a multiple of 8 and size a multiple of 16
// (ResNet-20's 32x32, 16x16 and 8x8; ResNet-18's 112 and 56).

// convDirectMicro[set][h] is the direct micro-kernel for h (1..gemmMR)
// rows, storing the tile (set) or adding it; nil on paths without one.
//
// convDirectMicro[set][h](kc, a, x, off, d, c, ldc) takes the tile's rows
// 0..h-1 of the packed panel a (a[p*gemmMR+i]) times B, where B[p][j] is
// x[off[p]+j] for j < 8 and x[d+off[p]+j-8] for 8 <= j < 16, into
// c[i*ldc+j].
var convDirectMicro *[2][maxMR + 1]func(kc int, a, x []float32, off []int32, d int, c []float32, ldc int)

// convDirectGeneric is the definition of the direct micro-kernel.
func convDirectGeneric(h int, set bool, kc int, a, x []float32, off []int32, d int, c []float32, ldc int) {
	var acc [maxMR][16]float32
	for p := range kc {
		o := int(off[p])
		lo, hi := x[o:][:8], x[d+o:][:8]
		for i := range h {
			ai := a[p*gemmMR+i]
			for j, v := range lo {
				acc[i][j] += ai * v
			}
			for j, v := range hi {
				acc[i][8+j] += ai * v
			}
		}
	}
	for i := range h {
		row := c[i*ldc:][:16]
		for j := range row {
			if set {
				row[j] = acc[i][j]
			} else {
				row[j] += acc[i][j]
			}
		}
	}
}

// useDirect reports whether the forward convolution p runs on the direct
// path.
func useDirect(p *ConvParams) bool {
	if convDirectMicro == nil || p.pointwise() || p.depthwise() {
		return false
	}
	oh0, ow0 := p.OutH(), p.OutW()
	if ow0%8 != 0 || oh0*ow0%16 != 0 {
		return false
	}
	s := p.StrideW
	wq := (p.W + 2*p.PadW + s - 1) / s
	return int64(p.C/p.Groups)*int64(s)*int64(p.H+2*p.PadH)*int64(wq) < 1<<31
}

// setDirect fills the direct path's geometry of j.p: the phase buffer's
// shape and every tap's offset in it.
func (j *convJob) setDirect() {
	p := &j.p
	s := p.StrideW
	j.dHp = p.H + 2*p.PadH
	j.dWq = (p.W + 2*p.PadW + s - 1) / s
	plane := j.dHp * j.dWq
	j.dOff = j.dOff[:0]
	for c := range p.C / p.Groups {
		for kh := range p.KH {
			for kw := range p.KW {
				col := kw * p.DilW
				o := (c*s+col%s)*plane + kh*p.DilH*j.dWq + col/s
				j.dOff = append(j.dOff, int32(o))
			}
		}
	}
	// Tasks: whole images when there are enough to share out, else
	// runs of tiles (each task then fills its image's buffer itself).
	images := p.N * p.Groups
	tiles := p.OutH() * p.OutW() / 16
	j.tileChunks = 1
	if w := parWorkers(); images < 2*w {
		j.tileChunks = min(tiles, (2*w+images-1)/images)
	}
	// The micro-kernel trusts its reads: the last tile's second group
	// reaches furthest.
	ohw := p.OutH() * p.OutW()
	if reach := j.directBase(ohw-8) + int(slices.Max(j.dOff)) + 8; reach > (p.C/p.Groups)*s*plane {
		panic(fmt.Sprintf("kernels: direct convolution reads %d floats of a %d-float buffer", reach, (p.C/p.Groups)*s*plane))
	}
}

// directBase is where, in the phase buffer, output pixel q (of one plane)
// reads its first tap.
func (j *convJob) directBase(q int) int {
	ow0 := j.p.OutW()
	return q/ow0*j.p.StrideH*j.dWq + q%ow0
}

// fillPhases copies the cg input planes x into the phase buffer buf,
// whose frame is already zero: row r, phase ph, column i holds padded
// column ph + s*i of padded row r.
func (j *convJob) fillPhases(x, buf []float32) {
	p := &j.p
	s := p.StrideW
	hp, wq := j.dHp, j.dWq
	for c := range p.C / p.Groups {
		for ih := range p.H {
			row := x[(c*p.H+ih)*p.W:][:p.W]
			for ph := range s {
				// Padded column ph + s*i is input column ph + s*i - PadW.
				i0 := max(0, (p.PadW-ph+s-1)/s)
				x0 := ph + s*i0 - p.PadW
				if x0 >= p.W {
					continue
				}
				n := (p.W - x0 + s - 1) / s
				dst := buf[((c*s+ph)*hp+ih+p.PadH)*wq+i0:][:n]
				switch s {
				case 1:
					copy(dst, row)
				case 2:
					gatherEven(dst, row[x0:])
				default:
					for i := range dst {
						dst[i] = row[x0+s*i]
					}
				}
			}
		}
	}
}

// forwardDirect computes tasks [lo, hi) of the direct path: task t is
// run t%tileChunks of the 16-output tiles of image-group t/tileChunks.
func (j *convJob) forwardDirect(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	ohw := p.OutH() * p.OutW()
	tiles := ohw / 16
	buf := getScratch(cg * p.StrideW * j.dHp * j.dWq)
	clear(*buf) // the frame stays zero; fillPhases rewrites the rest
	set := 0
	if j.beta == 0 {
		set = 1
	}
	micro := &convDirectMicro[set]
	for t := lo; t < hi; t++ {
		img, chunk := t/j.tileChunks, t%j.tileChunks
		n, g := img/p.Groups, img%p.Groups
		j.fillPhases(j.x[(n*p.C+g*cg)*p.H*p.W:], *buf)
		t0, t1 := chunk*tiles/j.tileChunks, (chunk+1)*tiles/j.tileChunks
		y := j.y[(n*p.K+g*kg)*ohw:][:kg*ohw]
		if j.beta != 0 && j.beta != 1 {
			for k := range kg {
				scaleMatrix(1, (t1-t0)*16, j.beta, y[k*ohw+t0*16:], ohw)
			}
		}
		a := j.w[g*j.packedSize:]
		mPad := roundUp(kg, gemmMR)
		kb := kBlock(rows)
		for tile := t0; tile < t1; tile++ {
			q := tile * 16
			b := j.directBase(q)
			d := j.directBase(q+8) - b
			// k blocks as packWholeA laid them out: the panel and the
			// input it reads share L1.
			for pc := 0; pc < rows; pc += kb {
				kc := min(kb, rows-pc)
				m := micro
				if pc > 0 {
					m = &convDirectMicro[0]
				}
				for i := 0; i < kg; i += gemmMR {
					h := min(gemmMR, kg-i)
					m[h](kc, a[mPad*pc+i*kc:][:gemmMR*kc], (*buf)[b:], j.dOff[pc:pc+kc], d, y[i*ohw+q:], ohw)
				}
			}
		}
		for k := range kg {
			j.finish(g*kg+k, y[k*ohw+t0*16:k*ohw+t1*16])
		}
	}
	putScratch(buf)
}

// finish adds channel ch's bias to a computed run of y and applies the
// epilogue.
func (j *convJob) finish(ch int, y []float32) {
	if j.bias != nil && j.bias[ch] != 0 {
		addScalarRange(j.bias[ch], y, y)
	}
	j.epi.apply(ch, y)
}
