package kernels

import "slices"

// The direct convolution path: no unfolded input at all, packed or not.
//
// The input planes of one image are copied once into a zero-framed buffer,
// split by stride phase for a strided convolution (see setPhases). In
// that buffer the input that tap (c, kh, kw) reads for eight outputs of
// one output row is eight consecutive floats, off[c,kh,kw] after where
// the group's first tap starts. A micro-kernel multiplies packed panels
// of weights (a k block of K = C/G*KH*KW, every output channel) by
// sixteen such outputs read in place and writes the tiles straight into
// y: no B packing, no output tile to copy back, and only the rows the
// layer has are computed (panels of 6 and 5, directSplit). An output row
// is cut into groups of 8 outputs, the last one partial when the width is
// not a multiple of 8, and a tile is two consecutive groups; tiles that
// are not one whole run of 16 outputs go through the masked kernel. It
// serves widths that are multiples of 8 (ResNet-20's 32x32, 16x16 and
// 8x8 on CIFAR; ResNet-18's 112 and 56) and, for layers with few output
// channels, planes where partial groups leave at most an eighth of the
// lanes idle (ResNet-20's 28 and 14 wide planes on Fashion-MNIST).

// convDirectMicro[set][tail], when set (AVX2), runs the direct
// micro-kernel over a column of weight panels, storing the tiles (set) or
// adding them:
//
//	convDirectMicro[set][tail](kc, panels, tails, a, x, off, d, c, ldc)
//
// multiplies panels full directMR-row packed panels of a (a[p*directMR+i],
// directMR*kc floats apart) and then the first tail rows of each of the
// next tails panels by the kc x 16 matrix B[p][j] = x[off[p]+j] for j < 8,
// x[d+off[p]+j-8] for j >= 8, into the rows c[i*ldc:][:16].
var convDirectMicro *[2][directMR]func(kc, panels, tails int, a, x []float32, off []int32, d int, c []float32, ldc int)

// convDirectMasked[set][tail], when set (AVX2), is convDirectMicro for a
// tile of two groups that are not one run of 16 outputs, or not whole:
//
//	convDirectMasked[set][tail](kc, panels, tails, a, x, off, d, c, ldc, e, mask)
//
// stores (or adds) the first eight columns of each C row at c[i*ldc:] and
// the next eight at c[i*ldc+e:], only in the lanes j where mask[j] is -1
// (mask has 16 words; directMasks holds them all).
var convDirectMasked *[2][directMR]func(kc, panels, tails int, a, x []float32, off []int32, d int, c []float32, ldc, e int, mask []int32)

// directMaskedMaxK is the most output channels per group for which a
// plane that needs masked tiles takes the direct path. One core, 3x3
// stride 1, forward and backward to the input, alternated: 16 channels at
// 28 wide 1.3-2.3x, 32 at 14 1.1-1.6x, 48 at 28 1.0-1.5x, 64 at 28
// 1.0-1.2x, 64 at 14 0.7-1.3x, 96 at 14 0.8-1.0x, 128 at 28 0.8-1.2x.
const directMaskedMaxK = 64

// directMasks[n1][n2] selects the first n1 lanes of a tile's first group
// and the first n2 of its second.
var directMasks = func() (m [9][9][16]int32) {
	for n1 := range 9 {
		for n2 := range 9 {
			for j := range 8 {
				if j < n1 {
					m[n1][n2][j] = -1
				}
				if j < n2 {
					m[n1][n2][8+j] = -1
				}
			}
		}
	}
	return m
}()

// directMR is the panel height the direct micro-kernels are built for;
// the path runs only when gemmMR matches.
const directMR = 6

// directSplit cuts kg output channels into panels of 6 rows and then
// tails panels of tail rows, preferring tails of 5 (16 = 6+5+5, 32 =
// 6+6+5+5+5+5): a 4-row panel runs 20% slower per row, fewer rows starve
// the FMA pipes worse.
func directSplit(kg int) (panels, tails, tail int) {
	if b := (directMR - kg%directMR) % directMR; kg >= 5*b {
		if b == 0 {
			return kg / directMR, 0, 0
		}
		return (kg - 5*b) / directMR, b, 5
	}
	if kg%directMR == 0 {
		return kg / directMR, 0, 0
	}
	return kg / directMR, 1, kg % directMR
}

// packDirectA packs the kg x rows weights w (row-major) for the direct
// micro-kernel, split as directSplit says, in k blocks of kb rows: block
// pc starts at dst[np*directMR*pc] (np panels) and holds its panels in
// order, each directMR*kc floats, k-major, the unused rows zero.
func packDirectA(kg, rows, kb int, w, dst []float32) {
	full, tails, tail := directSplit(kg)
	np := full + tails
	for pc := 0; pc < rows; pc += kb {
		kc := min(kb, rows-pc)
		blk := dst[np*directMR*pc:][:np*directMR*kc]
		for pn := range np {
			r0, h := pn*directMR, directMR
			if pn >= full {
				r0, h = full*directMR+(pn-full)*tail, tail
			}
			pan := blk[pn*directMR*kc:][:directMR*kc]
			clear(pan)
			for i := range h {
				src := w[(r0+i)*rows+pc:][:kc]
				for k, v := range src {
					pan[k*directMR+i] = v
				}
			}
		}
	}
}

