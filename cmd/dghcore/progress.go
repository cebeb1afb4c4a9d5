package main

// Progress for people (docs/DESIGN.md, "Command line"): one line
// rewritten in place on a terminal, cut to the terminal's width; plain log
// lines every few seconds otherwise; always the last line of a phase.
// Beside a phase's own progress and time left, every line shows the time
// since the run started and an estimate of the time left in the whole
// run, from a plan of its phases.

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/tensor"
)

// etaAfter holds a phase's first time estimate back until it has this many
// reports and this much time behind it: the first steps (allocations,
// caches warming) say little about the rate.
const (
	etaAfterReports = 3
	etaAfterTime    = 2 * time.Second
)

type reporter struct {
	w        io.Writer
	terminal bool
	columns  func() int // a rewritten line longer than the terminal would wrap
	every    time.Duration
	last     time.Time
	width    int // of the line being rewritten, to blank its tail

	plan *plan
	// the phase being reported and how often
	phaseName  string
	phaseStart time.Time
	reports    int
}

func newReporter(w io.Writer) *reporter {
	tty := false
	var f *os.File
	if file, ok := w.(*os.File); ok {
		fi, err := file.Stat()
		tty = err == nil && fi.Mode()&os.ModeCharDevice != 0
		f = file
	}
	columns := envColumns
	if tty {
		columns = func() int {
			if c := terminalColumns(f); c > 0 {
				return c
			}
			return envColumns()
		}
	}
	return &reporter{w: w, terminal: tty, columns: columns, every: 10 * time.Second, plan: newPlan()}
}

// envColumns is $COLUMNS when it is a width, else 80.
func envColumns() int {
	if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c > 20 {
		return c
	}
	return 80
}

// step reports progress in the phase named phase: done is the share of it
// finished (0..1), left the phase's own time estimate (0: none), text what
// the phase says about itself. The phase's first report starts it in the
// plan.
func (r *reporter) step(phase string, done float64, left time.Duration, final bool, format string, args ...any) {
	now := time.Now()
	if phase != r.phaseName {
		r.phaseName, r.phaseStart, r.reports = phase, now, 0
		r.plan.begin(phase, now)
	}
	r.reports++
	r.plan.advance(done, now)
	if final {
		r.plan.finish(now)
	}
	if !final && now.Sub(r.last) < r.rate() {
		return
	}
	line := fmt.Sprintf(format, args...)
	if final {
		line += "  done in " + compact(now.Sub(r.phaseStart))
	} else if r.reports >= etaAfterReports && now.Sub(r.phaseStart) >= etaAfterTime && left > 0 {
		line += "  " + compact(left) + " left"
	} else {
		line += "  (time left after a few steps)"
	}
	line += r.plan.summary(now)
	r.print(final, line)
}

// print shows a progress line; final lines are always printed.
func (r *reporter) print(final bool, line string) {
	now := time.Now()
	r.last = now
	if r.terminal {
		if cols := r.columns(); cols > 0 && len(line) >= cols {
			line = line[:cols-1]
		}
		pad := max(r.width-len(line), 0)
		fmt.Fprintf(r.w, "\r%s%s", line, strings.Repeat(" ", pad))
		r.width = len(line)
	} else {
		fmt.Fprintf(r.w, "%s %s\n", now.Format("15:04:05"), line)
	}
	if final {
		r.end()
	}
}

func (r *reporter) rate() time.Duration {
	if r.terminal {
		return 200 * time.Millisecond
	}
	return r.every
}

// end finishes a line being rewritten, so whatever is printed next (a
// result, an error) starts on a line of its own.
func (r *reporter) end() {
	if r.terminal && r.width > 0 {
		fmt.Fprintln(r.w)
	}
	r.width = 0
	r.last = time.Time{}
}

// compact formats a duration to the second below an hour ("42s",
// "3m05s") and to the minute above ("2h07m").
func compact(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
}

