// Command elementwise generates kernels/elementwise_amd64.s and its Go
// stubs: the AVX2+FMA and AVX-512 twins of the elementwise, reduction and
// per-channel kernels of package kernels (docs/DESIGN.md, "Kernels"). Run it through
// `go generate ./kernels/`; never edit its output by hand.
//
// Every kernel walks its slices a register at a time (8 floats in a YMM,
// or 16 in a ZMM for the AVX-512 twins), several registers per iteration
// where that hides latency, and finishes with one masked iteration
// (VMASKMOVPS, or an opmask) instead of a scalar tail: masked lanes load
// as zero and are never stored.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"

	"github.com/dghcore/dghcore/asm/internal/avx"
)

func main() {
	avx.Begin()
	for _, w := range []avx.Width{avx.AVX2, avx.AVX512} {
		avx.Use(w)
		axpy()
		dot()
		binary(avx.Name("add"), "dst[i] = a[i] + b[i]", VADDPS)
		binary(avx.Name("sub"), "dst[i] = a[i] - b[i]", VSUBPS)
		binary(avx.Name("mul"), "dst[i] = a[i] * b[i]", VMULPS)
		scale()
		relu(avx.Name("relu"), false)
		relu(avx.Name("relu6"), true)
		reluBackward(avx.Name("reluBackward"), false, false)
		reluBackward(avx.Name("relu6Backward"), true, false)
		reluBackward(avx.Name("reluBackwardSet"), false, true)
		reluBackward(avx.Name("relu6BackwardSet"), true, true)
		sums(avx.Name("sum"), true, false)
		sums(avx.Name("sumSquares"), false, true)
		sums(avx.Name("moments"), true, true)
		momentsBackward()
		scaleShift(false)
		scaleShift(true)
		scaleShiftBackward(avx.Name("scaleShiftBackwardReLU"), false)
		scaleShiftBackward(avx.Name("scaleShiftBackwardReLU6"), true)
		for _, act := range []string{"None", "ReLU", "ReLU6"} {
			bnMomentsBackward(avx.Name("bnMomentsBackward"+act), act, false, false)
			bnMomentsBackward(avx.Name("bnMomentsBackward"+act+"Set"), act, true, false)
		}
		for _, act := range []string{"ReLU", "ReLU6"} {
			bnMomentsBackward(avx.Name("resMomentsBackward"+act), act, false, true)
			bnMomentsBackward(avx.Name("resMomentsBackward"+act+"Set"), act, true, true)
		}
	}
	Generate()
}

func axpy() {
	avx.Text(avx.Name("axpy"), "func(alpha float32, x, y []float32)")
	Doc(avx.Name("axpy") + " computes y += alpha*x over len(y) floats with FMA.")
	a := avx.Broadcast("alpha")
	x, y, n := avx.Base("x"), avx.Base("y"), avx.Len("y")
	avx.Loop(n, []GPVirtual{x, y}, 4, func(_ int, l avx.Lanes) {
		xv, yv := l.Load(x), l.Load(y)
		VFMADD231PS(xv, a, yv)
		l.Store(yv, y)
	})
	VZEROUPPER()
	RET()
}

func dot() {
	avx.Text(avx.Name("dot"), "func(x, y []float32) float32")
	Doc(avx.Name("dot")+" returns sum x[i]*y[i] over len(x) floats, in four",
		"float32 vector accumulators.")
	x, y, n := avx.Base("x"), avx.Base("y"), avx.Len("x")
	acc := []VecVirtual{avx.Zero(), avx.Zero(), avx.Zero(), avx.Zero()}
	avx.Loop(n, []GPVirtual{x, y}, 4, func(u int, l avx.Lanes) {
		xv, yv := l.Load(x), l.Load(y)
		VFMADD231PS(xv, yv, acc[u])
	})
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	avx.StoreReturn(avx.HsumPS(acc[0]), 0)
	VZEROUPPER()
	RET()
}

