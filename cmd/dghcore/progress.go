package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/dgh"
)

// reporter prints progress for people (docs/DESIGN.md, "Command line"): one line
// rewritten in place on a terminal, plain log lines every few seconds
// otherwise, and always the last line of a phase.
type reporter struct {
	w        io.Writer
	terminal bool
	columns  int // a rewritten line longer than the terminal would wrap
	every    time.Duration
	last     time.Time
	width    int // of the line being rewritten, to blank its tail
}

func newReporter(w io.Writer) *reporter {
	tty := false
	if f, ok := w.(*os.File); ok {
		fi, err := f.Stat()
		tty = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	columns := 80
	if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c > 20 {
		columns = c
	}
	return &reporter{w: w, terminal: tty, columns: columns, every: 10 * time.Second}
}

// update shows a progress line; final lines are always printed.
func (r *reporter) update(final bool, format string, args ...any) {
	now := time.Now()
	if !final && now.Sub(r.last) < r.rate() {
		return
	}
	r.last = now
	line := fmt.Sprintf(format, args...)
	if r.terminal {
		if r.columns > 0 && len(line) >= r.columns {
			line = line[:r.columns-1]
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

// eta formats a remaining duration compactly.
func eta(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Second).String()
}

// dghProgress shows DGH's iterations (docs/DESIGN.md, "DGH").
func (a *app) dghProgress() dgh.ProgressFunc {
	return func(p dgh.Progress) {
		a.rep.update(p.Iteration == p.Iterations,
			"generation: iter %d/%d  bn %.4g  out %.4g  lr %.3g  %.0f img/s  %s left",
			p.Iteration, p.Iterations, p.BNLoss, p.OutputLoss, p.LR, p.ImagesPerSec, eta(p.Remaining))
	}
}

// brecqProgress shows BRECQ's reconstruction steps (docs/DESIGN.md, "BRECQ").
func (a *app) brecqProgress() brecq.ProgressFunc {
	var phase brecq.Phase = -1
	var start time.Time
	steps := 0
	return func(p brecq.Progress) {
		// The rate counts from the phase's first step, whose end is the
		// first moment known.
		if p.Phase != phase {
			phase, start, steps = p.Phase, time.Now(), 0
		} else {
			steps++
		}
		rate := "-"
		if steps > 0 {
			rate = fmt.Sprintf("%.0f", float64(steps)/time.Since(start).Seconds())
		}
		what, loss := "AdaRound", fmt.Sprintf("rec %.4g  round %.4g", p.RecLoss, p.RoundLoss)
		if p.Phase == brecq.PhaseActivations {
			what, loss = "LSQ", fmt.Sprintf("rec %.4g", p.RecLoss)
		}
		a.rep.update(p.UnitIndex == p.Units-1 && p.Iteration == p.Iterations,
			"%s %d/%d %s: step %d/%d  %s  %s it/s  %s left",
			what, p.UnitIndex+1, p.Units, p.Unit, p.Iteration, p.Iterations, loss, rate, eta(p.Remaining))
	}
}
