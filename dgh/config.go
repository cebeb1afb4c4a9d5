// Package dgh generates calibration images for post-training quantization
// from a trained network alone (docs/DESIGN.md, "DGH"): DGH ("Data Generation for
// Hardware-Friendly Post-Training Quantization", Dikstein et al., WACV
// 2025) optimises random images until the statistics they produce at every
// BatchNorm layer, aggregated over all images, match the layer's running
// statistics, while a small output loss stretches the logits.
//
// The package also offers the two simpler calibration sources of the
// reference, random noise and real data, behind the same Source interface.
package dgh

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/dghcore/dghcore/layers/zoo"
)

// The paper's defaults (docs/DESIGN.md, "DGH"), used where a Config field is zero.
const (
	DefaultNImages        = 1024
	DefaultBatchSize      = 64
	DefaultIterations     = 1000
	DefaultLR             = 16
	DefaultPadding        = 32
	DefaultStdFactor      = 10
	DefaultSmoothingSize  = 3
	DefaultSmoothingSigma = 1.25
	DefaultSaveEvery      = 0 // only when cancelled
)

// Config controls Generate. Its zero value means the paper's settings for
// the model: every zero field takes the default named beside it.
type Config struct {
	NImages    int     // images to generate; 1024
	BatchSize  int     // generation batch size; 64
	Iterations int     // passes over all batches; 1000
	LR         float64 // RAdam learning rate; 16

	// Padding is added to each side length of the optimised images, which
	// random crops then cut back to ImageSize; 32. Negative means none.
	Padding   int
	ImageSize int // output side length; the model's Spec.InputSize

	StdFactor float64 // weight of the std term of the BN loss; 10
	// OutputLossFactor weighs the output (distribution-stretching) loss;
	// the model's Spec.OutputLossFactor. Negative switches the loss off.
	OutputLossFactor float64

	// SmoothingSize is the Gaussian filter's (odd) side; 3. 1 switches
	// smoothing off.
	SmoothingSize  int
	SmoothingSigma float64 // 1.25

	// Mean and Std are the per-channel input normalisation that defines the
	// valid pixel range; the model's Spec.Mean and Spec.Std.
	Mean, Std []float32

	Seed uint64 // seeds images, batch order, flips and crops

	// Progress, when set, is called after every iteration.
	Progress ProgressFunc

	// StatePath, when set, is where the resumable state is written:
	// every SaveEvery iterations (0: never periodically) and whenever ctx
	// is cancelled. Writes are atomic (temporary file, then rename).
	StatePath string
	SaveEvery int
	// Resume continues from StatePath instead of starting afresh. The
	// state must come from a run with the same model and settings.
	Resume bool
}

// Progress describes the state of a run after an iteration.
type Progress struct {
	Iteration  int     // iterations done, 1..Iterations
	Iterations int     // total
	BNLoss     float64 // mean over the iteration's batches
	OutputLoss float64 // mean over the iteration's batches (unweighted)
	LR         float64 // mean learning rate of the batches' optimizers
	// ImagesPerSec counts image optimisation steps per second in this run.
	ImagesPerSec float64
	Remaining    time.Duration // estimated time to finish
}

// ProgressFunc receives progress reports; it runs on Generate's goroutine.
type ProgressFunc func(Progress)

// settings is a Config with every default filled in and checked.
type settings struct {
	nImages, batchSize, iterations int
	lr                             float64
	padding, imageSize             int
	stdFactor, outputLossFactor    float64
	smoothSize                     int
	smoothSigma                    float64
	mean, std                      []float32
	seed                           uint64
}

// resolve fills the defaults from the paper and from the model's spec and
// validates the result, so bad input fails before any long work.
func (c Config) resolve(spec zoo.Spec) (settings, error) {
	s := settings{
		nImages:          cmp.Or(c.NImages, DefaultNImages),
		batchSize:        cmp.Or(c.BatchSize, DefaultBatchSize),
		iterations:       cmp.Or(c.Iterations, DefaultIterations),
		lr:               cmp.Or(c.LR, DefaultLR),
		padding:          cmp.Or(c.Padding, DefaultPadding),
		imageSize:        cmp.Or(c.ImageSize, spec.InputSize),
		stdFactor:        cmp.Or(c.StdFactor, DefaultStdFactor),
		outputLossFactor: cmp.Or(c.OutputLossFactor, float64(spec.OutputLossFactor)),
		smoothSize:       cmp.Or(c.SmoothingSize, DefaultSmoothingSize),
		smoothSigma:      cmp.Or(c.SmoothingSigma, DefaultSmoothingSigma),
		mean:             c.Mean,
		std:              c.Std,
		seed:             c.Seed,
	}
	if s.mean == nil {
		s.mean = spec.Mean
	}
	if s.std == nil {
		s.std = spec.Std
	}
	s.padding = max(s.padding, 0)
	if s.outputLossFactor < 0 {
		s.outputLossFactor = 0
	}
	switch {
	case s.nImages < 1:
		return s, fmt.Errorf("dgh: number of images %d, want at least 1", s.nImages)
	case s.batchSize < 1:
		return s, fmt.Errorf("dgh: batch size %d, want at least 1", s.batchSize)
	case s.iterations < 0:
		return s, fmt.Errorf("dgh: iterations %d, want at least 0", s.iterations)
	case !(s.lr > 0) || math.IsInf(s.lr, 0):
		return s, fmt.Errorf("dgh: learning rate %v, want a positive number", s.lr)
	case s.imageSize < 1:
		return s, fmt.Errorf("dgh: image size %d, want at least 1 (set Config.ImageSize or the model's input size)", s.imageSize)
	case !(s.stdFactor >= 0) || math.IsInf(s.stdFactor, 0):
		return s, fmt.Errorf("dgh: std factor %v, want a finite value >= 0", s.stdFactor)
	case math.IsNaN(s.outputLossFactor) || math.IsInf(s.outputLossFactor, 0):
		return s, fmt.Errorf("dgh: output loss factor %v, want a finite value", s.outputLossFactor)
	case s.smoothSize < 1 || s.smoothSize%2 == 0:
		return s, fmt.Errorf("dgh: smoothing filter size %d, want an odd size >= 1", s.smoothSize)
	case !(s.smoothSigma > 0) || math.IsInf(s.smoothSigma, 0):
		return s, fmt.Errorf("dgh: smoothing sigma %v, want a positive number", s.smoothSigma)
	case len(s.mean) == 0 || len(s.mean) != len(s.std):
		return s, fmt.Errorf("dgh: normalisation has %d means and %d stds, want one of each per input channel", len(s.mean), len(s.std))
	}
	for c, sd := range s.std {
		if !(sd > 0) || math.IsInf(float64(sd), 0) || math.IsNaN(float64(s.mean[c])) || math.IsInf(float64(s.mean[c]), 0) {
			return s, fmt.Errorf("dgh: channel %d normalisation mean %v std %v, want finite values and std > 0", c, s.mean[c], sd)
		}
	}
	return s, nil
}

// channels is the number of image channels.
func (s *settings) channels() int { return len(s.mean) }

// paddedSize is the side of the optimised images.
func (s *settings) paddedSize() int { return s.imageSize + s.padding }

// nBatches is ceil(N/B).
func (s *settings) nBatches() int { return (s.nImages + s.batchSize - 1) / s.batchSize }

// batchRange is the image index range of batch b.
func (s *settings) batchRange(b int) (lo, hi int) {
	return b * s.batchSize, min((b+1)*s.batchSize, s.nImages)
}