// binary emits dst[i] = a[i] op b[i]; op takes Go operand order
// (src2, src1, dst) so VSUBPS computes a - b.
func binary(name, doc string, op func(ops ...Op)) {
	avx.Text(name, "func(dst, a, b []float32)")
	Doc(fmt.Sprintf("%s sets %s over len(dst) floats.", name, doc))
	d, a, b, n := avx.Base("dst"), avx.Base("a"), avx.Base("b"), avx.Len("dst")
	avx.Loop(n, []GPVirtual{d, a, b}, 4, func(_ int, l avx.Lanes) {
		av, bv := l.Load(a), l.Load(b)
		op(bv, av, av)
		l.Store(av, d)
	})
	VZEROUPPER()
	RET()
}

func scale() {
	avx.Text(avx.Name("scale"), "func(dst []float32, alpha float32, x []float32)")
	Doc(avx.Name("scale") + " sets dst[i] = alpha*x[i] over len(dst) floats.")
	a := avx.Broadcast("alpha")
	d, x, n := avx.Base("dst"), avx.Base("x"), avx.Len("dst")
	avx.Loop(n, []GPVirtual{d, x}, 4, func(_ int, l avx.Lanes) {
		xv := l.Load(x)
		VMULPS(a, xv, xv)
		l.Store(xv, d)
	})
	VZEROUPPER()
	RET()
}

// relu emits dst = max(x, 0), and min(., 6) for ReLU6. x is the second
// source of VMAXPS/VMINPS, the one they return for NaN, so NaN propagates
// as in PyTorch.
func relu(name string, six bool) {
	avx.Text(name, "func(dst, x []float32)")
	if six {
		Doc(name + " sets dst[i] = min(max(x[i], 0), 6) over len(dst) floats.")
	} else {
		Doc(name + " sets dst[i] = max(x[i], 0) over len(dst) floats.")
	}
	z := avx.Zero()
	var s VecVirtual
	if six {
		s = avx.Splat(6)
	}
	d, x, n := avx.Base("dst"), avx.Base("x"), avx.Len("dst")
	avx.Loop(n, []GPVirtual{d, x}, 4, func(_ int, l avx.Lanes) {
		xv := l.Load(x)
		VMAXPS(xv, z, xv)
		if six {
			VMINPS(xv, s, xv)
		}
		l.Store(xv, d)
	})
	VZEROUPPER()
	RET()
}

// passMask returns the lanes where v > 0 (and v < 6 for ReLU6): where the
// activation passes gradient.
func passMask(v, z, s VecVirtual) avx.Mask {
	m := avx.Cmp(avx.CmpGT, z, v)
	if s != nil {
		m = m.And(avx.Cmp(avx.CmpLT, s, v))
	}
	return m
}

// reluBackward emits the ReLU (or ReLU6) input gradient: added to dx, or
// with set stored over it, dx unread. Keep zeroes the blocked lanes of
// dy, so a stored lane there is 0.
func reluBackward(name string, six, set bool) {
	avx.Text(name, "func(x, dy, dx []float32)")
	cond := "x[i] > 0"
	if six {
		cond = "0 < x[i] < 6"
	}
	if set {
		Doc(name+" sets dx[i] = dy[i] where "+cond+", else 0;", "dx is not read.")
	} else {
		Doc(name + " accumulates dx[i] += dy[i] where " + cond + ".")
	}
	z := avx.Zero()
	var s VecVirtual
	if six {
		s = avx.Splat(6)
	}
	x, dy, dx, n := avx.Base("x"), avx.Base("dy"), avx.Base("dx"), avx.Len("dx")
	avx.Loop(n, []GPVirtual{x, dy, dx}, 2, func(_ int, l avx.Lanes) {
		m := passMask(l.Load(x), z, s)
		g := l.Load(dy)
		avx.Keep(m, g)
		if !set {
			d := l.Load(dx)
			VADDPS(g, d, d)
			g = d
		}
		l.Store(g, dx)
	})
	VZEROUPPER()
	RET()
}

