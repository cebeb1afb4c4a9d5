package brecq

// Accuracy evaluation (docs/DESIGN.md, "BRECQ", steps 5 and 7) over any source of labelled batches.

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dghcore/dghcore/tensor"
)

// Batches is a source of labelled evaluation batches. It keeps image
// decoding out of this package: the command line adapts its dataset to
// it, for example
//
//	type datasetBatches struct {
//		d         dataset.Dataset
//		size, pos int
//	}
//
//	func (b *datasetBatches) Len() int { return (b.d.Len() + b.size - 1) / b.size }
//
//	func (b *datasetBatches) Next() (*tensor.Tensor, []int, error) {
//		if b.pos >= b.d.Len() {
//			return nil, nil, io.EOF
//		}
//		lo, hi := b.pos, min(b.pos+b.size, b.d.Len())
//		b.pos = hi
//		return dataset.Range(b.d, lo, hi)
//	}
type Batches interface {
	// Len is the number of batches, for progress; -1 when unknown.
	Len() int
	// Next returns the next batch of images [B, C, H, W] (normalised like
	// the model's input) and their B labels, or io.EOF after the last one.
	Next() (*tensor.Tensor, []int, error)
}

// Accuracy is the share of samples whose label is the top prediction
// (Top1) or among the five best (Top5), in [0, 1].
type Accuracy struct {
	Top1, Top5 float64
	Samples    int
}

// Evaluate runs forward (QuantModel.Forward, zoo.Model.Logits, ...) over
// every batch of b and scores its logits [B, classes]. after, when set, is
// called after each batch with the number of batches done.
func Evaluate(ctx context.Context, forward func(*tensor.Tensor) *tensor.Tensor, b Batches, after func(done int)) (Accuracy, error) {
	var acc Accuracy
	var top1, top5 int
	for done := 0; ; done++ {
		if err := ctx.Err(); err != nil {
			return acc, err
		}
		x, labels, err := b.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return acc, fmt.Errorf("brecq: evaluate batch %d: %w", done, err)
		}
		if x.Dims() < 1 || x.Shape[0] != len(labels) {
			return acc, fmt.Errorf("brecq: evaluate batch %d: %d labels for images %v", done, len(labels), x.Shape)
		}
		logits := forward(x)
		if logits.Dims() != 2 || logits.Shape[0] != len(labels) {
			return acc, fmt.Errorf("brecq: evaluate batch %d: logits %v for %d labels", done, logits.Shape, len(labels))
		}
		c1, c5, err := countTopK(logits, labels)
		if err != nil {
			return acc, fmt.Errorf("brecq: evaluate batch %d: %w", done, err)
		}
		top1 += c1
		top5 += c5
		acc.Samples += len(labels)
		if after != nil {
			after(done + 1)
		}
	}
	if acc.Samples > 0 {
		acc.Top1 = float64(top1) / float64(acc.Samples)
		acc.Top5 = float64(top5) / float64(acc.Samples)
	}
	return acc, nil
}

// countTopK counts the rows whose label has the largest logit and those
// whose label ranks among the five largest (fewer classes: all count).
// Ties rank by class index, as a stable descending sort would.
func countTopK(logits *tensor.Tensor, labels []int) (top1, top5 int, err error) {
	classes := logits.Shape[1]
	for i, y := range labels {
		if y < 0 || y >= classes {
			return 0, 0, fmt.Errorf("label %d outside %d classes", y, classes)
		}
		row := logits.Data[i*classes : (i+1)*classes]
		v := row[y]
		rank := 0
		for c, u := range row {
			if u > v || (u == v && c < y) {
				rank++
			}
		}
		if rank == 0 {
			top1++
		}
		if rank < 5 {
			top5++
		}
	}
	return top1, top5, nil
}
