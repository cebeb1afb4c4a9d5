package dataset

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/dataset/datasettest"
	"github.com/dghcore/dghcore/tensor"
)

// The fixtures come from tools/torchref/preprocess.py (PIL 9.4,
// torchvision 0.14).

func readNPY(t *testing.T, name string) *tensor.NPYArray {
	t.Helper()
	a, err := tensor.ReadNPYArray(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestResizeMatchesPIL checks the resampler byte for byte against
// Image.resize(BILINEAR) for down- and upscaling, one-axis and degenerate
// sizes.
func TestResizeMatchesPIL(t *testing.T) {
	in := readNPY(t, "resize_input.npy")
	src := rgbImage{w: in.Shape[1], h: in.Shape[0], pix: in.Uint8}
	for _, size := range [][2]int{{16, 11}, {80, 50}, {37, 9}, {5, 23}, {100, 7}, {36, 24}, {1, 1}, {257, 3}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			want := readNPY(t, fmt.Sprintf("resize_%dx%d.npy", size[0], size[1]))
			got := resizeBilinear(src, size[0], size[1])
			if got.w != want.Shape[1] || got.h != want.Shape[0] {
				t.Fatalf("size %dx%d, want %dx%d", got.w, got.h, want.Shape[1], want.Shape[0])
			}
			for i := range got.pix {
				if got.pix[i] != want.Uint8[i] {
					p := i / 3
					t.Fatalf("pixel (%d,%d) channel %d = %d, PIL %d", p%got.w, p/got.w, i%3, got.pix[i], want.Uint8[i])
				}
			}
		})
	}
}

func TestResizeIdentity(t *testing.T) {
	in := readNPY(t, "resize_input.npy")
	src := rgbImage{w: in.Shape[1], h: in.Shape[0], pix: in.Uint8}
	if got := resizeBilinear(src, src.w, src.h); !slices.Equal(got.pix, src.pix) {
		t.Error("resizing to the same size changed pixels")
	}
}

// Cases worked out from torchvision's formulas: int(256*long/short) and
// round-half-to-even crop offsets.
func TestResizeAndCropGeometry(t *testing.T) {
	sizes := []struct{ w, h, wantW, wantH int }{
		{500, 375, 341, 256},
		{375, 500, 256, 341},
		{300, 300, 256, 256},
		{257, 1000, 256, 996},
		{640, 427, 383, 256},
		{1000, 3, 85333, 256},
	}
	for _, c := range sizes {
		if w, h := shorterSideSize(c.w, c.h, 256); w != c.wantW || h != c.wantH {
			t.Errorf("shorterSideSize(%d, %d) = %d, %d, want %d, %d", c.w, c.h, w, h, c.wantW, c.wantH)
		}
	}
	offsets := []struct{ in, want int }{{224, 0}, {256, 16}, {257, 16}, {258, 17}, {259, 18}, {260, 18}, {261, 18}}
	for _, c := range offsets {
		if got := centerCropOffset(c.in, 224); got != c.want {
			t.Errorf("centerCropOffset(%d, 224) = %d, want %d", c.in, got, c.want)
		}
	}
}

// levels is the largest difference of two normalised tensors in pixel
// levels (1/255 before normalisation), channel c every plane elements.
func levels(got, want []float32, plane int) float64 {
	worst := 0.0
	for i := range got {
		c := (i / plane) % 3
		d := math.Abs(float64(got[i]-want[i])) * float64(ImageNetNormalization.Std[c]) * 255
		worst = max(worst, d)
	}
	return worst
}

