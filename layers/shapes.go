package layers

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// LeafShape is what one leaf module (a module without children) sees in a
// forward pass of one image: its input and output shapes without the
// batch axis, and which leaf produced its input.
type LeafShape struct {
	Name    string // dotted PyTorch name
	Module  Module
	In, Out []int
	// InputFrom is the index of the leaf whose output is this leaf's
	// input, -1 when the input comes from elsewhere (the image, a sum).
	InputFrom int
}

// probeLarge is the largest image side ProbeShapes runs the network at;
// larger sides are extrapolated from runs at probeLarge/2 and probeLarge.
const probeLarge = 64

// ProbeShapes lists, in forward order, the shapes every leaf module of net
// sees for one c x size x size image, without computing anything of that
// size: at most probeLarge pixels it runs one such image; beyond, it runs
// the network at two small sides and extends every spatial extent along
// the line through them, rounding up. Convolutions, pooling and their
// padding make an extent an affine function of the image side up to the
// rounding of strides, which rounding up matches for every stride that
// divides the probe sizes (docs/DESIGN.md, "Command line"). So the memory
// estimate of a 100000-pixel request costs as much as one of 224.
//
// An image the network cannot take (too small for its strides and
// kernels, or of the wrong channel count) is an error.
func ProbeShapes(net Module, c, size int) ([]LeafShape, error) {
	if c < 1 || size < 1 {
		return nil, fmt.Errorf("layers: probe a %dx%dx%d image", c, size, size)
	}
	if size <= probeLarge {
		return RunShapes(net, c, size)
	}
	// The pair of probe sides doubles until the network takes both.
	p1, p2 := probeLarge/2, probeLarge
	var a, b []LeafShape
	var err error
	for ; p2 < size; p1, p2 = p2, 2*p2 {
		if a, err = RunShapes(net, c, p1); err != nil {
			continue
		}
		if b, err = RunShapes(net, c, p2); err == nil {
			break
		}
	}
	if a == nil || b == nil {
		return nil, fmt.Errorf("layers: no probe size below %d runs: %w", size, err)
	}
	if len(a) != len(b) {
		return nil, fmt.Errorf("layers: %d leaves run at %d pixels, %d at %d", len(a), p1, len(b), p2)
	}
	out := make([]LeafShape, len(a))
	for i := range a {
		if a[i].Module != b[i].Module || len(a[i].In) != len(b[i].In) || len(a[i].Out) != len(b[i].Out) {
			return nil, fmt.Errorf("layers: leaf %d is %s at %d pixels and %s at %d", i, a[i].Name, p1, b[i].Name, p2)
		}
		out[i] = LeafShape{
			Name: a[i].Name, Module: a[i].Module, InputFrom: a[i].InputFrom,
			In:  extend(a[i].In, b[i].In, p1, p2, size),
			Out: extend(a[i].Out, b[i].Out, p1, p2, size),
		}
	}
	return out, nil
}

// extend carries the extents x (at side p1) and y (at p2) to side s.
func extend(x, y []int, p1, p2, s int) []int {
	out := make([]int, len(x))
	for i := range x {
		d := y[i] - x[i]
		// x + d*(s-p1)/(p2-p1), rounded up; an extent that does not move
		// with the side (channels, a global pool) stays.
		num := d * (s - p1)
		out[i] = x[i] + (num+p2-p1-1)/(p2-p1)
	}
	return out
}

// runShapes runs one blank c x size x size image through net and records
// every leaf's shapes through temporary hooks.
func RunShapes(net Module, c, size int) (shapes []LeafShape, err error) {
	produced := map[*autograd.Var]int{}
	var removes []func()
	defer func() {
		for _, r := range removes {
			r()
		}
		if r := recover(); r != nil {
			shapes, err = nil, fmt.Errorf("a %dx%dx%d image: %v", c, size, size, r)
		}
	}()
	for _, nm := range NamedModules(net) {
		if _, ok := nm.Module.(Container); ok {
			continue
		}
		h, ok := nm.Module.(Hookable)
		if !ok {
			continue
		}
		name := nm.Name
		removes = append(removes, h.AddHook(func(m Module, in, out *autograd.Var) {
			from, ok := produced[in]
			if !ok {
				from = -1
			}
			produced[out] = len(shapes)
			shapes = append(shapes, LeafShape{
				Name: name, Module: m, InputFrom: from,
				In: slices.Clone(in.Value.Shape[1:]), Out: slices.Clone(out.Value.Shape[1:]),
			})
		}))
	}
	Apply(net, autograd.Const(tensor.New(1, c, size, size)))
	if len(shapes) == 0 {
		return nil, errors.New("no leaf module ran")
	}
	return shapes, nil
}

// MinInputSize is the smallest image side, at most limit, at which net
// takes c-channel images and fits (when not nil) accepts their shapes, or
// 0 when no side up to limit does. It runs the network on single blank
// images of at most limit pixels, and assumes that a side that works
// keeps working when it grows.
func MinInputSize(net Module, c, limit int, fits func([]LeafShape) bool) int {
	works := func(s int) bool {
		shapes, err := RunShapes(net, c, s)
		return err == nil && (fits == nil || fits(shapes))
	}
	if limit < 1 || !works(limit) {
		return 0
	}
	lo, hi := 1, limit // the answer lies in [lo, hi]
	for lo < hi {
		if mid := (lo + hi) / 2; works(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
