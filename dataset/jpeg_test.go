package dataset

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func readPhoto(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "photos", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// dctScale is C(u)C(v) of T.81 A.3.3, exact for u = v = 0 so that
// DC-only blocks land exactly on the rounding boundaries.
func dctScale(u, v int) float64 {
	switch {
	case u == 0 && v == 0:
		return 0.5
	case u == 0 || v == 0:
		return math.Sqrt2 / 2
	}
	return 1
}

func dctCos(x, u int) float64 { return math.Cos(float64(2*x+1) * float64(u) * math.Pi / 16) }

// idctReference is the exact 2-D inverse DCT of T.81 A.3.3, level-shifted
// and rounded half up, in float64.
func idctReference(coef *[64]int32) [64]int {
	var out [64]int
	for y := range 8 {
		for x := range 8 {
			s := 0.0
			for v := range 8 {
				for u := range 8 {
					s += dctScale(u, v) * float64(coef[8*v+u]) * dctCos(x, u) * dctCos(y, v)
				}
			}
			out[8*y+x] = min(max(int(math.Floor(s/4+0.5))+128, 0), 255)
		}
	}
	return out
}

// fdctQuantised is the forward DCT of an 8-bit block (T.81 A.3.3),
// quantised with step q and dequantised again: coefficients as a decoder
// sees them.
func fdctQuantised(pix *[64]int, q float64) [64]int32 {
	var coef [64]int32
	for v := range 8 {
		for u := range 8 {
			s := 0.0
			for y := range 8 {
				for x := range 8 {
					s += float64(pix[8*y+x]-128) * dctCos(x, u) * dctCos(y, v)
				}
			}
			coef[8*v+u] = int32(math.Round(dctScale(u, v)*s/4/q) * q)
		}
	}
	return coef
}

// TestIDCTAccuracy checks the integer IDCT against the exact transform:
// equal for DC-only blocks (libjpeg's shortcut and the full path agree),
// within one level otherwise (the IEEE 1180 accuracy libjpeg's islow
// meets), on coefficients of random and smooth 8-bit blocks.
func TestIDCTAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(pix *[64]int) {
		for i := range pix {
			pix[i] = rng.IntN(256)
		}
	}
	ramp := func(pix *[64]int) {
		a, b, c := rng.IntN(200), rng.IntN(7), rng.IntN(7)
		for i := range pix {
			pix[i] = a + b*(i%8) + c*(i/8)
		}
	}
	cases := []struct {
		name  string
		fill  func(*[64]int)
		q     float64 // quantiser step; 0 keeps the DC term only
		exact bool
	}{
		{"dc only", noise, 0, true},
		{"noise q1", noise, 1, false},
		{"noise q16", noise, 16, false},
		{"ramp q2", ramp, 2, false},
	}
	var dst [64]uint8
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			worst, sum := 0, 0
			const blocks = 200
			for range blocks {
				var pix [64]int
				c.fill(&pix)
				var coef [64]int32
				if c.q == 0 {
					coef[0] = rng.Int32N(2048) - 1024
				} else {
					coef = fdctQuantised(&pix, c.q)
				}
				want := idctReference(&coef)
				idctISlow(&coef, dst[:], 8)
				for i := range dst {
					d := int(dst[i]) - want[i]
					d = max(d, -d)
					worst, sum = max(worst, d), sum+d
				}
			}
			t.Logf("max %d, mean %.4f", worst, float64(sum)/(64*blocks))
			if c.exact && worst != 0 || worst > 1 {
				t.Errorf("IDCT differs from the exact transform by up to %d levels", worst)
			}
		})
	}
}