// TestPhotosMatchTorchvision runs the whole evaluation preprocessing on
// real photographs. PNG decoding is lossless, and baseline JPEGs go through
// our decoder with libjpeg's integer IDCT, upsampling and colour
// conversion, so all of those must agree with torchvision to the last bit.
// (With image/jpeg's IDCT they were off by up to 3 levels, 0.036 on
// average, and 2 levels after preprocessing; without libjpeg's upsampling
// the 4:2:0 photo was off by 11.) Progressive JPEGs still go through
// image/jpeg and get the difference measured here as their bound.
func TestPhotosMatchTorchvision(t *testing.T) {
	cases := []struct {
		name string
		// maxDecode and meanDecode bound the largest and the mean
		// difference of the decoded RGB bytes, maxOut the largest of the
		// preprocessed tensor, all in levels.
		maxDecode, meanDecode, maxOut float64
	}{
		{"camera_crop.png", 0, 0, 0},
		{"chelsea_crop.png", 0, 0, 0},
		{"coffee_crop.png", 0, 0, 0},
		{"rocket.jpg", 0, 0, 0},                // 4:4:4
		{"coffee_422.jpg", 0, 0, 0},            // 4:2:2
		{"chelsea_420.jpg", 0, 0, 0},           // 4:2:0
		{"chelsea_420_rst.jpg", 0, 0, 0},       // restart markers
		{"coffee_422_scans.jpg", 0, 0, 0},      // one scan per component, restarts
		{"camera_grey.jpg", 0, 0, 0},           // one component
		{"coffee_progressive.jpg", 2, 0.04, 2}, // image/jpeg
	}
	lut := ImageNetNormalization.table()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := decodeFile(filepath.Join("testdata", "photos", c.name), nil)
			if err != nil {
				t.Fatal(err)
			}
			stem := strings.TrimSuffix(c.name, filepath.Ext(c.name))
			dec := readNPY(t, "decoded_"+stem+".npy")
			worst, sum, n := 0, 0, 0
			for y := 0; y < img.h; y += 5 {
				for x := 0; x < img.w; x += 5 {
					for ch := range 3 {
						got := int(img.pix[3*(y*img.w+x)+ch])
						want := int(dec.Uint8[((y/5)*dec.Shape[1]+x/5)*3+ch])
						d := max(got-want, want-got)
						worst, sum, n = max(worst, d), sum+d, n+1
					}
				}
			}
			mean := float64(sum) / float64(n)
			t.Logf("decode: max %d levels, mean %.3f", worst, mean)
			if float64(worst) > c.maxDecode || mean > c.meanDecode {
				t.Errorf("decoded pixels differ from PIL by up to %d levels, %.3f on average; want <= %g, %g",
					worst, mean, c.maxDecode, c.meanDecode)
			}

			out := make([]float32, 3*224*224)
			if err := preprocessRGB(img, 256, 224, lut, out); err != nil {
				t.Fatal(err)
			}
			want := readNPY(t, "expected_"+stem+".npy")
			got := make([]float32, 0, len(want.Float32))
			for ch := range 3 {
				for y := 0; y < 224; y += 4 {
					for x := 0; x < 224; x += 4 {
						got = append(got, out[(ch*224+y)*224+x])
					}
				}
			}
			d := levels(got, want.Float32, 56*56)
			t.Logf("preprocessed: max %.3f levels", d)
			// Identical bytes give identical float32 values; 1e-3 of a
			// level only absorbs the conversion back to levels.
			if d > c.maxOut+1e-3 {
				t.Errorf("preprocessed tensor differs from torchvision by %.3f levels, want <= %g", d, c.maxOut)
			}
		})
	}
}

