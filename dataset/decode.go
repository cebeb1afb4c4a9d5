package dataset

// Decoding a JPEG or PNG file to 8-bit RGB the way torchvision's folder
// loader sees it: PIL's Image.open(...).convert("RGB"). Grey images repeat
// their value in the three channels, alpha is dropped (not composited), a
// palette is looked up, and 16-bit samples keep their high byte.

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder with image.Decode
	_ "image/png"  // and the PNG one
	"io"
	"os"
)

// decodeRGB decodes a JPEG or PNG stream, told apart by content. Baseline
// JPEGs go through our decoder, which reproduces libjpeg's samples
// (jpeg_decode.go); the JPEG variants it leaves alone, and files it finds
// corrupt but image/jpeg still reads, decode as before with image/jpeg.
func decodeRGB(r io.Reader) (rgbImage, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return rgbImage{}, err
	}
	if bytes.HasPrefix(data, []byte{0xff, 0xd8}) {
		img, jerr := decodeJPEG(data)
		if jerr == nil {
			return toRGB(img), nil
		}
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			if errors.Is(jerr, errJPEGUnsupported) {
				return rgbImage{}, err
			}
			return rgbImage{}, jerr
		}
		return toRGB(img), nil
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return rgbImage{}, err
	}
	return toRGB(img), nil
}

// decodeFile decodes the image file at path.
func decodeFile(path string) (rgbImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return rgbImage{}, err
	}
	defer f.Close()
	img, err := decodeRGB(f)
	if err != nil {
		return rgbImage{}, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// toRGB converts any decoded image to interleaved 8-bit RGB.
func toRGB(img image.Image) rgbImage {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := rgbImage{w: w, h: h, pix: make([]uint8, 3*w*h)}
	p := out.pix
	switch m := img.(type) {
	case *image.YCbCr:
		if rgb, ok := ycbcrToRGB(m); ok {
			return rgb
		}
		for y := range h {
			for x := range w {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				o := 3 * (y*w + x)
				p[o], p[o+1], p[o+2] = r, g, bl
			}
		}
	case *image.Gray:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				o := 3 * (y*w + x)
				p[o], p[o+1], p[o+2] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := range w {
				o := 3 * (y*w + x)
				p[o], p[o+1], p[o+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.Paletted:
		// Palette entries hold the file's colours; take RGB without alpha.
		lut := make([][3]uint8, len(m.Palette))
		for i, c := range m.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{n.R, n.G, n.B}
		}
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				var c [3]uint8
				if int(v) < len(lut) {
					c = lut[v]
				}
				o := 3 * (y*w + x)
				p[o], p[o+1], p[o+2] = c[0], c[1], c[2]
			}
		}
	default:
		// 16-bit PNGs, CMYK JPEGs and the rest: through non-premultiplied
		// 16-bit colour, keeping the high byte.
		for y := range h {
			for x := range w {
				c := color.NRGBA64Model.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA64)
				o := 3 * (y*w + x)
				p[o], p[o+1], p[o+2] = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8)
			}
		}
	}
	return out
}