// sums emits a float64 reduction of x: the sum, the sum of squares, or
// both (the moments of one plane). A register of floats becomes two of
// doubles; two steps per iteration keep four chains per sum in flight.
func sums(name string, plain, squares bool) {
	switch {
	case plain && squares:
		avx.Text(name, "func(x []float32) (s, ss float64)")
		Doc(name+" returns the sum and the sum of squares of x, accumulated", "in float64.")
	case plain:
		avx.Text(name, "func(x []float32) float64")
		Doc(name + " returns the sum of x, accumulated in float64.")
	default:
		avx.Text(name, "func(x []float32) float64")
		Doc(name + " returns the sum of squares of x, accumulated in float64.")
	}
	x, n := avx.Base("x"), avx.Len("x")
	var s, ss []VecVirtual
	for range 4 {
		if plain {
			s = append(s, avx.Zero())
		}
		if squares {
			ss = append(ss, avx.Zero())
		}
	}
	avx.Loop(n, []GPVirtual{x}, 2, func(u int, l avx.Lanes) {
		lo, hi := l.Halves(x)
		for k, h := range []VecVirtual{lo, hi} {
			if plain {
				VADDPD(h, s[2*u+k], s[2*u+k])
			}
			if squares {
				VFMADD231PD(h, h, ss[2*u+k])
			}
		}
	})
	ret := 0
	for _, acc := range [][]VecVirtual{s, ss} {
		if acc == nil {
			continue
		}
		VADDPD(acc[1], acc[0], acc[0])
		VADDPD(acc[3], acc[2], acc[2])
		VADDPD(acc[2], acc[0], acc[0])
		avx.StoreReturn(avx.HsumPD(acc[0]), ret)
		ret++
	}
	VZEROUPPER()
	RET()
}

func momentsBackward() {
	avx.Text(avx.Name("momentsBackward"), "func(x, dx []float32, a, b float32)")
	Doc(avx.Name("momentsBackward") + " accumulates dx[i] += a + b*x[i] over len(dx) floats.")
	a, b := avx.Broadcast("a"), avx.Broadcast("b")
	x, dx, n := avx.Base("x"), avx.Base("dx"), avx.Len("dx")
	avx.Loop(n, []GPVirtual{x, dx}, 4, func(_ int, l avx.Lanes) {
		t := avx.VecReg()
		VMOVAPS(a, t)
		VFMADD231PS(l.Load(x), b, t)
		d := l.Load(dx)
		VADDPS(t, d, d)
		l.Store(d, dx)
	})
	VZEROUPPER()
	RET()
}

// scaleShift emits y = clamp(x*scale + shift) or, with residual, the
// same with r added before the clamp: the FMA, the add and the clamp are
// the instructions scaleShift, add and relu (or relu6) use, so
// scaleShiftAdd is bit for bit the three in turn.
func scaleShift(residual bool) {
	ptrs := []string{"y", "x"}
	if residual {
		ptrs = append(ptrs, "r")
		avx.Text(avx.Name("scaleShiftAdd"), "func(y, x, r []float32, scale, shift, lo, hi float32)")
		Doc(avx.Name("scaleShiftAdd")+" sets y[i] = min(max((x[i]*scale + shift) + r[i], lo), hi)",
			"over len(y) floats (the clamp as in "+avx.Name("scaleShift")+"); y may be x or r.")
	} else {
		avx.Text(avx.Name("scaleShift"), "func(y, x []float32, scale, shift, lo, hi float32)")
		Doc(avx.Name("scaleShift")+" sets y[i] = min(max(x[i]*scale + shift, lo), hi) over",
			"len(y) floats: the fused activation is the clamp (-Inf/+Inf for none,",
			"0/+Inf for ReLU, 0/6 for ReLU6). NaN propagates.")
	}
	s, b := avx.Broadcast("scale"), avx.Broadcast("shift")
	lo, hi := avx.Broadcast("lo"), avx.Broadcast("hi")
	base := make([]GPVirtual, len(ptrs))
	for i, name := range ptrs {
		base[i] = avx.Base(name)
	}
	n := avx.Len("y")
	avx.Loop(n, base, 4, func(_ int, l avx.Lanes) {
		t := avx.VecReg()
		VMOVAPS(b, t)
		VFMADD231PS(l.Load(base[1]), s, t)
		if residual {
			VADDPS(l.Load(base[2]), t, t)
		}
		VMAXPS(t, lo, t)
		VMINPS(t, hi, t)
		l.Store(t, base[0])
	})
	VZEROUPPER()
	RET()
}

