package dataset

// Colour conversion of decoded JPEGs as libjpeg(-turbo) does it by default,
// which is what PIL, and so torchvision's reference numbers, see. Our
// baseline decoder (jpeg_decode.go) and image/jpeg hand back the chroma
// planes at their stored (subsampled) resolution; color.YCbCrToRGB would
// repeat each chroma sample over its 2x2 (or 2x1, 1x2) block. libjpeg
// instead upsamples "fancily": linear interpolation between sample
// centres, output centres at 1/4 and 3/4 of the way between input centres,
// with fixed rounding biases, and image edges replicated. Most ImageNet
// photographs are 4:2:0, where the difference reaches ten levels on sharp
// colour edges. Fed our decoder's planes the result equals PIL's bit for
// bit; fed image/jpeg's (progressive files) it is within a level or two,
// from image/jpeg's different IDCT.

import "image"

// fancyUpsample returns a chroma plane of the stored size cw x ch
// (row stride stride) upsampled to w x h for the given subsampling.
// ok is false for the ratios libjpeg has no fancy path for.
func fancyUpsample(plane []uint8, stride, cw, ch, w, h int, ratio image.YCbCrSubsampleRatio) ([]uint8, bool) {
	row := func(y int) []uint8 {
		y = min(max(y, 0), ch-1) // replicate the top and bottom rows
		return plane[y*stride : y*stride+cw]
	}
	out := make([]uint8, w*h)
	switch ratio {
	case image.YCbCrSubsampleRatio444:
		for y := range h {
			copy(out[y*w:(y+1)*w], row(y))
		}
	case image.YCbCrSubsampleRatio422: // h2v1
		tmp := make([]uint8, 2*cw)
		for y := range h {
			upsampleRow(tmp, row(y))
			copy(out[y*w:(y+1)*w], tmp)
		}
	case image.YCbCrSubsampleRatio440: // h1v2
		for y := range h {
			near, far := row(y/2), row(y/2-1)
			bias := 1
			if y%2 == 1 {
				far, bias = row(y/2+1), 2
			}
			o := out[y*w : (y+1)*w]
			for x := range o {
				o[x] = uint8((3*int(near[x]) + int(far[x]) + bias) >> 2)
			}
		}
	case image.YCbCrSubsampleRatio420: // h2v2
		sums := make([]int, cw)
		tmp := make([]uint8, 2*cw)
		for y := range h {
			near, far := row(y/2), row(y/2-1)
			if y%2 == 1 {
				far = row(y/2 + 1)
			}
			for x := range sums {
				sums[x] = 3*int(near[x]) + int(far[x])
			}
			upsampleColumnSums(tmp, sums)
			copy(out[y*w:(y+1)*w], tmp)
		}
	default:
		return nil, false
	}
	return out, true
}

// upsampleRow doubles a row with the h2v1 triangle filter.
func upsampleRow(out, in []uint8) {
	n := len(in)
	if n == 1 {
		out[0], out[1] = in[0], in[0]
		return
	}
	out[0] = in[0]
	out[1] = uint8((3*int(in[0]) + int(in[1]) + 2) >> 2)
	for x := 1; x < n-1; x++ {
		v := 3 * int(in[x])
		out[2*x] = uint8((v + int(in[x-1]) + 1) >> 2)
		out[2*x+1] = uint8((v + int(in[x+1]) + 2) >> 2)
	}
	out[2*n-2] = uint8((3*int(in[n-1]) + int(in[n-2]) + 1) >> 2)
	out[2*n-1] = in[n-1]
}

// upsampleColumnSums doubles a row of vertical sums 3*near+far (h2v2): the
// horizontal step of the same filter, at four times the scale.
func upsampleColumnSums(out []uint8, s []int) {
	n := len(s)
	if n == 1 {
		out[0] = uint8((4*s[0] + 8) >> 4)
		out[1] = uint8((4*s[0] + 7) >> 4)
		return
	}
	out[0] = uint8((4*s[0] + 8) >> 4)
	out[1] = uint8((3*s[0] + s[1] + 7) >> 4)
	for x := 1; x < n-1; x++ {
		out[2*x] = uint8((3*s[x] + s[x-1] + 8) >> 4)
		out[2*x+1] = uint8((3*s[x] + s[x+1] + 7) >> 4)
	}
	out[2*n-2] = uint8((3*s[n-1] + s[n-2] + 8) >> 4)
	out[2*n-1] = uint8((4*s[n-1] + 7) >> 4)
}

// libjpeg's YCbCr -> RGB tables: 16-bit fixed-point constants of the
// JFIF equations, rounded once per table entry.
var yccTables = func() (t struct{ crR, cbB, crG, cbG [256]int }) {
	const scaleBits, half = 16, 1 << 15
	fix := func(x float64) int { return int(x*(1<<scaleBits) + 0.5) }
	for i := range 256 {
		x := i - 128
		t.crR[i] = (fix(1.40200)*x + half) >> scaleBits
		t.cbB[i] = (fix(1.77200)*x + half) >> scaleBits
		t.crG[i] = -fix(0.71414) * x
		t.cbG[i] = -fix(0.34414)*x + half
	}
	return t
}()

func clamp255(v int) uint8 {
	return uint8(min(max(v, 0), 255))
}

// ycbcrToRGB converts a decoded JPEG the way libjpeg does. It reports
// false for subsampling ratios it does not handle (4:1:1, 4:1:0).
func ycbcrToRGB(m *image.YCbCr) (rgbImage, bool) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	if b.Min != (image.Point{}) {
		return rgbImage{}, false // decoders hand back images at the origin
	}
	cw, ch := w, h
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		cw = (w + 1) / 2
	case image.YCbCrSubsampleRatio420:
		cw, ch = (w+1)/2, (h+1)/2
	case image.YCbCrSubsampleRatio440:
		ch = (h + 1) / 2
	}
	cb, ok := fancyUpsample(m.Cb, m.CStride, cw, ch, w, h, m.SubsampleRatio)
	if !ok {
		return rgbImage{}, false
	}
	cr, _ := fancyUpsample(m.Cr, m.CStride, cw, ch, w, h, m.SubsampleRatio)
	out := rgbImage{w: w, h: h, pix: make([]uint8, 3*w*h)}
	t := &yccTables
	for y := range h {
		ys := m.Y[y*m.YStride : y*m.YStride+w]
		for x, yv := range ys {
			i := y*w + x
			Y, u, v := int(yv), cb[i], cr[i]
			out.pix[3*i] = clamp255(Y + t.crR[v])
			out.pix[3*i+1] = clamp255(Y + (t.cbG[u]+t.crG[v])>>16)
			out.pix[3*i+2] = clamp255(Y + t.cbB[u])
		}
	}
	return out, true
}
