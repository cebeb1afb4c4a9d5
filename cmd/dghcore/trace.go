package main

import (
	"strings"

	"github.com/dghcore/dghcore/kernels"
)

// traceEnv names the environment variable that turns traces on, a
// comma-separated list: DGHCORE_TRACE=conv prints each distinct
// convolution pass's plan (its route and parameters) once, to stderr
// (docs/DESIGN.md, "Kernels").
const traceEnv = "DGHCORE_TRACE"

// startTraces turns on the traces value lists, writing them through
// rep; an unknown name is a usage error. The returned stop turns them
// off again.
func startTraces(value string, rep *reporter) (stop func(), err error) {
	stop = func() {}
	for name := range strings.SplitSeq(value, ",") {
		switch name = strings.ToLower(strings.TrimSpace(name)); name {
		case "":
		case "conv":
			kernels.TraceConv(traceWriter{rep})
			stop = func() { kernels.TraceConv(nil) }
		default:
			return stop, usageErrorf("%s=%s: unknown trace %q (known: conv)", traceEnv, value, name)
		}
	}
	return stop, nil
}

// traceWriter writes trace lines on lines of their own, below a progress
// line being rewritten. The kernels trace from the goroutine that calls
// them, which is the one that reports progress.
type traceWriter struct{ rep *reporter }

func (t traceWriter) Write(b []byte) (int, error) {
	t.rep.end()
	return t.rep.w.Write(b)
}