// bnMomentsBackward emits, in one pass, the input gradient of a
// ScaleShift with activation act and that of the input's channel moments:
// dx[i] (+)= dy[i]*scale where act passes x[i]*scale + shift, then
// += a + b*x[i]. The activation's mask comes from x, recomputed with the
// forward kernel's FMA (so the same mask as from its output, without
// reading the output); set stores into dx without reading it. Each step
// is the instruction scaleShiftBackward and momentsBackward use, so the
// result is bit for bit theirs. With fromY the mask comes from the output
// y instead (a residual was added before the activation: y =
// act(x*scale + shift + r)), and there is no shift.
func bnMomentsBackward(name, act string, set, fromY bool) {
	if fromY {
		avx.Text(name, "func(x, y, dy, dx []float32, scale, a, b float32)")
	} else {
		avx.Text(name, "func(x, dy, dx []float32, scale, shift, a, b float32)")
	}
	what := "accumulates dx[i] += "
	if set {
		what = "sets dx[i] = "
	}
	switch {
	case act == "None":
		Doc(name + " " + what + "dy[i]*scale + (a + b*x[i]) over len(dx) floats.")
	case fromY:
		Doc(name+" "+what+"(dy[i]*scale where the "+act+" output y[i] passes",
			"gradient) + (a + b*x[i]) over len(dx) floats.")
	default:
		Doc(name+" "+what+"(dy[i]*scale where the "+act+" of x[i]*scale + shift",
			"passes gradient) + (a + b*x[i]) over len(dx) floats.")
	}
	sc := avx.Broadcast("scale")
	var sh VecVirtual
	if !fromY {
		sh = avx.Broadcast("shift")
	}
	a, b := avx.Broadcast("a"), avx.Broadcast("b")
	z := avx.Zero()
	var six VecVirtual
	if act == "ReLU6" {
		six = avx.Splat(6)
	}
	x, dy, dx, n := avx.Base("x"), avx.Base("dy"), avx.Base("dx"), avx.Len("dx")
	ptrs := []GPVirtual{x, dy, dx}
	var y GPVirtual
	if fromY {
		y = avx.Base("y")
		ptrs = append(ptrs, y)
	}
	avx.Loop(n, ptrs, 2, func(_ int, l avx.Lanes) {
		xv := l.Load(x)
		g := l.Load(dy)
		switch {
		case fromY:
			avx.Keep(passMask(l.Load(y), z, six), g)
		case act != "None":
			v := avx.VecReg()
			VMOVAPS(sh, v)
			VFMADD231PS(xv, sc, v)
			avx.Keep(passMask(v, z, six), g)
		}
		d := avx.VecReg()
		if set {
			VXORPS(d, d, d)
		} else {
			d = l.Load(dx)
		}
		VFMADD231PS(g, sc, d)
		t := avx.VecReg()
		VMOVAPS(a, t)
		VFMADD231PS(xv, b, t)
		VADDPS(t, d, d)
		l.Store(d, dx)
	})
	VZEROUPPER()
	RET()
}

// scaleShiftBackward emits the input gradient of a ReLU or ReLU6
// ScaleShift: dx += dy*scale where the output y passed gradient.
func scaleShiftBackward(name string, six bool) {
	avx.Text(name, "func(y, dy, dx []float32, scale float32)")
	if six {
		Doc(name + " accumulates dx[i] += dy[i]*scale where 0 < y[i] < 6.")
	} else {
		Doc(name + " accumulates dx[i] += dy[i]*scale where y[i] > 0.")
	}
	sc := avx.Broadcast("scale")
	z := avx.Zero()
	var s VecVirtual
	if six {
		s = avx.Splat(6)
	}
	y, dy, dx, n := avx.Base("y"), avx.Base("dy"), avx.Base("dx"), avx.Len("dx")
	avx.Loop(n, []GPVirtual{y, dy, dx}, 2, func(_ int, l avx.Lanes) {
		m := passMask(l.Load(y), z, s)
		g := l.Load(dy)
		avx.Keep(m, g)
		d := l.Load(dx)
		VFMADD231PS(g, sc, d)
		l.Store(d, dx)
	})
	VZEROUPPER()
	RET()
}
