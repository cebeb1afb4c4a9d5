package brecq

// Resumable state (docs/DESIGN.md, "Packages and the flow of a run": cancellation leaves a resumable state).

import (
	"fmt"
	"time"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/optim"
	"github.com/dghcore/dghcore/tensor"
)

// stateVersion changes whenever savedState's meaning does.
const stateVersion = 2

// savedState is what a run needs to continue: the stage, the first job
// not finished, every quantizer's learned values, the report of the
// finished units and, when the run stopped inside a job, that job's
// optimisation state. The float streams are not stored; they are
// recomputed from the calibration set.
type savedState struct {
	Version  int
	Settings statefile.Settings
	Stage    int
	Next     int
	Modules  []savedModule
	Acts     []savedAct
	Report   []UnitReport
	Partial  *savedPartial
}

// savedPartial is a job stopped after Step of its steps: its parameters
// (alphas or activation steps), Adam's and the schedule's state, the
// sampler and its random stream, so that the job goes on exactly as if
// it had not stopped.
type savedPartial struct {
	Phase  Phase
	Job    int
	Step   int
	Before float64 // the job's loss before its reconstruction
	Params [][]float32
	Adam   optim.AdamState
	Cosine optim.CosineState
	Perm   []int
	RNG    []byte
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
func (r *run) save() error { return r.saveWith(nil) }

// saveWith saves with a job's partial state; nil is a state between jobs.
func (r *run) saveWith(partial *savedPartial) (err error) {
	path := r.s.statePath
	if path == "" {
		return nil
	}
	defer func() { r.lastSave = time.Now() }()
	st := savedState{Version: stateVersion, Settings: r.s.fingerprint(r.digest), Stage: int(r.stage), Next: r.next,
		Report: r.report, Partial: partial}
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
	if r.s.afterSave != nil {
		r.s.afterSave(r.savePoint(partial))
	}
	return nil
}

// savePoint describes the position a state saved now holds.
func (r *run) savePoint(partial *savedPartial) SavePoint {
	p := SavePoint{Phase: PhaseWeights, Job: r.next, Jobs: len(r.jobs()), Steps: r.s.iters}
	switch r.stage {
	case stageActInit:
		p.Phase, p.Job = PhaseActivations, 0
	case stageActs:
		p.Phase = PhaseActivations
	case stageDone:
		p.Done = true
	}
	if p.Phase == PhaseActivations {
		p.Steps = r.s.itersA
	}
	if partial != nil {
		p.Step = partial.Step
	}
	return p
}

// load restores a state written by save into the freshly built model.
func (r *run) load(path string) error {
	var st savedState
	if err := statefile.Read(path, &st); err != nil {
		return fmt.Errorf("brecq: resume: not a BRECQ state: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("brecq: resume from %s: state version %d, want %d", path, st.Version, stateVersion)
	}
	if diff := st.Settings.Diff(r.s.fingerprint(r.digest)); diff != "" {
		return fmt.Errorf("brecq: resume from %s: the state was made with other settings: %s", path, diff)
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
	if p := st.Partial; p != nil {
		want := map[Phase]stage{PhaseWeights: stageWeights, PhaseActivations: stageActs}
		if ws, ok := want[p.Phase]; !ok || ws != stage(st.Stage) || p.Job != st.Next || p.Step < 1 ||
			!isPermutation(p.Perm) || len(p.Perm) != r.s.calibN {
			return fmt.Errorf("brecq: resume from %s: a stopped job (%v, job %d, step %d) that does not fit stage %d job %d",
				path, p.Phase, p.Job, p.Step, st.Stage, st.Next)
		}
	}
	r.stage, r.next = stage(st.Stage), st.Next
	r.report, r.partial = st.Report, st.Partial
	return nil
}

// isPermutation reports whether p holds each of 0..len(p)-1 once.
func isPermutation(p []int) bool {
	seen := make([]bool, len(p))
	for _, v := range p {
		if v < 0 || v >= len(p) || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}
