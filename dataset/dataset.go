// Package dataset reads the labelled image sets dghcore evaluates on and
// calibrates with (docs/DESIGN.md, "Command line"): IDX files in the MNIST /
// Fashion-MNIST layout and ImageNet-style class folders of JPEG and PNG
// photographs, preprocessed like torchvision's evaluation transforms.
//
// Image decoding lives here, not in the numeric packages: what leaves this
// package is a normalised float32 NCHW *tensor.Tensor and integer labels.
package dataset

import (
	"fmt"
	"iter"
	"math/rand/v2"

	"github.com/dghcore/dghcore/tensor"
)

// Dataset is a labelled image set read by index. Implementations are safe
// for concurrent Load calls.
type Dataset interface {
	// Len is the number of samples.
	Len() int
	// SampleShape is the [C, H, W] shape of one preprocessed sample.
	SampleShape() [3]int
	// Classes names the labels: Classes()[label].
	Classes() []string
	// Load returns the samples at the given indices, in that order, as a
	// len(indices) x C x H x W tensor, and their labels.
	Load(indices []int) (*tensor.Tensor, []int, error)
}

// Batch is a run of consecutive samples of a Dataset.
type Batch struct {
	// Start is the index of the first sample in the dataset.
	Start  int
	Images *tensor.Tensor
	Labels []int
}

// Range loads the samples lo..hi-1.
func Range(d Dataset, lo, hi int) (*tensor.Tensor, []int, error) {
	if lo < 0 || hi > d.Len() || lo > hi {
		return nil, nil, fmt.Errorf("dataset: range [%d, %d) outside [0, %d)", lo, hi, d.Len())
	}
	idx := make([]int, hi-lo)
	for i := range idx {
		idx[i] = lo + i
	}
	return d.Load(idx)
}

// Batches walks d in order in batches of size samples (the last one may be
// shorter). A load error is yielded once and ends the walk; breaking out of
// the loop stops further loading, so a cancelled evaluation costs at most
// one batch.
func Batches(d Dataset, size int) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		if size < 1 {
			yield(Batch{}, fmt.Errorf("dataset: batch size %d < 1", size))
			return
		}
		for lo := 0; lo < d.Len(); lo += size {
			hi := min(lo+size, d.Len())
			images, labels, err := Range(d, lo, hi)
			if err != nil {
				yield(Batch{Start: lo}, err)
				return
			}
			if !yield(Batch{Start: lo, Images: images, Labels: labels}, nil) {
				return
			}
		}
	}
}

// subset is a view of some samples of a parent dataset, in a given order.
type subset struct {
	parent  Dataset
	indices []int
}

// Subset returns the samples of d at the given indices as a dataset of its
// own, e.g. the first n samples of a test set for a quick evaluation.
func Subset(d Dataset, indices []int) (Dataset, error) {
	for _, i := range indices {
		if i < 0 || i >= d.Len() {
			return nil, fmt.Errorf("dataset: subset index %d outside [0, %d)", i, d.Len())
		}
	}
	return &subset{parent: d, indices: append([]int(nil), indices...)}, nil
}

// Sample returns n distinct samples of d drawn uniformly at random with a
// seeded generator, in the order drawn: the `real_data` calibration set of
// docs/DESIGN.md, "DGH".
func Sample(d Dataset, n int, seed uint64) (Dataset, error) {
	if n < 1 || n > d.Len() {
		return nil, fmt.Errorf("dataset: cannot sample %d of %d images", n, d.Len())
	}
	rng := rand.New(rand.NewPCG(seed, 0x6467686461746173))
	return Subset(d, rng.Perm(d.Len())[:n])
}

func (s *subset) Len() int            { return len(s.indices) }
func (s *subset) SampleShape() [3]int { return s.parent.SampleShape() }
func (s *subset) Classes() []string   { return s.parent.Classes() }
func (s *subset) Load(indices []int) (*tensor.Tensor, []int, error) {
	parent := make([]int, len(indices))
	for k, i := range indices {
		if i < 0 || i >= len(s.indices) {
			return nil, nil, fmt.Errorf("dataset: index %d outside [0, %d)", i, len(s.indices))
		}
		parent[k] = s.indices[i]
	}
	return s.parent.Load(parent)
}

// Normalization is the per-channel mean and standard deviation applied after
// scaling a pixel byte v to v/255, as torchvision's Normalize does:
// x = (v/255 - Mean[c]) / Std[c], computed in float32.
type Normalization struct {
	Mean, Std []float32
}

// ImageNetNormalization is the normalisation of torchvision's ImageNet
// models and of the checkpoints in docs/DESIGN.md, "Models and checkpoints".
var ImageNetNormalization = Normalization{
	Mean: []float32{0.485, 0.456, 0.406},
	Std:  []float32{0.229, 0.224, 0.225},
}

func (n Normalization) check(channels int) error {
	if len(n.Mean) != channels || len(n.Std) != channels {
		return fmt.Errorf("dataset: normalisation has %d means and %d stds for %d channels",
			len(n.Mean), len(n.Std), channels)
	}
	for c, s := range n.Std {
		if !(s > 0) {
			return fmt.Errorf("dataset: normalisation std[%d] = %g is not positive", c, s)
		}
	}
	return nil
}

// table returns the normalised value of every byte for every channel, so
// converting a pixel is one lookup and gives bit-for-bit the float32
// arithmetic of torchvision's ToTensor + Normalize.
func (n Normalization) table() [][256]float32 {
	t := make([][256]float32, len(n.Mean))
	for c := range t {
		for v := range 256 {
			t[c][v] = (float32(v)/255 - n.Mean[c]) / n.Std[c]
		}
	}
	return t
}
