// Command dghcore synthesises calibration images with DGH and quantizes a
// CNN with BRECQ (docs/DESIGN.md, "Command line").
//
//	dghcore                                   the embedded Fashion-MNIST resnet20, quick preset
//	dghcore -model mobilenet_v2 -weight 0.1 --data_path /imagenet
//	dghcore generate --model resnet18 --output images.npy --png images/
//	dghcore quantize --model resnet18 --calib images.npy --data_path /imagenet
//	dghcore infer --model resnet18 --checkpoint r18.pth --input x.npy --output logits.npy
//
// Run dghcore --help for every flag.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

func main() {
	// Ctrl-C and SIGTERM cancel the context: the long phases save their
	// state and run returns, so deferred clean-up happens.
	// A second Ctrl-C kills the program at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1   // the work failed
	exitUsage       = 2   // bad input, refused before any long work
	exitInterrupted = 130 // cancelled by a signal; resumable
)

// usageError marks input the program refuses before starting.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// interruptedError is a cancelled long phase; resume says how to
// continue it.
type interruptedError struct {
	phase  string
	err    error
	resume string
}

func (e *interruptedError) Error() string { return e.err.Error() }
func (e *interruptedError) Unwrap() error { return e.err }

// run is the whole program behind main: results go to stdout, progress
// and the one-line error to stderr, and the exit code comes back.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	command, args := splitCommand(args)
	o, err := parseOptions(command, args)
	if errors.Is(err, pflag.ErrHelp) {
		printUsage(stdout, o.fs)
		return exitOK
	}
	if err == nil {
		a := &app{o: o, command: command, out: stdout, rep: newReporter(stderr)}
		var stopTraces func()
		if stopTraces, err = startTraces(os.Getenv(traceEnv), a.rep); err == nil {
			err = a.run(ctx)
			stopTraces()
		}
		a.rep.end()
	}
	return report(stderr, err)
}

// report prints err as one line and picks the exit code.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	msg := oneLine(err.Error())
	var ue *usageError
	var ie *interruptedError
	switch {
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "dghcore: %s interrupted (%s); %s\n", ie.phase, msg, ie.resume)
		return exitInterrupted
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "dghcore: interrupted (%s)\n", msg)
		return exitInterrupted
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "dghcore: %s\n", msg)
		return exitUsage
	}
	fmt.Fprintf(stderr, "dghcore: %s\n", msg)
	return exitFailure
}

// oneLine keeps the first line of a multi-line library message (a
// checkpoint mismatch lists every key) and says how many were dropped.
func oneLine(s string) string {
	first, rest, ok := strings.Cut(s, "\n")
	if !ok {
		return s
	}
	lines := strings.Split(rest, "\n")
	return fmt.Sprintf("%s; first: %s (and %d more)", first, strings.TrimSpace(lines[0]), len(lines)-1)
}
