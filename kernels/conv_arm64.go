package kernels

// convNEON is the NEON path's convolution table: the hand-written
// stride-1 3x3 depthwise row kernels of conv_arm64.s (stride 2, 5x5 and
// the plane loop in Go), no direct micro-kernels.
var convNEON = convKernels{
	dwPlane:     dwPlaneGeneric,
	dwPlaneGrad: dwPlaneGradGeneric,
	dwRow:       dwRowNEON,
	dwRowGrad:   dwRowGradNEON,
	gatherEven:  gatherEvenGeneric,
}

//go:noescape
func dwRow3x3S1NEON(n int, y, r0, r1, r2 []float32, w *[10]float32, accumulate bool)

//go:noescape
func dwRowGrad3x3S1NEON(n int, dy, r0, r1, r2 []float32, lanes *[36]float32)

// dwRowNEON runs the NEON kernel on the largest multiple of 4 outputs of
// a stride-1 3x3 row whose reads stay inside the rows, the generic code
// on the rest and on other rows.
func dwRowNEON(k, s int, y, x []float32, ldx int, w *dwTaps, acc bool) {
	n := 0
	if k == 3 && s == 1 {
		r0, r1, r2 := x, x[ldx:], x[2*ldx:]
		n = min(len(y), min(len(r0), len(r1), len(r2))-2) / 4 * 4
		if n > 0 {
			dwRow3x3S1NEON(n, y, r0, r1, r2, (*[10]float32)(w[:10]), acc)
		}
		n = max(n, 0)
	}
	dwRowGeneric(k, s, y[n:], x[s*n:], ldx, w, acc)
}

// dwRowGradNEON is the gradient counterpart of dwRowNEON.
func dwRowGradNEON(k, s int, dy, x []float32, ldx int, g *dwGradSums) {
	n := 0
	if k == 3 && s == 1 {
		r0, r1, r2 := x, x[ldx:], x[2*ldx:]
		n = min(len(dy), min(len(r0), len(r1), len(r2))-2) / 4 * 4
		if n > 0 {
			var lanes [36]float32 // stays on the stack: the stub is noescape
			dwRowGrad3x3S1NEON(n, dy, r0, r1, r2, &lanes)
			for i := range 9 {
				for l, v := range lanes[4*i : 4*i+4] {
					g[i*dwGradLanes+l] += v
				}
			}
		}
		n = max(n, 0)
	}
	dwRowGradGeneric(k, s, dy[n:], x[s*n:], ldx, g)
}
