package kernels

// momentsGeneric returns the sum and the sum of squares of one plane.
func momentsGeneric(x []float32) (s, ss float64) {
	for _, v := range x {
		f := float64(v)
		s += f
		ss += f * f
	}
	return s, ss
}

// momentsBackwardGeneric accumulates dx[i] += a + b*x[i].
func momentsBackwardGeneric(x, dx []float32, a, b float32) {
	x = x[:len(dx)]
	for i, v := range x {
		dx[i] += a + b*v
	}
}

func scaleShiftGeneric(y, x []float32, scale, shift float32, act Activation) {
	x = x[:len(y)]
	switch act {
	case ActReLU:
		for i, v := range x {
			y[i] = max(v*scale+shift, 0)
		}
	case ActReLU6:
		for i, v := range x {
			y[i] = min(max(v*scale+shift, 0), 6)
		}
	default:
		for i, v := range x {
			y[i] = v*scale + shift
		}
	}
}

// scaleShiftAddGeneric sets y = act(x*scale + shift + r), rounding
// x*scale + shift first as scaleShiftGeneric does (y may be x or r).
func scaleShiftAddGeneric(y, x, r []float32, scale, shift float32, act Activation) {
	x, r = x[:len(y)], r[:len(y)]
	lo, hi := actBounds(act)
	for i, v := range x {
		t := v*scale + shift
		y[i] = min(max(t+r[i], lo), hi)
	}
}

// activeMask reports whether the activation passes gradient at output v.
func activeMask(act Activation, v float32) bool {
	switch act {
	case ActReLU:
		return v > 0
	case ActReLU6:
		return v > 0 && v < 6
	}
	return true
}

// scaleShiftBackwardGeneric accumulates dx += dy*scale where the output y
// passed gradient.
func scaleShiftBackwardGeneric(y, dy, dx []float32, scale float32, act Activation) {
	y, dy = y[:len(dx)], dy[:len(dx)]
	for i, v := range y {
		if activeMask(act, v) {
			dx[i] += dy[i] * scale
		}
	}
}

// scaleShiftSums returns sum g*x and sum g over one plane in float64,
// where g = dy masked by the activation: the gradients of scale and shift.
// They train nowhere in the pipeline's hot loops, so they have no SIMD twin.
func scaleShiftSums(x, y, dy []float32, act Activation) (dScale, dShift float64) {
	y, dy = y[:len(x)], dy[:len(x)]
	for i, v := range x {
		if activeMask(act, y[i]) {
			g := float64(dy[i])
			dScale += g * float64(v)
			dShift += g
		}
	}
	return dScale, dShift
}