// TestIDCTLimit checks the wrap-around of out-of-range outputs that
// libjpeg's range-limit table applies (only corrupt data gets there).
func TestIDCTLimit(t *testing.T) {
	for _, c := range []struct {
		in   int32
		want uint8
	}{{-128, 0}, {-129, 0}, {0, 128}, {127, 255}, {128, 255}, {511, 255}, {512, 0}, {895, 0}, {896, 0}, {1023, 127}, {-512, 0}, {-513, 255}} {
		if got := idctLimit(c.in); got != c.want {
			t.Errorf("idctLimit(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestDecodeJPEGLayouts checks that the baseline files take our decoder's
// path with the right layout, that lossless re-codings (restart markers,
// one scan per component) give the same pixels as their originals, and
// that every sample stays near image/jpeg's (whose IDCT rounds
// differently).
func TestDecodeJPEGLayouts(t *testing.T) {
	cases := []struct {
		name, same string
		ratio      image.YCbCrSubsampleRatio
		grey       bool
	}{
		{"rocket.jpg", "", image.YCbCrSubsampleRatio444, false},
		{"coffee_422.jpg", "", image.YCbCrSubsampleRatio422, false},
		{"coffee_422_scans.jpg", "coffee_422.jpg", image.YCbCrSubsampleRatio422, false},
		{"chelsea_420.jpg", "", image.YCbCrSubsampleRatio420, false},
		{"chelsea_420_rst.jpg", "chelsea_420.jpg", image.YCbCrSubsampleRatio420, false},
		{"camera_grey.jpg", "", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := readPhoto(t, c.name)
			img, err := decodeJPEG(data)
			if err != nil {
				t.Fatal(err)
			}
			b := img.Bounds()
			if cfg, err := jpeg.DecodeConfig(bytes.NewReader(data)); err != nil || b != image.Rect(0, 0, cfg.Width, cfg.Height) {
				t.Fatalf("bounds %v, header %+v (%v)", b, cfg, err)
			}
			switch m := img.(type) {
			case *image.Gray:
				if !c.grey {
					t.Fatal("decoded as grey")
				}
			case *image.YCbCr:
				if c.grey || m.SubsampleRatio != c.ratio {
					t.Fatalf("subsampling %v, want %v", m.SubsampleRatio, c.ratio)
				}
			}
			got := toRGB(img)
			// image/jpeg cannot read restart markers in single-component
			// scans ("missing 0xff00 sequence"); the comparison with the
			// original covers that file.
			if std, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				t.Logf("image/jpeg: %v", err)
			} else {
				ref, worst := toRGB(std), 0
				for i := range got.pix {
					d := int(got.pix[i]) - int(ref.pix[i])
					worst = max(worst, d, -d)
				}
				t.Logf("max difference from image/jpeg + libjpeg upsampling: %d levels", worst)
				if worst > 3 {
					t.Errorf("differs from image/jpeg by %d levels", worst)
				}
			}
			if c.same != "" {
				orig, err := decodeJPEG(readPhoto(t, c.same))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.pix, toRGB(orig).pix) {
					t.Errorf("pixels differ from %s", c.same)
				}
			}
		})
	}
}

// TestDecodeJPEGUnsupported checks that the variants left to image/jpeg
// say so, and still decode through decodeRGB.
func TestDecodeJPEGUnsupported(t *testing.T) {
	rocket := readPhoto(t, "rocket.jpg")
	sof := bytes.Index(rocket, []byte{0xff, 0xc0})
	edit := func(off int, b byte) []byte {
		d := slices.Clone(rocket)
		d[off] = b
		return d
	}
	cases := []struct {
		name     string
		data     []byte
		decodes  bool // image/jpeg can decode it
		wantSame bool
	}{
		{"progressive", readPhoto(t, "coffee_progressive.jpg"), true, false},
		{"arithmetic", edit(sof+1, 0xc9), false, false},
		{"12-bit", edit(sof+4, 12), false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decodeJPEG(c.data); !errors.Is(err, errJPEGUnsupported) {
				t.Fatalf("error %v, want errJPEGUnsupported", err)
			}
			_, err := decodeRGB(c.data)
			if (err == nil) != c.decodes {
				t.Errorf("decodeRGB error %v", err)
			}
		})
	}
}

// TestDecodeJPEGTruncated cuts a file with restart markers at many points:
// every cut inside the data is an error, never a panic, while a file
// missing only its EOI marker, or with junk after the last scan, decodes
// in full, as libjpeg reads it.
func TestDecodeJPEGTruncated(t *testing.T) {
	data := readPhoto(t, "chelsea_420_rst.jpg")
	full, err := decodeJPEG(data)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(data)-2; n += 251 {
		if _, err := decodeJPEG(data[:n]); err == nil {
			t.Errorf("cut at %d of %d bytes decoded", n, len(data))
		}
		if _, err := decodeRGB(data[:n]); err == nil {
			t.Errorf("decodeRGB: cut at %d of %d bytes decoded", n, len(data))
		}
	}
	body := data[:len(data)-2]
	for name, d := range map[string][]byte{
		"without EOI":   body,
		"trailing junk": append(slices.Clone(body), 0xff, 0xc4, 0x00),
	} {
		img, err := decodeJPEG(d)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !slices.Equal(toRGB(img).pix, toRGB(full).pix) {
			t.Errorf("%s: different pixels", name)
		}
	}
}

// FuzzDecodeJPEG feeds mutated photographs to the decoder: it may fail,
// but must not panic, and what it returns must convert to RGB.
func FuzzDecodeJPEG(f *testing.F) {
	names, err := filepath.Glob(filepath.Join("testdata", "photos", "*.jpg"))
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &jpegDecoder{data: data, maxPixels: 1 << 20}
		img, err := d.decode()
		if err != nil {
			return
		}
		rgb := toRGB(img)
		if b := img.Bounds(); len(rgb.pix) != 3*b.Dx()*b.Dy() {
			t.Fatalf("%d bytes for %v", len(rgb.pix), b)
		}
	})
}