// dghProgress shows DGH's iterations (docs/DESIGN.md, "DGH").
func (a *app) dghProgress(kind string) dgh.ProgressFunc {
	return func(p dgh.Progress) {
		a.position = fmt.Sprintf("at iteration %d of %d", p.Iteration, p.Iterations)
		a.rep.step(phaseName(kind, phaseGeneration), float64(p.Iteration)/float64(max(p.Iterations, 1)), p.Remaining,
			p.Iteration == p.Iterations, "generation: iter %d/%d  bn %.4g  out %.4g  lr %.3g  %.0f img/s",
			p.Iteration, p.Iterations, p.BNLoss, p.OutputLoss, p.LR, p.ImagesPerSec)
	}
}

// brecqProgress shows BRECQ's reconstruction steps (docs/DESIGN.md,
// "BRECQ").
func (a *app) brecqProgress(kind string) brecq.ProgressFunc {
	var phase brecq.Phase = -1
	var start time.Time
	steps, unitsBefore := 0, 0
	return func(p brecq.Progress) {
		// The rate counts from the phase's first step, whose end is the
		// first moment known.
		if p.Phase != phase {
			phase, start, steps, unitsBefore = p.Phase, time.Now(), 0, p.UnitIndex
		} else {
			steps++
		}
		rate := "-"
		if steps > 0 {
			rate = fmt.Sprintf("%.0f", float64(steps)/time.Since(start).Seconds())
		}
		what, loss, name := "AdaRound", fmt.Sprintf("rec %.4g  round %.4g", p.RecLoss, p.RoundLoss), phaseAdaRound
		if p.Phase == brecq.PhaseActivations {
			what, loss, name = "LSQ", fmt.Sprintf("rec %.4g", p.RecLoss), phaseLSQ
		}
		a.position = fmt.Sprintf("in %s unit %d of %d (%s), step %d of %d", what, p.UnitIndex+1, p.Units, p.Unit, p.Iteration, p.Iterations)
		// Units left before a resume count as done.
		total := float64(max(p.Units-unitsBefore, 1))
		done := (float64(p.UnitIndex-unitsBefore) + float64(p.Iteration)/float64(max(p.Iterations, 1))) / total
		a.rep.step(phaseName(kind, name), min(done, 1), p.Remaining, p.UnitIndex == p.Units-1 && p.Iteration == p.Iterations,
			"%s %d/%d %s: step %d/%d  %s  %s it/s", what, p.UnitIndex+1, p.Units, p.Unit, p.Iteration, p.Iterations, loss, rate)
	}
}

// Phases of a run, as the plan names them.
const (
	phaseCheck      = "data check"
	phaseFloatEval  = "float evaluation"
	phaseGeneration = "generation"
	phaseAdaRound   = "AdaRound"
	phaseWeightEval = "weight-only evaluation"
	phaseLSQ        = "LSQ"
	phaseFullEval   = "full evaluation"
)

// phaseName is a calibration source's phase, so --compare's three runs
// have phases of their own.
func phaseName(kind, phase string) string { return kind + " " + phase }

// workKind groups phases whose work proceeds at one rate per unit.
type workKind int

const (
	workDecode    workKind = iota // decoding images only
	workInference                 // decoding and a forward pass
	workTraining                  // forward and backward passes
)

// plan is the run's phases with their work in units of one image's
// forward pass, so the time left in the whole run can be estimated from
// the rates measured so far.
type plan struct {
	start  time.Time
	phases []*planPhase
	cur    *planPhase
}

type planPhase struct {
	name     string
	kind     workKind
	units    float64
	done     float64 // share finished, 0..1
	secs     float64 // time spent so far
	began    time.Time
	finished bool
}

func newPlan() *plan { return &plan{start: time.Now()} }

// add appends a phase to the plan.
func (p *plan) add(name string, kind workKind, units float64) {
	if units > 0 {
		p.phases = append(p.phases, &planPhase{name: name, kind: kind, units: units})
	}
}

// skip marks a planned phase as not to be run (its result was saved).
func (p *plan) skip(name string) {
	for _, ph := range p.phases {
		if ph.name == name {
			ph.finished, ph.units = true, 0
		}
	}
}

