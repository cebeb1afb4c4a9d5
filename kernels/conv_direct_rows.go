package kernels

// The direct path's kernels with panels of any height up to
// maxDirectRows (the AVX-512 path; docs/DESIGN.md, "Kernels"): the tile
// is one register of 16 outputs per output channel, so a panel's height
// is its accumulator count, and kg output channels run as directRowsSplit
// cuts them, in at most two heights, with no padded rows. Two groups of 8
// outputs that are one run of 16 read B with one load, others with two
// (the pair kernels); partial groups are lanes of the mask, which the
// kernels read and write in place.

// directRowsFunc is one kernel of convKernels.directRows:
//
//	f(kc, panels, a, x, off, d, c, ldc, e, mask)
//
// multiplies panels packed panels of its height h (a[p*h+i], h*kc floats
// apart) by the kc x 16 matrix B[p][j] = x[off[p]+j] for j < 8 and, for
// j >= 8, x[off[p]+j] (a run) or x[d+off[p]+j-8] (a pair), into the rows
// c[i*ldc:][:8] and c[i*ldc+8:][:8] (a run) or c[i*ldc+e:][:8] (a pair),
// i < h*panels, only in the lanes j whose bit j of mask is set.
type directRowsFunc func(kc, panels int, a, x []float32, off []int32, d int, c []float32, ldc, e, mask int)

// maxDirectRows bounds the panel height of the directRows kernels; asm/conv
// must agree.
const maxDirectRows = 24

// directRowsSplit cuts kg output channels into n1 panels of h1 rows and
// then n2 panels of h1-1, as few panels as maxDirectRows allows and as
// even as possible (64 = 22+21+21): a short panel has fewer accumulators
// than the two FMA units' latency needs.
func directRowsSplit(kg int) (n1, h1, n2 int) {
	np := (kg + maxDirectRows - 1) / maxDirectRows
	h1 = (kg + np - 1) / np
	n1 = kg - np*(h1-1)
	return n1, h1, np - n1
}

// packDirectRowsA packs k block pc (kc rows of K) of the kg x rows
// weights w (row-major) for the directRows kernels, split as
// directRowsSplit says: the block starts at dst[kg*pc] and holds its
// panels in order, a panel of h rows h*kc floats, k-major.
func packDirectRowsA(kg, rows, pc, kc int, w, dst []float32) {
	n1, h1, n2 := directRowsSplit(kg)
	pan := dst[kg*pc:]
	r0 := 0
	for pn := range n1 + n2 {
		h := h1
		if pn >= n1 {
			h = h1 - 1
		}
		for i := range h {
			src := w[(r0+i)*rows+pc:][:kc]
			for k, v := range src {
				pan[k*h+i] = v
			}
		}
		pan, r0 = pan[h*kc:], r0+h
	}
}

// convDirectRowsGeneric is the definition of the directRows kernels of
// height h.
func convDirectRowsGeneric(h int, set, pair bool, kc, panels int, a, x []float32, off []int32, d int, c []float32, ldc, e, mask int) {
	if !pair {
		d, e = 8, 8
	}
	for pn := range panels {
		ap, cp := a[pn*h*kc:], c[pn*h*ldc:]
		var acc [maxDirectRows][16]float32
		for p := range kc {
			o := int(off[p])
			lo, hi := x[o:][:8], x[d+o:][:8]
			for i := range h {
				ai := ap[p*h+i]
				for j, v := range lo {
					acc[i][j] += ai * v
				}
				for j, v := range hi {
					acc[i][8+j] += ai * v
				}
			}
		}
		storeDirectRows(cp, acc[:h], ldc, e, mask, set)
	}
}
