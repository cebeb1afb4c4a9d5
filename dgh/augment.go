package dgh

import (
	"math"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// ValidRange returns, per channel, the smallest and largest normalised
// value a pixel byte can take: (v/255 - mean_c)/std_c for v in 0..255
// (docs/DESIGN.md, "DGH"). Images are kept inside it. std must be positive.
func ValidRange(mean, std []float32) (lo, hi []float32) {
	lo = make([]float32, len(mean))
	hi = make([]float32, len(mean))
	for c := range mean {
		a := (float32(0)/255 - mean[c]) / std[c]
		b := (float32(255)/255 - mean[c]) / std[c]
		lo[c], hi[c] = min(a, b), max(a, b)
	}
	return lo, hi
}

// GaussianKernel returns the size x size smoothing filter, row-major:
// exp(-(dx^2+dy^2)/(2 sigma^2)) for offsets dx, dy from the centre tap,
// normalised to sum 1 so smoothing keeps an image's mean. size is odd.
func GaussianKernel(size int, sigma float64) []float32 {
	k := make([]float64, size*size)
	sum := 0.0
	for i := range size {
		for j := range size {
			dy, dx := float64(i-size/2), float64(j-size/2)
			v := math.Exp(-(dx*dx + dy*dy) / (2 * sigma * sigma))
			k[i*size+j] = v
			sum += v
		}
	}
	out := make([]float32, len(k))
	for i, v := range k {
		out[i] = float32(v / sum)
	}
	return out
}

// augmentation is one draw of the random input manipulation.
type augmentation struct {
	flip      bool
	top, left int // crop offset into the padded image
}

// pipeline is DGH's image pipeline (docs/DESIGN.md, "DGH", step 1 and
// "finalise"): optional smoothing, a crop back to the output size and a
// clip to the valid range.
type pipeline struct {
	size, padding int
	lo, hi        []float32
	kernel        *autograd.Var // [C, 1, k, k] depthwise weight; nil when k == 1
}

func newPipeline(s *settings) *pipeline {
	p := &pipeline{size: s.imageSize, padding: s.padding}
	p.lo, p.hi = ValidRange(s.mean, s.std)
	if s.smoothSize > 1 {
		k := GaussianKernel(s.smoothSize, s.smoothSigma)
		c := s.channels()
		w := tensor.New(c, 1, s.smoothSize, s.smoothSize)
		for ch := range c {
			copy(w.Data[ch*len(k):], k)
		}
		p.kernel = autograd.Const(w)
	}
	return p
}

// smooth is the depthwise Gaussian convolution with zero padding size/2,
// so the image keeps its size.
func (p *pipeline) smooth(x *autograd.Var) *autograd.Var {
	if p.kernel == nil {
		return x
	}
	k := p.kernel.Shape()[2]
	return autograd.Conv2d(x, p.kernel, nil, [2]int{1, 1}, [2]int{k / 2, k / 2}, [2]int{1, 1}, p.kernel.Shape()[0])
}

// draw picks one augmentation for a whole batch: a flip with probability
// 0.5, then the crop's top and left offsets, in that order.
func (p *pipeline) draw(rng *tensor.RNG) augmentation {
	flip := rng.Bool(0.5)
	top := rng.Intn(p.padding + 1)
	left := rng.Intn(p.padding + 1)
	return augmentation{flip: flip, top: top, left: left}
}

// centre is the offset of the centre crop, rounded half to even like
// torchvision's CenterCrop.
func (p *pipeline) centre() int {
	return int(math.RoundToEven(float64(p.padding) / 2))
}

// augment is the training-time manipulation: flip, smoothing, crop, clip.
// The clip passes the gradient straight through, so pixels pushed outside
// the valid range still feel the loss.
func (p *pipeline) augment(x *autograd.Var, a augmentation) *autograd.Var {
	if a.flip {
		x = autograd.FlipW(x)
	}
	x = p.smooth(x)
	x = autograd.Crop(x, a.top, a.left, p.size, p.size)
	return autograd.ClampST(x, p.lo, p.hi)
}

// finalize turns optimised images into output images: smoothing, centre
// crop, clip.
func (p *pipeline) finalize(x *autograd.Var) *autograd.Var {
	x = p.smooth(x)
	off := p.centre()
	x = autograd.Crop(x, off, off, p.size, p.size)
	return autograd.ClampST(x, p.lo, p.hi)
}

// clipInPlace clamps t [N, C, H, W] to the valid range channel by channel.
func clipInPlace(t *tensor.Tensor, lo, hi []float32) {
	c := t.Shape[1]
	plane := t.Shape[2] * t.Shape[3]
	for i := 0; i < len(t.Data); i += plane {
		ch := (i / plane) % c
		row := t.Data[i : i+plane]
		for j, v := range row {
			row[j] = min(max(v, lo[ch]), hi[ch])
		}
	}
}
