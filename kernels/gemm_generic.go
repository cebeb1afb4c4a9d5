package kernels

// The pure-Go SGEMM micro-kernel: the definition every assembly
// micro-kernel must match (docs/DESIGN.md, "Kernels"). A 4x4 tile keeps the
// 16 accumulators in registers on both amd64 and arm64.

// gemmGeneric is the generic path's GEMM table: the 4x4 Go micro-kernel
// and packer, no optional kernels.
var gemmGeneric = gemmKernels{mr: 4, nr: 4, micro: sgemmMicroGeneric, packB: sgemmPackBGeneric}

// sgemmMicroGeneric adds a packed 4 x kc A panel times a packed kc x 4 B
// panel to the 4x4 tile at c (row stride ldc).
func sgemmMicroGeneric(kc int, a, b, c []float32, ldc int) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for p := 0; p+4 <= len(a); p += 4 {
		ap := a[p : p+4 : p+4]
		bp := b[p : p+4 : p+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r := c[0:4:4]
	r[0] += c00
	r[1] += c01
	r[2] += c02
	r[3] += c03
	r = c[ldc : ldc+4 : ldc+4]
	r[0] += c10
	r[1] += c11
	r[2] += c12
	r[3] += c13
	r = c[2*ldc : 2*ldc+4 : 2*ldc+4]
	r[0] += c20
	r[1] += c21
	r[2] += c22
	r[3] += c23
	r = c[3*ldc : 3*ldc+4 : 3*ldc+4]
	r[0] += c30
	r[1] += c31
	r[2] += c32
	r[3] += c33
}

// sgemmPackBGeneric packs panels full nr-column panels of kc rows of B
// (row stride ldb), panel q at dst[q*stride:]:
// dst[q*stride+p*nr+j] = b[p*ldb+q*nr+j]. Rows are read in order so the
// hardware prefetchers stream B.
func sgemmPackBGeneric(nr, kc int, b []float32, ldb int, dst []float32, stride, panels int) {
	for p := range kc {
		src := b[p*ldb : p*ldb+panels*nr]
		for q := range panels {
			copyRow(dst[q*stride+p*nr:][:nr], src[q*nr:])
		}
	}
}
