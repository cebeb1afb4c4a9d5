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
	"os"
	"sync"
)

// MaxImagePixels bounds width*height of an image file, read from its
// header before anything is allocated: PIL's own limit (it refuses images
// above twice its MAX_IMAGE_PIXELS of 89478485), so a file torchvision
// loads loads here too, while a small file claiming 30000x30000 pixels, a
// decompression bomb, is refused at once.
const MaxImagePixels = 2 * 89478485

// imageSize reads a JPEG's or PNG's dimensions from its header and
// refuses more than MaxImagePixels.
func imageSize(data []byte) (w, h int, err error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, 0, err
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return 0, 0, fmt.Errorf("the header claims %dx%d pixels, more than the %d million an image may have (PIL's limit)",
			cfg.Width, cfg.Height, MaxImagePixels/1000000)
	}
	return cfg.Width, cfg.Height, nil
}

// decodeRGB decodes a JPEG or PNG held in data, told apart by content.
// Baseline JPEGs go through our decoder, which reproduces libjpeg's
// samples (jpeg_decode.go); the JPEG variants it leaves alone, and files it
// finds corrupt but image/jpeg still reads, decode as before with
// image/jpeg. The caller has checked the size with imageSize.
func decodeRGB(data []byte) (rgbImage, error) {
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

// decodeFile decodes the image file at path. Its header is read first:
// an image above MaxImagePixels is refused, and budget, when not nil,
// holds the decode back until the memory it takes fits beside the other
// decodes in flight.
func decodeFile(path string, budget *pixelBudget) (rgbImage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return rgbImage{}, err
	}
	w, h, err := imageSize(data)
	if err != nil {
		return rgbImage{}, fmt.Errorf("decode %s: %w", path, err)
	}
	if budget != nil {
		defer budget.acquire(int64(w) * int64(h))()
	}
	img, err := decodeRGB(data)
	if err != nil {
		return rgbImage{}, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// pixelBudget bounds the pixels decoded at once across goroutines: each
// decode of n pixels holds n of them (a decode takes about 10 bytes a
// pixel with its planes and the resized copy). One decode larger than the
// whole budget runs alone.
type pixelBudget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	left  int64
	total int64
}

func newPixelBudget(pixels int64) *pixelBudget {
	b := &pixelBudget{left: pixels, total: pixels}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n pixels fit and returns the function that gives
// them back.
func (b *pixelBudget) acquire(n int64) (release func()) {
	n = min(n, b.total)
	b.mu.Lock()
	for b.left < n {
		b.cond.Wait()
	}
	b.left -= n
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.left += n
		b.mu.Unlock()
		b.cond.Broadcast()
	}
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
