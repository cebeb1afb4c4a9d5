package kernels

// Per-channel kernels on NCHW tensors: the batch statistics DGH matches
// (docs/DESIGN.md, "DGH") and the folded BatchNorm / bias + activation apply.
// x is n x c x hw; per-channel slices have length c.

// The per-plane kernels are entries of the elementwise family's table
// (elementwiseKernels).

// ChannelMoments writes, for each channel, the mean and the mean of
// squares of x over (N, H, W), accumulated in float64.
func ChannelMoments(n, c, hw int, x, mean, meanSq []float32) {
	t := newTask(channelMomentsRange)
	t.n = [3]int{n, c, hw}
	t.s[0], t.s[1], t.s[2] = x[:n*c*hw], mean[:c], meanSq[:c]
	t.spread(c, n*c*hw)
	t.release()
}

func channelMomentsRange(t *task, lo, hi int) {
	n, c, hw := t.n[0], t.n[1], t.n[2]
	x, mean, meanSq := t.s[0], t.s[1], t.s[2]
	inv := 1 / float64(n*hw)
	for ch := lo; ch < hi; ch++ {
		var s, ss float64
		for b := range n {
			o := (b*c + ch) * hw
			ps, pss := active.elementwise.moments(x[o : o+hw])
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
	t := newTask(channelMomentsBackwardRange)
	t.n = [3]int{n, c, hw}
	t.s[0], t.s[1], t.s[2], t.s[3] = x[:n*c*hw], dMean, dMeanSq, dx[:n*c*hw]
	t.spread(c, n*c*hw)
	t.release()
}

func channelMomentsBackwardRange(t *task, lo, hi int) {
	n, c, hw := t.n[0], t.n[1], t.n[2]
	x, dMean, dMeanSq, dx := t.s[0], t.s[1], t.s[2], t.s[3]
	cnt := float32(n * hw)
	for ch := lo; ch < hi; ch++ {
		var a, b float32
		if dMean != nil {
			a = dMean[ch] / cnt
		}
		if dMeanSq != nil {
			b = 2 * dMeanSq[ch] / cnt
		}
		for bt := range n {
			o := (bt*c + ch) * hw
			active.elementwise.momentsBackward(x[o:o+hw], dx[o:o+hw], a, b)
		}
	}
}

// ScaleShift sets y = act(x*scale[c] + shift[c]): an eval-mode BatchNorm,
// or a bias add with scale 1, with its activation fused.
func ScaleShift(n, c, hw int, x, scale, shift, y []float32, act Activation) {
	scaleShift(n, c, hw, x, scale, shift, nil, y, act)
}

// scaleShift is ScaleShift, or ScaleShiftAdd when r is not nil.
func scaleShift(n, c, hw int, x, scale, shift, r, y []float32, act Activation) {
	t := newTask(scaleShiftRange)
	t.n, t.act = [3]int{n, c, hw}, act
	t.s[0], t.s[1], t.s[2], t.s[3] = x[:n*c*hw], scale[:c], shift[:c], y[:n*c*hw]
	if r != nil {
		t.s[4] = r[:n*c*hw]
	}
	t.spread(n*c, n*c*hw)
	t.release()
}

// ScaleShiftMoments is ScaleShift that also writes x's per-channel mean
// and mean of squares, bit for bit those of ChannelMoments: each plane's
// sums come from the same kernel, and the planes of a channel add up in
// image order. The plane is read from memory once, by the moments; the
// scale-and-shift then finds it in L1. y may be x.
func ScaleShiftMoments(n, c, hw int, x, scale, shift, y []float32, act Activation, mean, meanSq []float32) {
	scaleShiftMoments(n, c, hw, x, scale, shift, nil, y, act, mean, meanSq)
}

// scaleShiftMoments is ScaleShiftMoments, or ScaleShiftAddMoments when r
// is not nil.
func scaleShiftMoments(n, c, hw int, x, scale, shift, r, y []float32, act Activation, mean, meanSq []float32) {
	t := newScaleShiftMoments(n, c, hw, x, scale, shift, r, y, act)
	t.spread(n*c, n*c*hw)
	t.endMoments(mean, meanSq)
}

// newScaleShiftMoments returns the task of scaleShiftMoments, its
// partial sums cleared, for its planes to be run by spread or, plane by
// plane, by the convolution that writes x (Conv2dForwardMoments).
func newScaleShiftMoments(n, c, hw int, x, scale, shift, r, y []float32, act Activation) *task {
	t := newTask(scaleShiftMomentsRange)
	t.n, t.act = [3]int{n, c, hw}, act
	t.s[0], t.s[1], t.s[2], t.s[3] = x[:n*c*hw], scale[:c], shift[:c], y[:n*c*hw]
	if r != nil {
		t.s[4] = r[:n*c*hw]
	}
	t.partials(2 * n * c)
	return t
}

// endMoments writes the per-channel moments from the planes' sums in
// t.part, a channel's planes added in image order, and releases t.
func (t *task) endMoments(mean, meanSq []float32) {
	n, c, hw := t.n[0], t.n[1], t.n[2]
	inv := 1 / float64(n*hw)
	for ch := range c {
		var s, ss float64
		for b := range n {
			s += t.part[2*(b*c+ch)]
			ss += t.part[2*(b*c+ch)+1]
		}
		mean[ch] = float32(s * inv)
		meanSq[ch] = float32(ss * inv)
	}
	t.release()
}

// scaleShiftMomentsRange runs planes [lo, hi) of ScaleShiftMoments (or
// ScaleShiftAddMoments, with the residual in t.s[4]), leaving each
// plane's sums in t.part.
func scaleShiftMomentsRange(t *task, lo, hi int) {
	hw := t.n[2]
	x := t.s[0]
	for pl := lo; pl < hi; pl++ {
		o := pl * hw
		t.part[2*pl], t.part[2*pl+1] = active.elementwise.moments(x[o : o+hw])
		t.scaleShiftPlane(pl)
	}
}

// scaleShiftRange runs planes [lo, hi) of the n*c planes.
func scaleShiftRange(t *task, lo, hi int) {
	for pl := lo; pl < hi; pl++ {
		t.scaleShiftPlane(pl)
	}
}

// scaleShiftPlane runs plane pl of ScaleShift, or of ScaleShiftAdd when
// the task holds a residual (t.s[4]).
func (t *task) scaleShiftPlane(pl int) {
	c, hw := t.n[1], t.n[2]
	x, scale, shift, y, r := t.s[0], t.s[1], t.s[2], t.s[3], t.s[4]
	o, ch := pl*hw, pl%c
	if r != nil {
		active.elementwise.scaleShiftAdd(y[o:o+hw], x[o:o+hw], r[o:o+hw], scale[ch], shift[ch], t.act)
		return
	}
	active.elementwise.scaleShift(y[o:o+hw], x[o:o+hw], scale[ch], shift[ch], t.act)
}

// ScaleShiftAdd sets y = act(x*scale[c] + shift[c] + r): a BatchNorm, the
// residual sum after it and their activation (the tail of a ResNet
// block) in one pass. The result is bit for bit that of ScaleShift
// without activation, Add, then ReLU or ReLU6. y may be x or r.
func ScaleShiftAdd(n, c, hw int, x, scale, shift, r, y []float32, act Activation) {
	scaleShift(n, c, hw, x, scale, shift, r[:n*c*hw], y, act)
}

// ScaleShiftAddMoments is ScaleShiftAdd that also writes x's per-channel
// mean and mean of squares, as ScaleShiftMoments does.
func ScaleShiftAddMoments(n, c, hw int, x, scale, shift, r, y []float32, act Activation, mean, meanSq []float32) {
	scaleShiftMoments(n, c, hw, x, scale, shift, r, y, act, mean, meanSq)
}

// ScaleShiftBackward accumulates the gradients of ScaleShift. y is its
// output, which gives the activation mask (ReLU: y > 0; ReLU6: 0 < y < 6,
// as PyTorch). Any of dx, dScale and dShift may be nil; the per-channel
// sums are accumulated in float64.
func ScaleShiftBackward(n, c, hw int, x, scale, y, dy, dx, dScale, dShift []float32, act Activation) {
	t := newTask(scaleShiftBackwardRange)
	t.n, t.act = [3]int{n, c, hw}, act
	t.s[0], t.s[1], t.s[2] = x[:n*c*hw], y[:n*c*hw], dy[:n*c*hw]
	t.s[3] = scale[:c]
	if dx != nil {
		t.s[4] = dx[:n*c*hw]
		t.spread(n*c, n*c*hw)
	}
	if dScale != nil || dShift != nil {
		t.body = scaleShiftSumsRange
		t.s[4], t.s[5] = dScale, dShift
		t.spread(c, n*c*hw)
	}
	t.release()
}

// ScaleShiftMomentsBackward adds into dx what ScaleShiftBackward
// (without dScale and dShift) and then ChannelMomentsBackward would, with
// dMoments = [dMean | dMeanSq] (2c floats), bit for bit; with set, dx is
// overwritten as if it had held zeros (and is never read). One pass over
// memory where the AVX2 kernel runs (the activation's mask recomputed
// from x, so y is not read), else the two passes plane by plane, the
// second on a plane of dx still in cache.
func ScaleShiftMomentsBackward(n, c, hw int, x, scale, shift, y, dy, dx, dMoments []float32, act Activation, set bool) {
	scaleShiftMomentsBackward(n, c, hw, x, scale, shift[:c], y, dy, dx, dMoments, act, set)
}

// ScaleShiftAddMomentsBackward is ScaleShiftMomentsBackward for x of
// ScaleShiftAddMoments, whose output y gives the activation's mask (x
// alone no longer does). The residual's gradient is dy where y passed
// gradient: ReLUBackward(y, dy, dr), or dy itself without activation.
func ScaleShiftAddMomentsBackward(n, c, hw int, x, scale, y, dy, dx, dMoments []float32, act Activation, set bool) {
	scaleShiftMomentsBackward(n, c, hw, x, scale, nil, y, dy, dx, dMoments, act, set)
}

// scaleShiftMomentsBackward is ScaleShiftMomentsBackward, or with shift
// nil ScaleShiftAddMomentsBackward (the mask from y).
func scaleShiftMomentsBackward(n, c, hw int, x, scale, shift, y, dy, dx, dMoments []float32, act Activation, set bool) {
	t := newScaleShiftMomentsBackward(n, c, hw, x, scale, shift, y, dy, dx, dMoments, act, set)
	t.spread(n*c, n*c*hw)
	t.release()
}

// newScaleShiftMomentsBackward returns the task of
// scaleShiftMomentsBackward, for its planes to be run by spread or, plane
// by plane, by the depthwise convolution's backward pass that writes dy
// (Conv2dBackwardDataMomentsBackward).
func newScaleShiftMomentsBackward(n, c, hw int, x, scale, shift, y, dy, dx, dMoments []float32, act Activation, set bool) *task {
	t := newTask(scaleShiftMomentsBackwardRange)
	t.n, t.act = [3]int{n, c, hw}, act
	t.s[0], t.s[1], t.s[2] = x[:n*c*hw], y[:n*c*hw], dy[:n*c*hw]
	t.s[3], t.s[4], t.s[5] = scale[:c], dx[:n*c*hw], dMoments[:2*c]
	t.s[6], t.f[0] = shift, 0
	if set {
		t.f[0] = 1
	}
	return t
}

// scaleShiftMomentsBackwardRange runs planes [lo, hi) of
// scaleShiftMomentsBackward.
func scaleShiftMomentsBackwardRange(t *task, lo, hi int) {
	for pl := lo; pl < hi; pl++ {
		t.momentsBackwardPlane(pl)
	}
}

// momentsBackwardPlane runs plane pl of scaleShiftMomentsBackward: the
// mask from y where the task has no shift (ScaleShiftAddMomentsBackward),
// else from x.
func (t *task) momentsBackwardPlane(pl int) {
	n, c, hw := t.n[0], t.n[1], t.n[2]
	x, y, dy, scale, dx, dm := t.s[0], t.s[1], t.s[2], t.s[3], t.s[4], t.s[5]
	shift, set := t.s[6], t.f[0] != 0
	cnt := float32(n * hw)
	o, ch := pl*hw, pl%c
	if shift == nil {
		active.elementwise.resMomentsBackward(x[o:o+hw], y[o:o+hw], dy[o:o+hw], dx[o:o+hw], scale[ch], 0, dm[ch]/cnt, 2*dm[c+ch]/cnt, t.act, set)
		return
	}
	active.elementwise.bnMomentsBackward(x[o:o+hw], y[o:o+hw], dy[o:o+hw], dx[o:o+hw], scale[ch], shift[ch], dm[ch]/cnt, 2*dm[c+ch]/cnt, t.act, set)
}

// bnMomentsBackwardComposed is one plane of ScaleShiftMomentsBackward as
// the two kernels it fuses, the mask from y (so also one plane of
// ScaleShiftAddMomentsBackward).
func bnMomentsBackwardComposed(x, y, dy, dx []float32, scale, _, a, b float32, act Activation, set bool) {
	if set {
		clear(dx)
	}
	active.elementwise.scaleShiftBackward(y, dy, dx, scale, act)
	active.elementwise.momentsBackward(x, dx, a, b)
}

// scaleShiftBackwardRange accumulates dx over planes [lo, hi).
func scaleShiftBackwardRange(t *task, lo, hi int) {
	c, hw := t.n[1], t.n[2]
	y, dy, scale, dx := t.s[1], t.s[2], t.s[3], t.s[4]
	for pl := lo; pl < hi; pl++ {
		o := pl * hw
		active.elementwise.scaleShiftBackward(y[o:o+hw], dy[o:o+hw], dx[o:o+hw], scale[pl%c], t.act)
	}
}

// scaleShiftSumsRange accumulates dScale and dShift over channels [lo, hi).
func scaleShiftSumsRange(t *task, lo, hi int) {
	n, c, hw := t.n[0], t.n[1], t.n[2]
	x, y, dy, dScale, dShift := t.s[0], t.s[1], t.s[2], t.s[4], t.s[5]
	for ch := lo; ch < hi; ch++ {
		var ds, db float64
		for b := range n {
			o := (b*c + ch) * hw
			gs, gb := scaleShiftSums(x[o:o+hw], y[o:o+hw], dy[o:o+hw], t.act)
			ds += gs
			db += gb
		}
		if dScale != nil {
			dScale[ch] += float32(ds)
		}
		if dShift != nil {
			dShift[ch] += float32(db)
		}
	}
}
