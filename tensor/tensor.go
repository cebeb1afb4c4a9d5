// Package tensor holds dghcore's float32 tensor: a shape and a contiguous
// row-major (NCHW for images) backing slice. Views along the first axis
// share the backing slice, so a batch can be cut out without copying.
package tensor

import (
	"fmt"
	"slices"
)

// Tensor is a contiguous row-major float32 array. Data is exactly
// Numel() long; Shape is never modified in place once the tensor is made.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zero-filled tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: slices.Clone(shape), Data: make([]float32, Numel(shape))}
}

// FromSlice wraps data (not copied) as a tensor of the given shape.
// It panics when the sizes disagree: that is a programming error.
func FromSlice(data []float32, shape ...int) *Tensor {
	if n := Numel(shape); n != len(data) {
		panic(fmt.Sprintf("tensor.FromSlice: %d values for shape %v (%d)", len(data), shape, n))
	}
	return &Tensor{Shape: slices.Clone(shape), Data: data}
}

// Numel is the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Numel is the number of elements of t.
func (t *Tensor) Numel() int { return len(t.Data) }

// Dims is the number of axes.
func (t *Tensor) Dims() int { return len(t.Shape) }

// Strides returns the row-major strides in elements.
func (t *Tensor) Strides() []int {
	s := make([]int, len(t.Shape))
	acc := 1
	for i := len(t.Shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= t.Shape[i]
	}
	return s
}

// Reshape returns a view of t with another shape of the same size. One
// dimension may be -1 and is inferred.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	shape = slices.Clone(shape)
	infer, known := -1, 1
	for i, d := range shape {
		if d == -1 {
			if infer >= 0 {
				panic("tensor.Reshape: more than one -1")
			}
			infer = i
			continue
		}
		known *= d
	}
	if infer >= 0 && known > 0 {
		shape[infer] = len(t.Data) / known
	}
	if Numel(shape) != len(t.Data) {
		panic(fmt.Sprintf("tensor.Reshape: %v to %v", t.Shape, shape))
	}
	return &Tensor{Shape: shape, Data: t.Data}
}

// Batch returns the view of rows lo..hi-1 along the first axis.
func (t *Tensor) Batch(lo, hi int) *Tensor {
	if lo < 0 || hi > t.Shape[0] || lo > hi {
		panic(fmt.Sprintf("tensor.Batch: [%d,%d) of %v", lo, hi, t.Shape))
	}
	row := len(t.Data) / max(t.Shape[0], 1)
	shape := slices.Clone(t.Shape)
	shape[0] = hi - lo
	return &Tensor{Shape: shape, Data: t.Data[lo*row : hi*row : hi*row]}
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
}

// CopyFrom copies src's values into t; the sizes must agree.
func (t *Tensor) CopyFrom(src *Tensor) {
	if len(src.Data) != len(t.Data) {
		panic(fmt.Sprintf("tensor.CopyFrom: %v into %v", src.Shape, t.Shape))
	}
	copy(t.Data, src.Data)
}

// Fill sets every element to v.
func (t *Tensor) Fill(v float32) {
	for i := range t.Data {
		t.Data[i] = v
	}
}

// SameShape reports whether a and b have equal shapes.
func SameShape(a, b *Tensor) bool { return slices.Equal(a.Shape, b.Shape) }

// String gives the shape, for errors and logs.
func (t *Tensor) String() string { return fmt.Sprintf("Tensor%v", t.Shape) }