func (p *plan) begin(name string, now time.Time) {
	if p.cur != nil && !p.cur.finished {
		p.finish(now)
	}
	p.cur = nil
	for _, ph := range p.phases {
		if ph.name == name {
			p.cur, ph.began = ph, now
		}
	}
}

func (p *plan) advance(done float64, now time.Time) {
	if p.cur != nil {
		p.cur.done, p.cur.secs = done, now.Sub(p.cur.began).Seconds()
	}
}

func (p *plan) finish(now time.Time) {
	if p.cur != nil {
		p.cur.done, p.cur.secs, p.cur.finished = 1, now.Sub(p.cur.began).Seconds(), true
	}
}

// rate is the seconds per unit of work of a kind, from the phases of that
// kind run so far; ok is false before there is enough to tell.
func (p *plan) rate(kind workKind) (float64, bool) {
	var secs, units float64
	for _, ph := range p.phases {
		if ph.kind == kind && ph.done > 0 {
			secs += ph.secs
			units += ph.units * ph.done
		}
	}
	if secs < etaAfterTime.Seconds() || units == 0 {
		return 0, false
	}
	return secs / units, true
}

// priorRatio relates the kinds' costs per unit before both are measured:
// a forward pass on a decoded image costs about five decodes, and the
// training units already count backward passes.
var priorRatio = map[workKind]float64{workDecode: 0.2, workInference: 1, workTraining: 1}

// remaining estimates the time left in the whole run.
func (p *plan) remaining() (time.Duration, bool) {
	rates := map[workKind]float64{}
	var known workKind = -1
	for _, k := range []workKind{workTraining, workInference, workDecode} {
		if r, ok := p.rate(k); ok {
			rates[k] = r
			if known < 0 {
				known = k
			}
		}
	}
	if known < 0 {
		return 0, false
	}
	var left float64
	for _, ph := range p.phases {
		if ph.finished {
			continue
		}
		r, ok := rates[ph.kind]
		if !ok {
			r = rates[known] * priorRatio[ph.kind] / priorRatio[known]
		}
		left += ph.units * (1 - ph.done) * r
	}
	return time.Duration(left * float64(time.Second)), true
}

// summary is the whole run's part of a progress line.
func (p *plan) summary(now time.Time) string {
	s := "  | run " + compact(now.Sub(p.start))
	if left, ok := p.remaining(); ok {
		s += ", ~" + compact(left) + " left in all"
	}
	return s
}

// planData puts the check of a folder's images in the plan.
func (a *app) planData() {
	if f, ok := a.data.(*dataset.Folder); ok {
		a.rep.plan.add(phaseCheck, workDecode, float64(f.Len()))
	}
}

// planRun puts the run's phases in the plan, each with its work in image
// forward passes: an evaluation one per image, a training step three per
// image (forward and backward), a DGH step four (with the forward that
// refreshes a batch's statistics), and BRECQ's streams of the calibration
// set through the network two per image and phase.
func (a *app) planRun(kinds []string, given *tensor.Tensor) {
	o, p := a.o, a.rep.plan
	nEval := 0.0
	if a.eval != nil {
		nEval = float64(a.eval.Len())
	}
	if o.evalFloat && a.command != cmdGenerate {
		p.add(phaseFloatEval, workInference, nEval)
	}
	nCalib := float64(o.nImages)
	if given != nil {
		nCalib = float64(given.Shape[0])
	}
	batch := min(float64(o.calibBatch), nCalib)
	for _, k := range kinds {
		if k == dgh.SourceDGH && given == nil {
			p.add(phaseName(k, phaseGeneration), workTraining, 4*float64(o.distillIters)*nCalib)
		}
		if a.command == cmdGenerate {
			continue
		}
		p.add(phaseName(k, phaseAdaRound), workTraining, 3*float64(o.numIterations)*batch+2*nCalib)
		p.add(phaseName(k, phaseWeightEval), workInference, nEval)
		if o.actQuant {
			p.add(phaseName(k, phaseLSQ), workTraining, 3*float64(o.itersA)*batch+3*nCalib)
			p.add(phaseName(k, phaseFullEval), workInference, nEval)
		}
	}
}
