package torchload

// Checking a checkpoint against a model (docs/DESIGN.md, "Models and checkpoints": "every missing,
// unexpected or mis-shaped key is an error that names the key and both
// shapes").

import (
	"fmt"
	"slices"
	"strings"
)

// NamedShape is one tensor a model expects: its state_dict key and shape.
type NamedShape struct {
	Name  string
	Shape []int
}

// ShapeMismatch is a key present in both with different shapes.
type ShapeMismatch struct {
	Name             string
	Checkpoint, Want []int
}

// MismatchError lists every difference between a checkpoint and the
// tensors a model expects. Missing and Misshaped follow the model's order,
// Unexpected the file's.
type MismatchError struct {
	Missing    []NamedShape
	Unexpected []NamedShape
	Misshaped  []ShapeMismatch
	// skipped notes missing keys the checkpoint does hold, as integers.
	skipped map[string]string
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state dict does not match the model: %d missing, %d unexpected, %d mis-shaped",
		len(e.Missing), len(e.Unexpected), len(e.Misshaped))
	for _, m := range e.Missing {
		fmt.Fprintf(&b, "\n  missing key %q, model shape %v", m.Name, m.Shape)
		if dt, ok := e.skipped[m.Name]; ok {
			fmt.Fprintf(&b, " (the checkpoint stores it as %s, which torchload skips)", dt)
		}
	}
	for _, u := range e.Unexpected {
		fmt.Fprintf(&b, "\n  unexpected key %q, checkpoint shape %v", u.Name, u.Shape)
	}
	for _, s := range e.Misshaped {
		fmt.Fprintf(&b, "\n  key %q: checkpoint shape %v, model shape %v", s.Name, s.Checkpoint, s.Want)
	}
	return b.String()
}

// Match checks sd against the tensors a model expects and returns nil or
// one *MismatchError listing every missing, unexpected and mis-shaped key.
// Skipped (integer) tensors such as num_batches_tracked are not unexpected;
// a wanted key that was skipped is missing, and the error says why.
func (sd *StateDict) Match(want []NamedShape) error {
	e := &MismatchError{}
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w.Name] = true
		got, ok := sd.Tensors[w.Name]
		switch {
		case !ok:
			e.Missing = append(e.Missing, w)
		case !slices.Equal(got.Shape, w.Shape):
			e.Misshaped = append(e.Misshaped, ShapeMismatch{Name: w.Name, Checkpoint: got.Shape, Want: w.Shape})
		}
	}
	for _, k := range sd.Keys {
		if !wanted[k] {
			e.Unexpected = append(e.Unexpected, NamedShape{Name: k, Shape: sd.Tensors[k].Shape})
		}
	}
	if len(e.Missing)+len(e.Unexpected)+len(e.Misshaped) == 0 {
		return nil
	}
	for _, s := range sd.Skipped {
		if wanted[s.Key] {
			if e.skipped == nil {
				e.skipped = make(map[string]string)
			}
			e.skipped[s.Key] = s.DType
		}
	}
	return e
}
