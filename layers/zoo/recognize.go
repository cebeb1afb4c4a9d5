package zoo

// Recognising the architecture of a checkpoint from its keys and shapes
// (docs/DESIGN.md, "Models and checkpoints"): the key names give the
// layout and the depth (the block indices), the shapes the widths and the
// grouping.

import (
	"errors"
	"fmt"
	"sync"

	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
)

// keyOrder gives every architecture's state_dict keys their position in
// its definition order. Keys do not depend on the widths: each list is
// taken once from an instance of widths near 1.
var keyOrder = sync.OnceValue(func() map[*arch]map[string]int {
	out := make(map[*arch]map[string]int, len(archs))
	for i := range archs {
		a := &archs[i]
		order := map[string]int{}
		for j, e := range layers.StateDict(a.family.published(1<<12).build(max(a.inFixed, a.defaultIn), 1)) {
			order[e.Name] = j
		}
		out[a] = order
	}
	return out
})

// keyDistance counts a's keys that sd lacks and sd's keys that a lacks.
func (a *arch) keyDistance(sd *torchload.StateDict) int {
	order := keyOrder()[a]
	d := len(order)
	for _, k := range sd.Keys {
		if _, ok := order[k]; ok {
			d--
		} else {
			d++
		}
	}
	return d
}

// NotRecognizedError is Recognize's answer to a checkpoint of no known
// architecture: the closest one and the first key that does not fit it.
type NotRecognizedError struct {
	Closest string
	Layout  Layout
	// Key is the first of the closest architecture's keys (in its order)
	// that the checkpoint lacks or holds in another shape, or else the
	// checkpoint's first key it does not have.
	Key string
	// Checkpoint and Want are Key's shape in the checkpoint and in the
	// closest architecture, nil where Key is absent.
	Checkpoint, Want []int
	// Others counts the other keys that do not fit.
	Others int
}

func (e *NotRecognizedError) Error() string {
	var what string
	switch {
	case e.Checkpoint == nil:
		what = fmt.Sprintf("has no key %q (%s wants %v)", e.Key, e.Closest, e.Want)
	case e.Want == nil:
		what = fmt.Sprintf("has key %q %v, which %s lacks", e.Key, e.Checkpoint, e.Closest)
	default:
		what = fmt.Sprintf("has key %q as %v, %s wants %v", e.Key, e.Checkpoint, e.Closest, e.Want)
	}
	more := ""
	if e.Others > 0 {
		more = fmt.Sprintf(" (and %d more keys do not fit)", e.Others)
		if e.Others == 1 {
			more = " (and 1 more key does not fit)"
		}
	}
	return fmt.Sprintf("zoo: no known architecture: the closest is %s (%s layout), but the checkpoint %s%s",
		e.Closest, e.Layout, what, more)
}

// Recognize names the architecture and layout of sd from its keys and
// shapes alone and builds it with sd's weights, as Build would. A
// checkpoint of no known architecture fails with a *NotRecognizedError.
func Recognize(sd *torchload.StateDict) (*Model, error) {
	if len(sd.Keys) == 0 {
		return nil, errors.New("zoo: the checkpoint holds no floating-point tensors")
	}
	// Key names settle everything but the widths and the grouping; only
	// the architectures whose names all match and whose shapes follow
	// their design are built.
	var tied []*arch
	closest, closestDist := (*arch)(nil), 0
	for i := range archs {
		a := &archs[i]
		d := a.keyDistance(sd)
		if d == 0 {
			tied = append(tied, a)
		}
		if closest == nil || d < closestDist {
			closest, closestDist = a, d
		}
	}
	for _, a := range tied {
		if a.family.fits(sd) {
			if m, err := a.build(sd); err == nil {
				return m, nil
			}
		}
	}
	// No fit: report against the closest by key names, or among those
	// whose names all match, the one whose shapes differ least.
	candidates := tied
	if len(candidates) == 0 {
		candidates = []*arch{closest}
	}
	var best *arch
	var bestMismatch *torchload.MismatchError
	for _, a := range candidates {
		m, err := a.build(sd)
		var me *torchload.MismatchError
		switch {
		case err == nil:
			return m, nil
		case !errors.As(err, &me):
			return nil, err
		case best == nil || problems(me) < problems(bestMismatch):
			best, bestMismatch = a, me
		}
	}
	return nil, notRecognized(best, bestMismatch)
}

func problems(e *torchload.MismatchError) int {
	return len(e.Missing) + len(e.Unexpected) + len(e.Misshaped)
}

// notRecognized picks the first key that does not fit: a missing or
// mis-shaped one in the architecture's order, else an unexpected one.
func notRecognized(a *arch, me *torchload.MismatchError) *NotRecognizedError {
	e := &NotRecognizedError{Closest: a.name, Layout: a.layout, Others: problems(me) - 1}
	order := keyOrder()[a]
	first := len(order)
	for _, m := range me.Missing {
		if i := order[m.Name]; i < first {
			first, e.Key, e.Checkpoint, e.Want = i, m.Name, nil, m.Shape
		}
	}
	for _, m := range me.Misshaped {
		if i := order[m.Name]; i < first {
			first, e.Key, e.Checkpoint, e.Want = i, m.Name, m.Checkpoint, m.Want
		}
	}
	if e.Key == "" && len(me.Unexpected) > 0 {
		u := me.Unexpected[0]
		e.Key, e.Checkpoint = u.Name, u.Shape
	}
	return e
}
