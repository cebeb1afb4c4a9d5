package main

// The memory estimate (docs/DESIGN.md, "Command line"): from the layers'
// shapes alone, printed before the work, refused above --max_memory, and
// held to by a Go memory limit.

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
)

// Between two collections the Go heap grows past the live data by up to
// GOGC percent (100 by default); unchecked, peaks ran 1.6 times the live
// estimate. The run instead sets a memory limit of the live estimate plus
// this share and this floor, so the collector works harder before the
// heap outgrows the figure printed.
const (
	heapHeadroom      = 0.25
	heapHeadroomFloor = 64 << 20
)

// checkMemory prints the estimated peak and refuses a run above
// --max_memory before any long work; then it sets the Go memory limit
// to the estimate, unless GOMEMLIMIT is set.
func (a *app) checkMemory(generates, quantizes bool, nCalib int) error {
	limit, err := parseBytes(a.o.maxMemory)
	if err != nil {
		return usageErrorf("--max_memory: %v", err)
	}
	var gen, quant int64
	if generates {
		if gen, err = dgh.EstimateMemory(a.model, a.dghConfig()); err != nil {
			return usageErrorf("%v", err)
		}
	}
	if quantizes {
		if quant, err = a.quantizeMemory(nCalib); err != nil {
			return usageErrorf("%v", err)
		}
	}
	live := max(gen, quant)
	peak := live + max(int64(heapHeadroom*float64(live)), heapHeadroomFloor)
	limitText := "no limit"
	if limit > 0 {
		limitText = "limit " + formatBytes(limit)
	}
	fmt.Fprintf(a.out, "Estimated peak memory: %s (generation %s, quantization %s, Go heap headroom %s; %s)\n",
		formatBytes(peak), formatBytes(gen), formatBytes(quant), formatBytes(peak-live), limitText)
	if limit > 0 && peak > limit {
		return usageErrorf("estimated memory %s exceeds --max_memory %s; lower --n_images, --distill_batch_size or --img_size, or raise --max_memory",
			formatBytes(peak), formatBytes(limit))
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(peak)
	}
	return nil
}

// quantizeMemory estimates BRECQ's peak: the calibration set, the float
// and quantized streams through the network with a unit's outputs (five
// copies of the widest activation per image), one mini-batch's
// activations with their gradients, and the parameters with their folded
// copies, rounding variables and Adam moments. The activations come from
// the layers' shapes (layers.ProbeShapes): nothing of the image size is
// computed.
func (a *app) quantizeMemory(nCalib int) (int64, error) {
	sum, largest, err := activationSizes(a.model, a.channels, a.size)
	if err != nil {
		return 0, err
	}
	n := int64(nCalib)
	batch := int64(min(a.o.calibBatch, nCalib))
	calib := n * int64(a.channels*a.size*a.size)
	return 4 * (calib + 5*n*largest + 3*batch*sum + 6*parameterCount(a.model)), nil
}

// activationSizes is the sum and the largest of the values the model's
// leaf modules output for one image.
func activationSizes(m *zoo.Model, channels, size int) (sum, largest int64, err error) {
	shapes, err := layers.ProbeShapes(m.Net, channels, size)
	if err != nil {
		return 0, 0, fmt.Errorf("%s at %dx%d: %w", m.Name, size, size, err)
	}
	for _, l := range shapes {
		n := int64(1)
		for _, d := range l.Out {
			n *= int64(d)
		}
		sum += n
		largest = max(largest, n)
	}
	return sum, largest, nil
}

// parameterCount is the number of values in the model's state.
func parameterCount(m *zoo.Model) int64 {
	var n int64
	for _, t := range layers.StateDict(m.Net) {
		n += int64(t.Tensor.Numel())
	}
	return n
}