// convDirectGeneric is the definition of the direct micro-kernels: with
// mask nil that of convDirectMicro (the second group right after the
// first), else that of convDirectMasked.
func convDirectGeneric(set bool, kc, panels, tails, tail int, a, x []float32, off []int32, d int, c []float32, ldc, e int, mask []int32) {
	if mask == nil {
		e = 8
	}
	for pn := range panels + tails {
		h, r0 := directMR, pn*directMR
		if pn >= panels {
			h, r0 = tail, panels*directMR+(pn-panels)*tail
		}
		ap, cp := a[pn*directMR*kc:], c[r0*ldc:]
		var acc [directMR][16]float32
		for p := range kc {
			o := int(off[p])
			lo, hi := x[o:][:8], x[d+o:][:8]
			for i := range h {
				ai := ap[p*directMR+i]
				for j, v := range lo {
					acc[i][j] += ai * v
				}
				for j, v := range hi {
					acc[i][8+j] += ai * v
				}
			}
		}
		for i := range h {
			for j := range 16 {
				if mask != nil && mask[j] == 0 {
					continue
				}
				at := i*ldc + j
				if j >= 8 {
					at += e - 8
				}
				if set {
					cp[at] = acc[i][j]
				} else {
					cp[at] += acc[i][j]
				}
			}
		}
	}
}

// useDirect reports whether the forward convolution p runs on the direct
// path.
func useDirect(p *ConvParams) bool {
	if !directKernels() || p.pointwise() || p.depthwise() {
		return false
	}
	oh0, ow0 := p.OutH(), p.OutW()
	tiles := (oh0*((ow0+7)/8) + 1) / 2
	switch {
	case ow0%8 == 0 && oh0*ow0%16 == 0: // whole runs of 16
	case convDirectMasked == nil && convDirectRows == nil || 8*oh0*ow0 < 7*16*tiles || p.K/p.Groups > directMaskedMaxK:
		// No masked kernel, more than an eighth of the lanes idle (7x7:
		// a quarter), or enough output channels that packing B costs
		// the GEMM paths less than the idle lanes and masked stores.
		return false
	}
	// The phase buffer (setPhases) must be indexable with int32.
	sh, sw := p.StrideH, p.StrideW
	hq, wq := (p.H+2*p.PadH+sh-1)/sh, (p.W+2*p.PadW+sw-1)/sw
	return int64(p.C/p.Groups)*int64(sh*sw)*int64(hq)*int64(wq) < 1<<31
}

// directKernels reports whether the path has direct micro-kernels: the
// variable-height ones, or those of panels of directMR rows when the
// GEMM's panels are as tall (they share the packed size).
func directKernels() bool {
	return convDirectRows != nil || convDirectMicro != nil && gemmMR == directMR
}

// packDirect packs one group's kg x rows weights for the direct kernels
// of the path, in k blocks of kb rows.
func packDirect(kg, rows, kb int, w, dst []float32) {
	if convDirectRows != nil {
		packDirectRowsA(kg, rows, kb, w, dst)
		return
	}
	packDirectA(kg, rows, kb, w, dst)
}

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

// setDirect readies the direct path: the phase buffer and its tasks.
func (j *convJob) setDirect() {
	p := &j.p
	j.setPhases()
	// Tasks: whole images when there are enough to share out, else
	// runs of tiles (each task then fills its image's buffer itself).
	images := p.N * p.Groups
	j.rowGroups = (p.OutW() + 7) / 8
	groups := p.OutH() * j.rowGroups
	j.tiles = (groups + 1) / 2
	j.tileChunks = 1
	if w := parWorkers(); images < 2*w {
		j.tileChunks = min(j.tiles, (2*w+images-1)/images)
	}
	// The micro-kernel reads eight floats per group and tap, past the
	// row's end for a partial group (those lanes are never stored): the
	// buffer gets room for the last group's reads.
	_, b, _ := j.directGroup(groups - 1)
	j.dCap = max(j.dLen, b+int(slices.Max(j.dOff))+8)
}

// directGroup returns where group g of a plane (8 outputs of one row, in
// row order) starts in the output plane and in the phase buffer (where
// it reads its first tap), and how many outputs it has.
func (j *convJob) directGroup(g int) (q, b, n int) {
	return j.groupAt(g/j.rowGroups, g%j.rowGroups)
}

// groupAt is directGroup of group gi of output row oh.
func (j *convJob) groupAt(oh, gi int) (q, b, n int) {
	ow0, col := j.p.OutW(), 8*gi
	return oh*ow0 + col, oh*j.dWq + col, min(8, ow0-col)
}

