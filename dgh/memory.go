package dgh

import (
	"errors"
	"fmt"

	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
)

// EstimateMemory returns roughly how many bytes Generate will hold at its
// peak for this model and config, so a caller can refuse a run that would
// not fit before any long work starts. It counts the model's parameters
// (three times: the convolutions keep a packed form of their frozen
// weights for the forward pass and one for the backward pass), the
// optimised images with their gradients and RAdam moments, the output
// images, and one batch's activations with their gradients (from the
// layers' shapes, layers.ProbeShapes: nothing of the requested size is
// computed), plus a quarter of those activations for kernel scratch
// space. It counts live data; the Go heap grows past it between two
// collections unless a memory limit holds it (docs/DESIGN.md, "Command
// line").
func EstimateMemory(model *zoo.Model, cfg Config) (int64, error) {
	if model == nil || model.Net == nil {
		return 0, errors.New("dgh: no model")
	}
	s, err := cfg.resolve(model.Spec)
	if err != nil {
		return 0, err
	}
	perImage, err := activationsPerImage(model.Net, s.channels(), s.imageSize)
	if err != nil {
		return 0, err
	}
	const f32 = 4
	var params int64
	for _, p := range layers.Parameters(model.Net) {
		if p != nil {
			params += int64(p.Value.Numel())
		}
	}
	h := int64(s.paddedSize())
	c := int64(s.channels())
	n, b := int64(s.nImages), int64(min(s.batchSize, s.nImages))
	padded := n * c * h * h
	// values, gradients (kept per batch) and two RAdam moments
	state := 4 * padded
	output := n * c * int64(s.imageSize) * int64(s.imageSize)
	// augmentation intermediates (flip, smoothing, crop, clip) and the
	// network's activations, each with a gradient in the backward pass
	augment := 4 * b * c * h * h
	acts := b * perImage
	working := 2*(augment+acts) + acts/4
	return f32 * (3*params + state + output + working), nil
}

// activationsPerImage counts the values every leaf module outputs for one
// image. An activation applied to a batch norm's output is not counted:
// the two run as one node (layers.ApplyBNAct) whose output is the only
// tensor they keep.
func activationsPerImage(net layers.Module, c, size int) (int64, error) {
	shapes, err := layers.ProbeShapes(net, c, size)
	if err != nil {
		return 0, fmt.Errorf("dgh: running the model on a %dx%dx%d image: %w", c, size, size, err)
	}
	n := int64(c * size * size)
	for _, l := range shapes {
		switch l.Module.(type) {
		case *layers.ReLU, *layers.ReLU6:
			if l.InputFrom >= 0 {
				if _, ok := shapes[l.InputFrom].Module.(*layers.BatchNorm2d); ok {
					continue
				}
			}
		}
		n += numel(l.Out)
	}
	return n, nil
}

func numel(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}
