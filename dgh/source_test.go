package dgh

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

// fakeDataset holds images whose every value is the image's index, so a
// sample shows which images it took.
type fakeDataset struct {
	n       int
	shape   []int
	badFrom int // images from this index on have another shape (0: none)
}

func (d fakeDataset) Len() int { return d.n }

func (d fakeDataset) Image(i int) (*tensor.Tensor, error) {
	if i < 0 || i >= d.n {
		return nil, errors.New("out of range")
	}
	shape := d.shape
	if d.badFrom > 0 && i >= d.badFrom {
		shape = []int{1, 2, 2}
	}
	t := tensor.New(shape...)
	t.Fill(float32(i))
	return t, nil
}

func TestRealDataSamplesDistinctImages(t *testing.T) {
	d := fakeDataset{n: 50, shape: []int{3, 4, 4}}
	src, err := NewSource(SourceRealData, Config{NImages: 20, Seed: 9}, d)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := src.Images(context.Background(), smallModel(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{20, 3, 4, 4}; !slices.Equal(imgs.Shape, want) {
		t.Fatalf("shape %v, want %v", imgs.Shape, want)
	}
	seen := map[float32]bool{}
	for i := range 20 {
		img := imgs.Data[i*48 : (i+1)*48]
		v := img[0]
		for _, x := range img {
			if x != v {
				t.Fatalf("image %d mixes dataset images", i)
			}
		}
		if seen[v] {
			t.Fatalf("dataset image %v sampled twice", v)
		}
		seen[v] = true
	}
	again, _ := src.Images(context.Background(), nil)
	if !slices.Equal(again.Data, imgs.Data) {
		t.Error("the same seed sampled other images")
	}
}

func TestSourceErrors(t *testing.T) {
	model := smallModel(t)
	for _, tc := range []struct {
		name string
		kind string
		cfg  Config
		data Dataset
		want string
	}{
		{"unknown kind", "imagenet", Config{}, nil, "unknown calibration data type"},
		{"real data without a dataset", SourceRealData, Config{}, nil, "needs a dataset"},
		{"too few images", SourceRealData, Config{NImages: 10}, fakeDataset{n: 5, shape: []int{3, 2, 2}}, "has 5 images, want 10"},
		{"mixed shapes", SourceRealData, Config{NImages: 10}, fakeDataset{n: 10, shape: []int{3, 2, 2}, badFrom: 1}, "has shape"},
		{"noise with a bad std", SourceRandomNoise, Config{NImages: 2, Std: []float32{1, -1, 1}}, nil, "std > 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewSource(tc.kind, tc.cfg, tc.data)
			if err == nil {
				_, err = src.Images(context.Background(), model)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRandomNoise(t *testing.T) {
	model := smallModel(t)
	src, err := NewSource(SourceRandomNoise, Config{NImages: 40, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := src.Images(context.Background(), model)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{40, 3, 8, 8}; !slices.Equal(imgs.Shape, want) {
		t.Fatalf("shape %v, want %v", imgs.Shape, want)
	}
	lo, hi := ValidRange(imagenetMean, imagenetStd)
	var sum float64
	var clipped int
	for i, v := range imgs.Data {
		c := (i / 64) % 3
		if v < lo[c] || v > hi[c] {
			t.Fatalf("value %v outside channel %d's range", v, c)
		}
		if v == lo[c] || v == hi[c] {
			clipped++
		}
		sum += float64(v)
	}
	// N(0,1) clipped to about [-2.1, 2.6]: mean near 0, a few percent at
	// the bounds.
	if mean := sum / float64(len(imgs.Data)); mean < -0.05 || mean > 0.05 {
		t.Errorf("mean %v, want about 0", mean)
	}
	if frac := float64(clipped) / float64(len(imgs.Data)); frac < 0.005 || frac > 0.05 {
		t.Errorf("%.3f of the values clipped, want a few percent", frac)
	}
}
