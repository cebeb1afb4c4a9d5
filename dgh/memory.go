package dgh

import (
	"errors"
	"fmt"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// EstimateMemory returns roughly how many bytes Generate will hold at its
// peak for this model and config, so a caller can refuse a run that would
// not fit before any long work starts. It counts the model's parameters,
// the optimised images with their gradients and RAdam moments, the output
// images, and one batch's activations with their gradients (measured by a
// forward pass on a single blank image), plus a quarter of those
// activations for kernel scratch space.
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
	return f32 * (params + state + output + working), nil
}

// activationsPerImage counts the values every leaf module outputs for one
// image, through temporary hooks. An activation applied to a batch norm's
// output is not counted: the two run as one node (layers.ApplyBNAct)
// whose output is the only tensor they keep (the hooks here turn that
// fusion off while counting).
func activationsPerImage(net layers.Module, c, size int) (n int64, err error) {
	var removes []func()
	defer func() {
		for _, f := range removes {
			f()
		}
		if r := recover(); r != nil {
			err = fmt.Errorf("dgh: running the model on a %dx%dx%d image: %v", c, size, size, r)
		}
	}()
	bnOut := map[*autograd.Var]bool{}
	for _, nm := range layers.NamedModules(net) {
		if _, ok := nm.Module.(layers.Container); ok {
			continue
		}
		if h, ok := nm.Module.(layers.Hookable); ok {
			removes = append(removes, h.AddHook(func(m layers.Module, in, out *autograd.Var) {
				switch m.(type) {
				case *layers.BatchNorm2d:
					bnOut[out] = true
				case *layers.ReLU, *layers.ReLU6:
					if bnOut[in] {
						return
					}
				}
				n += int64(out.Value.Numel())
			}))
		}
	}
	layers.Apply(net, autograd.Const(tensor.New(1, c, size, size)))
	return n + int64(c*size*size), nil
}
