package kernels

// dwRow3x3AVX2 runs the generated row kernel on the largest multiple of 8
// outputs whose reads stay inside the rows, the generic code on the rest.
func dwRow3x3AVX2(s int, y, r0, r1, r2 []float32, w *[10]float32, acc bool) {
	// Reads reach r[s*n+1] (stride 2 loads 18 floats per 8 outputs).
	n := dwRowSpan(8, s, len(y), r0, r1, r2)
	if n > 0 {
		if s == 1 {
			dwRow3x3S1AVX2(n, y, r0, r1, r2, w, acc)
		} else {
			dwRow3x3S2AVX2(n, y, r0, r1, r2, w, acc)
		}
	}
	dwRow3x3Generic(s, y[n:], r0[s*n:], r1[s*n:], r2[s*n:], w, acc)
}

// dwPlane3x3AVX2 runs the generated plane kernel, whose last vector per
// row is masked, when its reads stay inside x and its writes inside y
// (the callers' frames see to that), else the generic plane code.
func dwPlane3x3AVX2(s, rows, cols int, y []float32, ldy int, x []float32, ldx int, w *[10]float32, acc bool) {
	if !dwPlaneFits(8, s, rows, cols, y, ldy, x, ldx) {
		dwPlane3x3Generic(s, rows, cols, y, ldy, x, ldx, w, acc)
		return
	}
	var mask [8]int32 // on the stack: the stubs are noescape
	for i := range cols % 8 {
		mask[i] = -1
	}
	if s == 1 {
		dwPlane3x3S1AVX2(rows, cols, y, ldy, x, ldx, w[:], mask[:], acc)
	} else {
		dwPlane3x3S2AVX2(rows, cols, y, ldy, x, ldx, w[:], mask[:], acc)
	}
}

// dwPlane3x3AVX512 is dwPlane3x3AVX2 on sixteen lanes, for rows wider
// than one YMM register. One Xeon core, alternated with the AVX2 kernel
// (minimum times, mobilenet_v2's planes, batch 4): 1.12-1.14x at 14
// wide, 1.0x at 56, 1.05x at stride 2, but 0.87-0.89x at 7 wide, where a
// row is one 8-lane vector and runs the AVX2 kernel.
func dwPlane3x3AVX512(s, rows, cols int, y []float32, ldy int, x []float32, ldx int, w *[10]float32, acc bool) {
	if cols <= 8 {
		dwPlane3x3AVX2(s, rows, cols, y, ldy, x, ldx, w, acc)
		return
	}
	if !dwPlaneFits(16, s, rows, cols, y, ldy, x, ldx) {
		dwPlane3x3Generic(s, rows, cols, y, ldy, x, ldx, w, acc)
		return
	}
	mask := 1<<(cols%16) - 1
	if s == 1 {
		dwPlane3x3S1AVX512(rows, cols, y, ldy, x, ldx, w[:], mask, acc)
	} else {
		dwPlane3x3S2AVX512(rows, cols, y, ldy, x, ldx, w[:], mask, acc)
	}
}

// dwPlaneFits reports whether a plane kernel of the given lanes may run
// on rows x cols outputs: its reads, a whole vector of inputs per vector
// of outputs (stride 1: up to 2 floats past it, stride 2: 2*lanes+2
// floats), stay inside x, and its writes inside y.
func dwPlaneFits(lanes, s, rows, cols int, y []float32, ldy int, x []float32, ldx int) bool {
	if rows == 0 || cols == 0 {
		return false
	}
	nv := (cols + lanes - 1) / lanes
	return len(x) >= (s*(rows-1)+2)*ldx+s*lanes*nv+2 && len(y) >= (rows-1)*ldy+cols
}

// dwRowGrad3x3AVX2 runs the generated gradient row kernel on the largest
// multiple of 8 outputs whose reads stay inside the rows, the generic
// code on the rest.
func dwRowGrad3x3AVX2(s int, dy, r0, r1, r2 []float32, g *[9]float32) {
	n := dwRowSpan(8, s, len(dy), r0, r1, r2)
	if n > 0 {
		if s == 1 {
			dwRowGrad3x3S1AVX2(n, dy, r0, r1, r2, g)
		} else {
			dwRowGrad3x3S2AVX2(n, dy, r0, r1, r2, g)
		}
	}
	dwRowGrad3x3Generic(s, dy[n:], r0[s*n:], r1[s*n:], r2[s*n:], g)
}

// dwRowSpan is the largest multiple of lanes, at most n, of outputs of a
// row kernel whose reads stay inside the rows: stride 2 loads 2*lanes+2
// floats per lanes outputs, stride 1 lanes+2.
func dwRowSpan(lanes, s, n int, r0, r1, r2 []float32) int {
	n = n / lanes * lanes
	if short := min(len(r0), len(r1), len(r2)); s*n+2 > short {
		n = max(0, (short-2)/s) / lanes * lanes
	}
	return n
}

// gatherEvenAVX2Tail runs the generated gather on a multiple of 8 and the
// generic loop on the rest.
func gatherEvenAVX2Tail(dst, src []float32) {
	n := min(len(dst), len(src)/2) / 8 * 8
	if n > 0 {
		gatherEvenAVX2(n, dst, src)
	}
	gatherEvenGeneric(dst[n:], src[2*n:])
}

// setConvPath points the depthwise plane and row kernels, the stride-2
// gather and the stride-2 max pooling at path p. The AVX-512 path has its
// own plane kernel; the row kernels (the filter gradient's, and the
// forward one where no plane kernel runs), the gather and the pooling
// are the AVX2 ones.
func setConvPath(p Path) {
	dwVector = 8
	switch p {
	case AVX2, AVX512:
		dwPlane3x3, dwRow3x3, dwRowGrad3x3, gatherEven = dwPlane3x3AVX2, dwRow3x3AVX2, dwRowGrad3x3AVX2, gatherEvenAVX2Tail
		maxPoolS2 = maxPool3x3S2AVX2
		if p == AVX512 {
			dwPlane3x3, dwVector = dwPlane3x3AVX512, 16
		}
	default:
		dwPlane3x3, dwRow3x3, dwRowGrad3x3, gatherEven = dwPlane3x3Generic, dwRow3x3Generic, dwRowGrad3x3Generic, gatherEvenGeneric
		maxPoolS2 = nil
	}
}
