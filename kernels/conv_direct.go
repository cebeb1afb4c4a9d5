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

// directKernel is a direct micro-kernel, convKernels.direct[set][tail]:
// it runs over a column of weight panels, storing the tiles (set) or
// adding them:
//
//	direct[set][tail](kc, panels, tails, a, x, off, d, c, ldc)
//
// multiplies panels full directMR-row packed panels of a (a[p*directMR+i],
// directMR*kc floats apart) and then the first tail rows of each of the
// next tails panels by the kc x 16 matrix B[p][j] = x[off[p]+j] for j < 8,
// x[d+off[p]+j-8] for j >= 8, into the rows c[i*ldc:][:16].
type directKernel func(kc, panels, tails int, a, x []float32, off []int32, d int, c []float32, ldc int)

// directMaskedKernel is a masked direct micro-kernel,
// convKernels.directMasked[set][tail]: directKernel for a tile of two
// groups that are not one run of 16 outputs, or not whole:
//
//	directMasked[set][tail](kc, panels, tails, a, x, off, d, c, ldc, e, mask)
//
// stores (or adds) the first eight columns of each C row at c[i*ldc:] and
// the next eight at c[i*ldc+e:], only in the lanes j where mask[j] is -1
// (mask has 16 words; directMasks holds them all).
type directMaskedKernel func(kc, panels, tails int, a, x []float32, off []int32, d int, c []float32, ldc, e int, mask []int32)

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
// the path runs only when its GEMM tile has as many rows.
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

// packDirectA packs k block pc (kc rows of K) of the kg x rows weights w
// (row-major) for the direct micro-kernel, split as directSplit says:
// the block starts at dst[np*directMR*pc] (np panels) and holds its
// panels in order, each directMR*kc floats, k-major, the unused rows
// zero.
func packDirectA(kg, rows, pc, kc int, w, dst []float32) {
	full, tails, tail := directSplit(kg)
	np := full + tails
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

// convDirectGeneric is the definition of the direct micro-kernels: with
// mask nil that of directKernel (the second group right after the
// first), else that of directMaskedKernel.
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
		lanes := 1<<16 - 1
		if mask != nil {
			lanes = 0
			for j, m := range mask[:16] {
				if m != 0 {
					lanes |= 1 << j
				}
			}
		}
		storeDirectRows(cp, acc[:h], ldc, e, lanes, set)
	}
}

// storeDirectRows stores (set) or adds the rows of acc, a direct tile of
// two groups of 8 outputs, to C: row i's lane j at c[i*ldc+j], the second
// group's e-8 floats further on, only the lanes j whose bit of mask is
// set (the definition of the direct kernels' stores).
func storeDirectRows(c []float32, acc [][16]float32, ldc, e, mask int, set bool) {
	for i := range acc {
		for j := range 16 {
			if mask&(1<<j) == 0 {
				continue
			}
			at := i*ldc + j
			if j >= 8 {
				at += e - 8
			}
			if set {
				c[at] = acc[i][j]
			} else {
				c[at] += acc[i][j]
			}
		}
	}
}

// setDirect readies the direct route: the phase buffer, and the tiles
// of each image cut into tileChunks runs (the plan's).
func (j *convJob) setDirect(tileChunks int) {
	p := &j.p
	j.setPhases()
	j.rowGroups = (p.OutW() + 7) / 8
	groups := p.OutH() * j.rowGroups
	j.tiles, j.tileChunks = (groups+1)/2, tileChunks
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
	kern := &active.conv
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
			if kern.directRows != nil {
				j.directRowsTile(kern.directRows, a, (*buf)[b:], y[q:], set, rows, kb, b2-b, q2-q, n1, n2)
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
					kern.direct[s][tail](kc, full, tails, ap, x, off, b2-b, y[q:], ohw)
				} else {
					kern.directMasked[s][tail](kc, full, tails, ap, x, off, b2-b, y[q:], ohw, q2-q, directMasks[n1][n2][:])
				}
			}
		}
		for k := range kg {
			j.finish(g*kg+k, y[k*ohw+q0:k*ohw+q1])
		}
		j.planesDone(n*p.K+g*kg, kg) // only given with a run a whole image
	}
	putScratch(buf)
}

// directRowsTile computes one tile of the direct path with the
// directRows kernels k: the group of n1 outputs at y and x and that of n2
// at y[e:] and x[d:], every output channel, in k blocks of kb rows as
// packDirectRowsA laid them out; set stores the first k block.
func (j *convJob) directRowsTile(k *[2][2][maxDirectRows + 1]directRowsFunc, a, x, y []float32, set, rows, kb, d, e, n1, n2 int) {
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
		f := &k[s][pair]
		f[h1](kc, p1, ap, x, off, d, y, ohw, e, mask)
		if p2 > 0 {
			f[h1-1](kc, p2, ap[p1*h1*kc:], x, off, d, y[p1*h1*ohw:], ohw, e, mask)
		}
	}
}

// packDirect packs k block pc (kc rows of K) of one group's kg x rows
// weights for the direct kernels of k.
func packDirect(k *convKernels, kg, rows, pc, kc int, w, dst []float32) {
	if k.directRows != nil {
		packDirectRowsA(kg, rows, pc, kc, w, dst)
		return
	}
	packDirectA(kg, rows, pc, kc, w, dst)
}

// finish adds channel ch's bias to a computed run of y and applies the
// epilogue.
func (j *convJob) finish(ch int, y []float32) {
	if j.bias != nil && j.bias[ch] != 0 {
		addScalarRange(j.bias[ch], y, y)
	}
	j.epi.apply(ch, y)
}
