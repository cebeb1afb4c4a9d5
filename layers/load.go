package layers

import (
	"fmt"
	"strings"

	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/tensor"
)

// LoadStateDict copies a checkpoint's tensors into root's parameters and
// buffers by PyTorch key (docs/DESIGN.md, "Models and checkpoints"). When anything disagrees it
// returns one *torchload.MismatchError naming every missing, unexpected
// and mis-shaped key with both shapes, and leaves the model untouched.
// BatchNorm's num_batches_tracked counters are accepted and ignored,
// whether torchload skipped them (integer tensors) or not.
func LoadStateDict(root Module, sd *torchload.StateDict) error {
	want := StateDict(root)
	shapes := make([]torchload.NamedShape, len(want))
	byName := make(map[string]*tensor.Tensor, len(want))
	for i, w := range want {
		shapes[i] = torchload.NamedShape{Name: w.Name, Shape: w.Tensor.Shape}
		byName[w.Name] = w.Tensor
	}
	view := sd
	for _, k := range sd.Keys {
		if isBNCounter(k, byName) {
			view = withoutBNCounters(sd, byName)
			break
		}
	}
	if err := view.Match(shapes); err != nil {
		return fmt.Errorf("load state dict: %w", err)
	}
	for _, w := range want {
		w.Tensor.CopyFrom(sd.Tensors[w.Name])
	}
	return nil
}

// withoutBNCounters is a shallow copy of sd without the num_batches_tracked
// entries of the model's BatchNorms.
func withoutBNCounters(sd *torchload.StateDict, model map[string]*tensor.Tensor) *torchload.StateDict {
	out := &torchload.StateDict{Tensors: sd.Tensors, Skipped: sd.Skipped}
	for _, k := range sd.Keys {
		if !isBNCounter(k, model) {
			out.Keys = append(out.Keys, k)
		}
	}
	return out
}

// isBNCounter reports whether key is the num_batches_tracked buffer of a
// BatchNorm in the model (recognised by its running_mean sibling).
func isBNCounter(key string, model map[string]*tensor.Tensor) bool {
	prefix, ok := strings.CutSuffix(key, "num_batches_tracked")
	if !ok || (prefix != "" && !strings.HasSuffix(prefix, ".")) {
		return false
	}
	_, ok = model[prefix+"running_mean"]
	return ok
}
