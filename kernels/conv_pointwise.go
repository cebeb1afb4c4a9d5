package kernels

// Pointwise convolutions (docs/DESIGN.md, "Kernels"): a 1x1, stride-1,
// unpadded convolution is a GEMM on x itself, image by image; a strided
// 1x1 one (ResNet's downsampling shortcut) is a pointwise one on the
// subsampled input, and its backward the pointwise one's added back every
// stride.

// pointwise computes (image, group) tasks [lo, hi) of a 1x1 stride-1
// unpadded convolution: y[n,g] = beta*y[n,g] + w[g] x[n,g] (+ bias).
func (j *convJob) pointwise(lo, hi int) {
	p := &j.p
	cg, kg := p.C/p.Groups, p.K/p.Groups
	hw := p.H * p.W
	for t := lo; t < hi; t++ {
		n, g := t/p.Groups, t%p.Groups
		y := j.y[(n*p.K+g*kg)*hw:]
		sgemmPrepacked(kg, hw, cg, j.w[g*j.packedSize:], j.x[(n*p.C+g*cg)*hw:], hw, nil, colGather{}, j.beta, y, hw, false, j.parallelGEMM)
		if j.bias != nil {
			for k := range kg {
				b := j.bias[g*kg+k]
				yk := y[k*hw : (k+1)*hw]
				for i := range yk {
					yk[i] += b
				}
			}
		}
		if j.epi != nil {
			for k := range kg {
				j.epi.apply(g*kg+k, y[k*hw:(k+1)*hw])
			}
		}
		j.planesDone(n*p.K+g*kg, kg)
	}
}

// subsample copies input planes [lo, hi) of x, every StrideH-th row and
// StrideW-th column, into y (OH x OW planes).
func (j *convJob) subsample(lo, hi int) { j.strideRows(lo, hi, false) }

// upsample adds the OH x OW planes [lo, hi) of y into x every
// StrideH-th row and StrideW-th column: the adjoint of subsample.
func (j *convJob) upsample(lo, hi int) { j.strideRows(lo, hi, true) }

// strideRows pairs every StrideH-th row of planes [lo, hi) of x with a
// row of y and copies it there, or with fold adds y's row back into it.
func (j *convJob) strideRows(lo, hi int, fold bool) {
	p := &j.p
	oh0, ow0 := p.OutH(), p.OutW()
	for pl := lo; pl < hi; pl++ {
		x := j.x[pl*p.H*p.W:][:p.H*p.W]
		y := j.y[pl*oh0*ow0:][:oh0*ow0]
		for oh := range oh0 {
			if fold {
				foldRow(x[oh*p.StrideH*p.W:], y[oh*ow0:][:ow0], p.StrideW)
			} else {
				fillRow(y[oh*ow0:][:ow0], x[oh*p.StrideH*p.W:], p.StrideW)
			}
		}
	}
}
