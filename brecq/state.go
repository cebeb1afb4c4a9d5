package brecq

// Resumable state (docs/DESIGN.md, "Packages and the flow of a run": cancellation leaves a resumable state).

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"os"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/tensor"
)

// stateVersion changes whenever savedState's meaning does.
const stateVersion = 1

// savedState is what a run needs to continue: the stage, the first job
// not finished and every quantizer's learned values. The float streams
// are not stored; they are recomputed from the calibration set.
type savedState struct {
	Version  int
	Settings string
	Stage    int
	Next     int
	Modules  []savedModule
	Acts     []savedAct
}

type savedModule struct {
	Name  string
	Alpha []float32 // nil: round to nearest
}

type savedAct struct {
	Ready bool
	Delta float32
	ZP    float32
}

// allActs lists every activation quantizer in network order.
func (q *QuantModel) allActs() []*ActQuantizer {
	var as []*ActQuantizer
	for _, u := range q.Units() {
		as = append(as, u.ActQuantizers()...)
	}
	return as
}

// save writes the state atomically to the StatePath, if any: a temporary
// file in the same folder, synced, then renamed over it.
func (r *run) save() (err error) {
	path := r.s.statePath
	if path == "" {
		return nil
	}
	st := savedState{Version: stateVersion, Settings: r.s.fingerprint(r.model), Stage: int(r.stage), Next: r.next}
	for _, m := range r.q.modules {
		sm := savedModule{Name: m.Name}
		if m.WQ.Alpha != nil {
			sm.Alpha = m.WQ.Alpha.Value.Data
		}
		st.Modules = append(st.Modules, sm)
	}
	for _, a := range r.q.allActs() {
		sa := savedAct{Ready: a.Ready(), ZP: a.ZP}
		if a.Ready() {
			sa.Delta = a.Delta.Value.Data[0]
		}
		st.Acts = append(st.Acts, sa)
	}
	if err := statefile.Write(path, &st); err != nil {
		return fmt.Errorf("brecq: %w", err)
	}
	return nil
}

// load restores a state written by save into the freshly built model.
func (r *run) load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("brecq: resume: %w", err)
	}
	defer f.Close()
	var st savedState
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&st); err != nil {
		return fmt.Errorf("brecq: resume from %s: not a BRECQ state: %w", path, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("brecq: resume from %s: state version %d, want %d", path, st.Version, stateVersion)
	}
	if want := r.s.fingerprint(r.model); st.Settings != want {
		return fmt.Errorf("brecq: resume from %s: the state was made with %s, this run has %s", path, st.Settings, want)
	}
	acts := r.q.allActs()
	switch {
	case st.Stage < int(stageWeights) || st.Stage > int(stageDone) || st.Next < 0:
		return fmt.Errorf("brecq: resume from %s: stage %d job %d is not a position", path, st.Stage, st.Next)
	case len(st.Modules) != len(r.q.modules) || len(st.Acts) != len(acts):
		return fmt.Errorf("brecq: resume from %s: %d modules and %d activation quantizers, the model has %d and %d",
			path, len(st.Modules), len(st.Acts), len(r.q.modules), len(acts))
	}
	for i, m := range r.q.modules {
		sm := st.Modules[i]
		if sm.Name != m.Name || (sm.Alpha != nil && len(sm.Alpha) != m.Weight.Numel()) {
			return fmt.Errorf("brecq: resume from %s: module %d is %q with %d rounding values, want %q with %d",
				path, i, sm.Name, len(sm.Alpha), m.Name, m.Weight.Numel())
		}
		m.WQ.Alpha, m.WQ.Soft = nil, false
		if sm.Alpha != nil {
			m.WQ.Alpha = autograd.NewVar(tensor.FromSlice(sm.Alpha, m.Weight.Shape...), true)
		}
	}
	for i, a := range acts {
		if sa := st.Acts[i]; sa.Ready {
			if !(sa.Delta > 0) {
				return fmt.Errorf("brecq: resume from %s: activation quantizer %d has step %v", path, i, sa.Delta)
			}
			a.Set(sa.Delta, sa.ZP)
		}
	}
	r.stage, r.next = stage(st.Stage), st.Next
	return nil
}
