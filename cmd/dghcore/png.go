package main

// Generated images as PNG files (docs/DESIGN.md, "Command line"): every image
// de-normalised back to 8-bit pixels, and a contact sheet of the first
// ones for a quick look.

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"

	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/tensor"
)

const (
	contactSheetName = "contact_sheet.png"
	contactSheetMax  = 100 // images on the sheet: a 10 x 10 grid at most
	contactSheetGap  = 2   // pixels between images
)

// writePNGs writes image_NNNN.png for every image of imgs [N, C, H, W]
// (C is 1 or 3) and the contact sheet into dir, and returns N.
func writePNGs(dir string, imgs *tensor.Tensor, norm dataset.Normalization) (int, error) {
	if imgs.Dims() != 4 || (imgs.Shape[1] != 1 && imgs.Shape[1] != 3) {
		return 0, fmt.Errorf("images of shape %v: PNG needs N x 1 x H x W or N x 3 x H x W", imgs.Shape)
	}
	if len(norm.Mean) != imgs.Shape[1] || len(norm.Std) != imgs.Shape[1] {
		return 0, fmt.Errorf("normalisation for %d channels, images have %d", len(norm.Mean), imgs.Shape[1])
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	n := imgs.Shape[0]
	digits := max(4, len(fmt.Sprint(n-1)))
	pics := make([]image.Image, n)
	for i := range n {
		pics[i] = toImage(imgs.Batch(i, i+1), norm)
		name := filepath.Join(dir, fmt.Sprintf("image_%0*d.png", digits, i))
		if err := savePNG(name, pics[i]); err != nil {
			return 0, err
		}
	}
	if err := savePNG(filepath.Join(dir, contactSheetName), contactSheet(pics[:min(n, contactSheetMax)])); err != nil {
		return 0, err
	}
	return n, nil
}

// toImage de-normalises one image [1, C, H, W]: byte = round(255 *
// (x*std + mean)), clamped to 0..255, the inverse of the data sets'
// normalisation.
func toImage(x *tensor.Tensor, norm dataset.Normalization) image.Image {
	c, h, w := x.Shape[1], x.Shape[2], x.Shape[3]
	pixel := func(ch, i int) uint8 {
		v := 255 * (float64(x.Data[ch*h*w+i])*float64(norm.Std[ch]) + float64(norm.Mean[ch]))
		return uint8(math.Round(min(max(v, 0), 255)))
	}
	rect := image.Rect(0, 0, w, h)
	if c == 1 {
		g := image.NewGray(rect)
		for i := range h * w {
			g.Pix[i] = pixel(0, i)
		}
		return g
	}
	img := image.NewNRGBA(rect)
	for i := range h * w {
		img.Pix[4*i] = pixel(0, i)
		img.Pix[4*i+1] = pixel(1, i)
		img.Pix[4*i+2] = pixel(2, i)
		img.Pix[4*i+3] = 255
	}
	return img
}

// contactSheet tiles pics (all the same size) in a near-square grid on
// black.
func contactSheet(pics []image.Image) image.Image {
	cols := int(math.Ceil(math.Sqrt(float64(len(pics)))))
	rows := (len(pics) + cols - 1) / cols
	b := pics[0].Bounds()
	cw, ch := b.Dx()+contactSheetGap, b.Dy()+contactSheetGap
	sheet := image.NewNRGBA(image.Rect(0, 0, cols*cw-contactSheetGap, rows*ch-contactSheetGap))
	draw.Draw(sheet, sheet.Bounds(), image.NewUniform(color.Black), image.Point{}, draw.Src)
	for i, p := range pics {
		at := image.Pt(i%cols*cw, i/cols*ch)
		draw.Draw(sheet, b.Add(at), p, b.Min, draw.Src)
	}
	return sheet
}

func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = png.Encode(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
