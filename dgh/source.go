package dgh

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// Calibration data types (docs/DESIGN.md, "DGH"), as --calib_data_type names them.
const (
	SourceDGH         = "dgh"
	SourceRandomNoise = "random_noise"
	SourceRealData    = "real_data"
)

// SourceNames lists the calibration data types.
func SourceNames() []string { return []string{SourceDGH, SourceRandomNoise, SourceRealData} }

// Source produces calibration images for a model: N x C x S x S,
// normalised like the model's input.
type Source interface {
	Images(ctx context.Context, model *zoo.Model) (*tensor.Tensor, error)
}

// Dataset is a labelled image set already prepared with the model's
// evaluation preprocessing (resize, crop, normalise); Image returns one
// C x H x W image. Decoding lives outside this package.
type Dataset interface {
	Len() int
	Image(i int) (*tensor.Tensor, error)
}

// NewSource returns the calibration source of the given type. cfg gives
// the number of images, the seed and, for dgh, every generation setting;
// data is only used (and required) by real_data.
func NewSource(kind string, cfg Config, data Dataset) (Source, error) {
	switch kind {
	case SourceDGH:
		return DGHSource{Config: cfg}, nil
	case SourceRandomNoise:
		return RandomNoise{Config: cfg}, nil
	case SourceRealData:
		if data == nil {
			return nil, fmt.Errorf("dgh: calibration data type %q needs a dataset", kind)
		}
		return RealData{Data: data, NImages: cfg.NImages, Seed: cfg.Seed}, nil
	}
	return nil, fmt.Errorf("dgh: unknown calibration data type %q (want one of %v)", kind, SourceNames())
}

// DGHSource generates the images with Generate.
type DGHSource struct{ Config Config }

// Images runs Generate.
func (s DGHSource) Images(ctx context.Context, model *zoo.Model) (*tensor.Tensor, error) {
	return Generate(ctx, model, s.Config)
}

// RandomNoise draws N(0,1) images clipped to the valid pixel range, with
// Config's NImages, ImageSize, Mean, Std and Seed (defaults as Generate).
type RandomNoise struct{ Config Config }

// Images draws the noise images.
func (s RandomNoise) Images(ctx context.Context, model *zoo.Model) (*tensor.Tensor, error) {
	if model == nil {
		return nil, fmt.Errorf("dgh: random noise: no model")
	}
	st, err := s.Config.resolve(model.Spec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := tensor.New(st.nImages, st.channels(), st.imageSize, st.imageSize)
	tensor.NewRNG(st.seed).FillNormal(t, 0, 1)
	lo, hi := ValidRange(st.mean, st.std)
	clipInPlace(t, lo, hi)
	return t, nil
}

// RealData samples NImages distinct images (default 1024) from a labelled
// set, uniformly with the seeded generator.
type RealData struct {
	Data    Dataset
	NImages int
	Seed    uint64
}

// Images samples and stacks the images.
func (s RealData) Images(ctx context.Context, _ *zoo.Model) (*tensor.Tensor, error) {
	n := cmp.Or(s.NImages, DefaultNImages)
	if n < 1 {
		return nil, fmt.Errorf("dgh: real data: number of images %d, want at least 1", n)
	}
	if s.Data == nil {
		return nil, fmt.Errorf("dgh: real data: no dataset")
	}
	if s.Data.Len() < n {
		return nil, fmt.Errorf("dgh: real data: the dataset has %d images, want %d", s.Data.Len(), n)
	}
	idx := tensor.NewRNG(s.Seed).Perm(s.Data.Len())[:n]
	var out *tensor.Tensor
	var per int
	for i, j := range idx {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := s.Data.Image(j)
		if err != nil {
			return nil, fmt.Errorf("dgh: real data: image %d: %w", j, err)
		}
		if out == nil {
			if img.Dims() != 3 {
				return nil, fmt.Errorf("dgh: real data: image %d has shape %v, want C x H x W", j, img.Shape)
			}
			out = tensor.New(append([]int{n}, img.Shape...)...)
			per = img.Numel()
		}
		if !slices.Equal(img.Shape, out.Shape[1:]) {
			return nil, fmt.Errorf("dgh: real data: image %d has shape %v, the first had %v", j, img.Shape, out.Shape[1:])
		}
		copy(out.Data[i*per:(i+1)*per], img.Data)
	}
	return out, nil
}