// tileStart is the first output of tile t of a plane (its size for t
// past the last tile).
func (j *convJob) tileStart(t int) int {
	if 2*t >= j.p.OutH()*j.rowGroups {
		return j.p.OutH() * j.p.OutW()
	}
	q, _, _ := j.directGroup(2 * t)
	return q
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
		addImpl(row, row, d)
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
		gatherEven(d, row)
	default:
		for i := range d {
			d[i] = row[s*i]
		}
	}
}

// phaseFill is what one row of input fills of one phase of the buffer:
// n floats from column i0 on, read from input column x0 every stride.
type phaseFill struct{ i0, x0, n int }

// forwardDirect computes tasks [lo, hi) of the direct path: task t is
// run t%tileChunks of the tiles of image-group t/tileChunks.
func (j *convJob) forwardDirect(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	rows := cg * p.KH * p.KW
	ohw := p.OutH() * p.OutW()
	groups := p.OutH() * j.rowGroups
	buf := getScratch(j.dCap)
	clear(*buf) // the frame stays zero; fillPhases rewrites the rest
	set := 0
	if j.beta == 0 {
		set = 1
	}
	mPad := roundUp(kg, directMR)
	full, tails, tail := directSplit(kg)
	kb := kBlock(rows)
	for t := lo; t < hi; t++ {
		img, chunk := t/j.tileChunks, t%j.tileChunks
		n, g := img/p.Groups, img%p.Groups
		j.fillPhases(j.x[(n*p.C+g*cg)*p.H*p.W:], *buf)
		t0, t1 := chunk*j.tiles/j.tileChunks, (chunk+1)*j.tiles/j.tileChunks
		q0, q1 := j.tileStart(t0), j.tileStart(t1)
		y := j.y[(n*p.K+g*kg)*ohw:][:kg*ohw]
		if j.beta != 0 && j.beta != 1 {
			for k := range kg {
				scaleMatrix(1, q1-q0, j.beta, y[k*ohw+q0:], ohw)
			}
		}
		a := j.w[g*j.packedSize:]
		// The tiles' groups in row order, without a division per tile.
		oh, gi := 2*t0/j.rowGroups, 2*t0%j.rowGroups
		next := func() {
			if gi++; gi == j.rowGroups {
				oh, gi = oh+1, 0
			}
		}
		for tile := t0; tile < t1; tile++ {
			q, b, n1 := j.groupAt(oh, gi)
			next()
			q2, b2, n2 := q, b, 0 // an odd last group: no second one
			if 2*tile+1 < groups {
				q2, b2, n2 = j.groupAt(oh, gi)
				next()
			}
			if convDirectRows != nil {
				j.directRowsTile(a, (*buf)[b:], y[q:], set, rows, kb, b2-b, q2-q, n1, n2)
				continue
			}
			whole := n1 == 8 && n2 == 8 && q2 == q+8
			// k blocks as packDirectA laid them out: a panel and the
			// input it reads share L1.
			for pc := 0; pc < rows; pc += kb {
				kc := min(kb, rows-pc)
				s := set
				if pc > 0 {
					s = 0
				}
				ap, x, off := a[mPad*pc:][:mPad*kc], (*buf)[b:], j.dOff[pc:pc+kc]
				if whole {
					convDirectMicro[s][tail](kc, full, tails, ap, x, off, b2-b, y[q:], ohw)
				} else {
					convDirectMasked[s][tail](kc, full, tails, ap, x, off, b2-b, y[q:], ohw, q2-q, directMasks[n1][n2][:])
				}
			}
		}
		for k := range kg {
			j.finish(g*kg+k, y[k*ohw+q0:k*ohw+q1])
		}
	}
	putScratch(buf)
}

// directRowsTile computes one tile of the direct path with the
// convDirectRows kernels: the group of n1 outputs at y and x and that of
// n2 at y[e:] and x[d:], every output channel, in k blocks of kb rows as
// packDirectRowsA laid them out; set stores the first k block.
func (j *convJob) directRowsTile(a, x, y []float32, set, rows, kb, d, e, n1, n2 int) {
	kg := j.p.K / j.p.Groups
	ohw := j.p.OutH() * j.p.OutW()
	pair := 1
	if d == 8 && e == 8 {
		pair = 0 // one run of 16: one load a tap
	}
	mask := (1<<n1 - 1) | (1<<n2-1)<<8
	p1, h1, p2 := directRowsSplit(kg)
	for pc := 0; pc < rows; pc += kb {
		kc := min(kb, rows-pc)
		s := set
		if pc > 0 {
			s = 0
		}
		ap, off := a[kg*pc:][:kg*kc], j.dOff[pc:pc+kc]
		k := &convDirectRows[s][pair]
		k[h1](kc, p1, ap, x, off, d, y, ohw, e, mask)
		if p2 > 0 {
			k[h1-1](kc, p2, ap[p1*h1*kc:], x, off, d, y[p1*h1*ohw:], ohw, e, mask)
		}
	}
}

// finish adds channel ch's bias to a computed run of y and applies the
// epilogue.
func (j *convJob) finish(ch int, y []float32) {
	if j.bias != nil && j.bias[ch] != 0 {
		addScalarRange(j.bias[ch], y, y)
	}
	j.epi.apply(ch, y)
}
