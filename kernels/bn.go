package kernels

// Per-channel kernels on NCHW tensors: the batch statistics DGH matches
// (SPEC section 3) and the folded BatchNorm / bias + activation apply.
// x is n x c x hw; per-channel slices have length c.

// Implementation variables of the per-plane kernels; setElementwisePath
// points them at one kernel path.
var (
	momentsImpl            = momentsGeneric
	momentsBackwardImpl    = momentsBackwardGeneric
	scaleShiftImpl         = scaleShiftGeneric
	scaleShiftBackwardImpl = scaleShiftBackwardGeneric
)

// ChannelMoments writes, for each channel, the mean and the mean of
// squares of x over (N, H, W), accumulated in float64.
func ChannelMoments(n, c, hw int, x, mean, meanSq []float32) {
	x = x[:n*c*hw]
	mean, meanSq = mean[:c], meanSq[:c]
	inv := 1 / float64(n*hw)
	for ch := range c {
		var s, ss float64
		for b := range n {
			o := (b*c + ch) * hw
			ps, pss := momentsImpl(x[o : o+hw])
			s += ps
			ss += pss
		}
		mean[ch] = float32(s * inv)
		meanSq[ch] = float32(ss * inv)
	}
}

// ChannelMomentsBackward accumulates the gradient of ChannelMoments:
// dx += dMean[c]/cnt + 2*x*dMeanSq[c]/cnt with cnt = n*hw. Either of
// dMean and dMeanSq may be nil (no gradient from that output).
func ChannelMomentsBackward(n, c, hw int, x, dMean, dMeanSq, dx []float32) {
	if dMean == nil && dMeanSq == nil {
		return
	}
	x, dx = x[:n*c*hw], dx[:n*c*hw]
	cnt := float32(n * hw)
	for ch := range c {
		var a, b float32
		if dMean != nil {
			a = dMean[ch] / cnt
		}
		if dMeanSq != nil {
			b = 2 * dMeanSq[ch] / cnt
		}
		for bt := range n {
			o := (bt*c + ch) * hw
			momentsBackwardImpl(x[o:o+hw], dx[o:o+hw], a, b)
		}
	}
}

// ScaleShift sets y = act(x*scale[c] + shift[c]): an eval-mode BatchNorm,
// or a bias add with scale 1, with its activation fused.
func ScaleShift(n, c, hw int, x, scale, shift, y []float32, act Activation) {
	x, y = x[:n*c*hw], y[:n*c*hw]
	scale, shift = scale[:c], shift[:c]
	for b := range n {
		for ch := range c {
			o := (b*c + ch) * hw
			scaleShiftImpl(y[o:o+hw], x[o:o+hw], scale[ch], shift[ch], act)
		}
	}
}

// ScaleShiftBackward accumulates the gradients of ScaleShift. y is its
// output, which gives the activation mask (ReLU: y > 0; ReLU6: 0 < y < 6,
// as PyTorch). Any of dx, dScale and dShift may be nil; the per-channel
// sums are accumulated in float64.
func ScaleShiftBackward(n, c, hw int, x, scale, y, dy, dx, dScale, dShift []float32, act Activation) {
	x, y, dy = x[:n*c*hw], y[:n*c*hw], dy[:n*c*hw]
	scale = scale[:c]
	if dx != nil {
		dx = dx[:n*c*hw]
		for b := range n {
			for ch := range c {
				o := (b*c + ch) * hw
				scaleShiftBackwardImpl(y[o:o+hw], dy[o:o+hw], dx[o:o+hw], scale[ch], act)
			}
		}
	}
	if dScale == nil && dShift == nil {
		return
	}
	for ch := range c {
		var ds, db float64
		for b := range n {
			o := (b*c + ch) * hw
			s, t := scaleShiftSums(x[o:o+hw], y[o:o+hw], dy[o:o+hw], act)
			ds += s
			db += t
		}
		if dScale != nil {
			dScale[ch] += float32(ds)
		}
		if dShift != nil {
			dShift[ch] += float32(db)
		}
	}
}
