package kernels

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestZZCPURate(t *testing.T) {
	runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(2)
	for _, n := range []int{256, 512, 1024} {
		r := rand.New(rand.NewPCG(1, 1))
		x, y, z := randSlice(r, n*n, 1), randSlice(r, n*n, 1), make([]float32, n*n)
		g := cpuRate(max(1, 512*512*512*20/(n*n*n)), 2*float64(n*n*n), func() { Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n) })
		t.Logf("sgemm %d: %.1f GFLOP/cpu-s", n, g)
	}
	// micro-kernel alone, data in L1
	a, b, c := make([]float32, 6*256), make([]float32, 16*256), make([]float32, 6*16)
	g := cpuRate(20000, 2*6*16*256, func() { sgemmMicroAVX2(256, a, b, c, 16) })
	t.Logf("micro: %.1f", g)
}

func TestZZConvRate(t *testing.T) {
	runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(2)
	var fl, tf, tb float64
	for _, p := range append(resnet18Convs(), mobilenetV2Convs()...) {
		r := rand.New(rand.NewPCG(1, 1))
		x := randSlice(r, p.N*p.C*p.H*p.W, 1)
		w := randSlice(r, p.K*p.C/p.Groups*p.KH*p.KW, 1)
		y := randSlice(r, p.N*p.K*p.OutH()*p.OutW(), 1)
		f := convFlops(p)
		gf := cpuRate(1, f, func() { Conv2dForward(p, x, w, nil, y) })
		gb := cpuRate(1, f, func() { Conv2dBackwardData(p, y, w, x) })
		gw := cpuRate(1, f, func() { Conv2dBackwardWeight(p, x, y, w) })
		t.Logf("%-28s fwd %6.1f  bwd %6.1f  bwdW %6.1f", benchName(p), gf, gb, gw)
		if p.KH == 3 && p.Groups == 1 && p.C > 3 {
			fl += f
			tf += f / gf
			tb += f / gb
		}
	}
	t.Logf("resnet 3x3 weighted: fwd %.1f bwd %.1f", fl/tf, fl/tb)
}
