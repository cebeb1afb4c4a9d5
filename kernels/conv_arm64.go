package kernels

// convNEON is the NEON path's convolution table: the hand-written
// stride-1 depthwise row kernels of conv_arm64.s (stride 2 and the plane
// loop in Go), no direct micro-kernels.
var convNEON = convKernels{
	dwPlane3x3:   dwPlane3x3Generic,
	dwRow3x3:     dwRow3x3NEON,
	dwRowGrad3x3: dwRowGrad3x3NEON,
	gatherEven:   gatherEvenGeneric,
}

//go:noescape
func dwRow3x3S1NEON(n int, y, r0, r1, r2 []float32, w *[10]float32, accumulate bool)

//go:noescape
func dwRowGrad3x3S1NEON(n int, dy, r0, r1, r2 []float32, lanes *[36]float32)

// dwRow3x3NEON runs the NEON kernel on the largest multiple of 4 outputs
// of a stride-1 row whose reads stay inside the rows, the generic code on
// the rest and on stride 2.
func dwRow3x3NEON(s int, y, r0, r1, r2 []float32, w *[10]float32, acc bool) {
	n := 0
	if s == 1 {
		n = min(len(y), min(len(r0), len(r1), len(r2))-2) / 4 * 4
		if n > 0 {
			dwRow3x3S1NEON(n, y, r0, r1, r2, w, acc)
		}
		n = max(n, 0)
	}
	dwRow3x3Generic(s, y[n:], r0[s*n:], r1[s*n:], r2[s*n:], w, acc)
}

// dwRowGrad3x3NEON is the gradient counterpart of dwRow3x3NEON.
func dwRowGrad3x3NEON(s int, dy, r0, r1, r2 []float32, g *[9]float32) {
	n := 0
	if s == 1 {
		n = min(len(dy), min(len(r0), len(r1), len(r2))-2) / 4 * 4
		if n > 0 {
			var lanes [36]float32 // stays on the stack: the stub is noescape
			dwRowGrad3x3S1NEON(n, dy, r0, r1, r2, &lanes)
			for i := range g {
				g[i] += (lanes[4*i] + lanes[4*i+1]) + (lanes[4*i+2] + lanes[4*i+3])
			}
		}
		n = max(n, 0)
	}
	dwRowGrad3x3Generic(s, dy[n:], r0[s*n:], r1[s*n:], r2[s*n:], g)
}
