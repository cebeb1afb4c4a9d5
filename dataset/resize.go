package dataset

// Antialiased bilinear resizing exactly as Pillow's Image.resize(size,
// BILINEAR) computes it for 8-bit images, which is what torchvision's
// Resize does to a PIL image (docs/DESIGN.md, "Command line").
//
// Pillow resamples separably, horizontal pass first, then vertical, and
// skips a pass whose size does not change. For every output position it
// takes the triangle filter stretched by the downscale factor (so a
// reduction averages over the whole footprint instead of aliasing),
// normalises the weights of that position to sum to one, and converts them
// to fixed point with 22 fractional bits. Each pass accumulates in 32-bit
// integers starting from one half, shifts right by 22 and clamps to a byte,
// so the intermediate image between the passes is itself uint8.

import "math"

// resizePrecisionBits is the fixed-point fraction of the 8-bit path: 32
// bits less 8 for the pixel value less 2 for the sign and the headroom of
// negative lobes (which the triangle filter does not have).
const resizePrecisionBits = 32 - 8 - 2

// rgbImage is an 8-bit interleaved RGB raster.
type rgbImage struct {
	w, h int
	pix  []uint8 // 3*w*h bytes, row by row
}

// resampleWeights holds, for each output position, the first input index
// and the fixed-point weights of the inputs it reads.
type resampleWeights struct {
	start []int
	taps  [][]int32
}

// bilinearFilter is the triangle kernel with support 1.
func bilinearFilter(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// bilinearWeights computes the taps that map inSize samples to outSize.
func bilinearWeights(inSize, outSize int) resampleWeights {
	const support = 1.0
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	reach := support * filterScale
	inv := 1 / filterScale
	wts := resampleWeights{start: make([]int, outSize), taps: make([][]int32, outSize)}
	k := make([]float64, 0, int(math.Ceil(reach))*2+1)
	for x := range outSize {
		center := (float64(x) + 0.5) * scale
		// int() truncates towards zero like C's cast, which is what
		// decides the window at the left edge.
		lo := max(int(center-reach+0.5), 0)
		hi := min(int(center+reach+0.5), inSize)
		k = k[:0]
		sum := 0.0
		for i := lo; i < hi; i++ {
			v := bilinearFilter((float64(i) - center + 0.5) * inv)
			k = append(k, v)
			sum += v
		}
		taps := make([]int32, len(k))
		for i, v := range k {
			if sum != 0 {
				v /= sum
			}
			// Round half away from zero, then truncate, as the C cast does.
			if v < 0 {
				taps[i] = int32(-0.5 + v*(1<<resizePrecisionBits))
			} else {
				taps[i] = int32(0.5 + v*(1<<resizePrecisionBits))
			}
		}
		wts.start[x], wts.taps[x] = lo, taps
	}
	return wts
}

// clampByte converts a fixed-point accumulator to a pixel value.
func clampByte(acc int32) uint8 {
	v := acc >> resizePrecisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resizeBilinear returns src resized to w x h.
func resizeBilinear(src rgbImage, w, h int) rgbImage {
	if w != src.w {
		src = resampleRows(src, w)
	}
	if h != src.h {
		src = resampleColumns(src, h)
	}
	return src
}

// resampleRows is the horizontal pass: every row to width w.
func resampleRows(src rgbImage, w int) rgbImage {
	wts := bilinearWeights(src.w, w)
	dst := rgbImage{w: w, h: src.h, pix: make([]uint8, 3*w*src.h)}
	const half = 1 << (resizePrecisionBits - 1)
	for y := range src.h {
		row := src.pix[3*y*src.w : 3*(y+1)*src.w]
		out := dst.pix[3*y*w : 3*(y+1)*w]
		for x := range w {
			in := row[3*wts.start[x]:]
			r, g, b := int32(half), int32(half), int32(half)
			for i, t := range wts.taps[x] {
				r += int32(in[3*i]) * t
				g += int32(in[3*i+1]) * t
				b += int32(in[3*i+2]) * t
			}
			out[3*x], out[3*x+1], out[3*x+2] = clampByte(r), clampByte(g), clampByte(b)
		}
	}
	return dst
}

// resampleColumns is the vertical pass: every column to height h.
func resampleColumns(src rgbImage, h int) rgbImage {
	wts := bilinearWeights(src.h, h)
	stride := 3 * src.w
	dst := rgbImage{w: src.w, h: h, pix: make([]uint8, stride*h)}
	acc := make([]int32, stride)
	const half = 1 << (resizePrecisionBits - 1)
	for y := range h {
		for i := range acc {
			acc[i] = half
		}
		for i, t := range wts.taps[y] {
			row := src.pix[(wts.start[y]+i)*stride : (wts.start[y]+i+1)*stride]
			for j, v := range row {
				acc[j] += int32(v) * t
			}
		}
		out := dst.pix[y*stride : (y+1)*stride]
		for j, a := range acc {
			out[j] = clampByte(a)
		}
	}
	return dst
}

// shorterSideSize is torchvision's Resize(size) output for a w x h image:
// the shorter side becomes size and the longer int(size*long/short).
func shorterSideSize(w, h, size int) (int, int) {
	if w <= h {
		return size, int(float64(size) * float64(h) / float64(w))
	}
	return int(float64(size) * float64(w) / float64(h)), size
}

// centerCropOffset is torchvision's CenterCrop offset along one axis:
// round((in - crop) / 2) with Python's round half to even.
func centerCropOffset(in, crop int) int {
	return int(math.RoundToEven(float64(in-crop) / 2))
}