// TestFolderMatchesImageFolder reads the tiny ImageNet-style folder end to
// end: the val/ sub-folder is found, classes are sorted, nested images are
// included, other files skipped, and batches equal torchvision's.
func TestFolderMatchesImageFolder(t *testing.T) {
	f, err := OpenFolder(filepath.Join("testdata", "imagenet"), FolderOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("testdata", "imagenet", "val"); f.Root() != want {
		t.Errorf("root %s, want %s", f.Root(), want)
	}
	wantClasses := []string{"n02123045_cat", "n04266014_rocket", "n07920052_coffee"}
	if !slices.Equal(f.Classes(), wantClasses) {
		t.Errorf("classes %v, want %v", f.Classes(), wantClasses)
	}
	if s := f.SampleShape(); s != [3]int{3, 224, 224} {
		t.Errorf("sample shape %v", s)
	}
	wantImages := readNPY(t, "folder_images.npy")
	wantLabels, err := readNPY(t, "folder_labels.npy").Ints()
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != len(wantLabels) {
		t.Fatalf("%d images, want %d", f.Len(), len(wantLabels))
	}
	per := 3 * 28 * 28
	seen := 0
	for b, err := range Batches(f, 2) {
		if err != nil {
			t.Fatal(err)
		}
		if b.Start != seen {
			t.Errorf("batch starts at %d, want %d", b.Start, seen)
		}
		for k, label := range b.Labels {
			i := b.Start + k
			if int64(label) != wantLabels[i] {
				t.Errorf("image %d (%s): label %d, want %d", i, f.Path(i), label, wantLabels[i])
			}
			got := make([]float32, 0, per)
			for ch := range 3 {
				for y := 0; y < 224; y += 8 {
					for x := 0; x < 224; x += 8 {
						got = append(got, b.Images.Data[((k*3+ch)*224+y)*224+x])
					}
				}
			}
			if d := levels(got, wantImages.Float32[i*per:(i+1)*per], 28*28); d > 1e-3 {
				t.Errorf("image %d (%s) differs from torchvision by %.3f levels", i, f.Path(i), d)
			}
		}
		seen += len(b.Labels)
	}
	if seen != f.Len() {
		t.Errorf("batches covered %d of %d images", seen, f.Len())
	}
}

func TestFolderErrors(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel, content string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, strings.Split(rel, "/")[0])
	}
	cases := []struct {
		name, root, want string
		opt              FolderOptions
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file", FolderOptions{}},
		{"file", mk("plain/x.txt", ""), "no class sub-folders", FolderOptions{}},
		{"empty class", mk("empty/a/readme.txt", "hi"), `class "a" has no`, FolderOptions{}},
		{"bmp", mk("bmp/a/x.bmp", "BM"), ".bmp images are not supported", FolderOptions{}},
		{"crop", mk("crop/a/x.png", ""), "crop", FolderOptions{Resize: 100, Crop: 200}},
		{"norm", mk("norm/a/x.png", ""), "normalisation", FolderOptions{Norm: Normalization{Mean: []float32{0}, Std: []float32{1}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := OpenFolder(c.root, c.opt)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}

	// A file that is not the image its name says fails on Load, naming it.
	root := mk("bad/a/x.png", "not a png")
	f, err := OpenFolder(root, FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Load([]int{0}); err == nil || !strings.Contains(err.Error(), "x.png") {
		t.Errorf("load error %v, want one naming x.png", err)
	}
	if _, _, err := f.Load([]int{1}); err == nil {
		t.Error("out-of-range index accepted")
	}
}

// BenchmarkPreprocess times decoding and preprocessing one 391x291 4:2:0
// JPEG photograph, the typical ImageNet case, on one core.
func BenchmarkPreprocess(b *testing.B) {
	path := filepath.Join("testdata", "photos", "chelsea_420.jpg")
	lut := ImageNetNormalization.table()
	out := make([]float32, 3*224*224)
	for b.Loop() {
		img, err := decodeFile(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := preprocessRGB(img, 256, 224, lut, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// TestFolderLinks: links to folders are followed once each. Two links to
// "." inside a class folder (a loop that grows exponentially when
// followed blindly) and a link into another class add no image twice.
func TestFolderLinks(t *testing.T) {
	dir := t.TempDir()
	for _, rel := range []string{"a/1.png", "a/2.png", "b/3.png"} {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, datasettest.PNGClaiming(t, 2, 2), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{{".", "a/loop1"}, {".", "a/loop2"}, {"../a", "b/to_a"}, {"..", "b/up"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	f, err := OpenFolder(dir, FolderOptions{Resize: 2, Crop: 2})
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 3 || f.Revisits() != 4 {
		t.Errorf("%d images, %d folders skipped; want 3 images and the 4 links skipped: %v", f.Len(), f.Revisits(), f.files)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OpenFolderContext(ctx, dir, FolderOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled scan: %v", err)
	}
}

// TestFolderCheck lists every bad file with its reason, in order, and
// Without leaves the rest with their labels.
func TestFolderCheck(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"a/1.png": datasettest.PNGClaiming(t, 2, 2), "a/2.png": []byte("not a png"),
		"b/3.png": datasettest.PNGClaiming(t, 2, 2), "b/4.jpg": readPhoto(t, "rocket.jpg")[:300],
		"c/5.png": datasettest.PNGClaiming(t, 2, 2),
	}
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := OpenFolder(dir, FolderOptions{Resize: 2, Crop: 2, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	bad, err := f.Check(context.Background(), func(done int) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 2 || bad[0].Index != 1 || bad[1].Index != 3 || calls != 5 {
		t.Fatalf("bad %v after %d progress calls, want images 1 and 3 after 5", bad, calls)
	}
	if !strings.Contains(bad[0].Err.Error(), "2.png") || !strings.Contains(bad[1].Err.Error(), "4.jpg") {
		t.Errorf("reasons %v, %v", bad[0].Err, bad[1].Err)
	}
	g := f.Without([]int{1, 3})
	if g.Len() != 3 || len(g.Classes()) != 3 || f.Len() != 5 {
		t.Fatalf("without the bad ones: %d images in %d classes (the original keeps %d)", g.Len(), len(g.Classes()), f.Len())
	}
	if _, labels, err := g.Load([]int{0, 1, 2}); err != nil || !slices.Equal(labels, []int{0, 1, 2}) {
		t.Errorf("the rest load as %v, %v", labels, err)
	}
	if bad, err := g.Check(context.Background(), nil); err != nil || len(bad) != 0 {
		t.Errorf("checking the rest: %v, %v", bad, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Check(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled check: %v", err)
	}
}
