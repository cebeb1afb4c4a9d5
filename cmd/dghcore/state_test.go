package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/tensor"
)

// interruptAt runs args until a progress line containing marker goes by,
// then cancels as Ctrl-C would, and returns the exit code and output.
func interruptAt(t *testing.T, marker string, args []string, also func()) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelOn{marker: marker, cancel: func() {
		if also != nil {
			also()
		}
		cancel()
	}}
	var stdout bytes.Buffer
	code := run(ctx, args, &stdout, stderr)
	return code, stdout.String(), stderr.String()
}

// lastLine is the last line of s.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// TestStateFolderRules interrupts a run and then checks what may happen
// to its state: a run without --resume is refused and leaves it alone,
// a resume with other flags, a damaged state or a locked folder is
// refused before any work naming why, a resume removes orphaned
// temporaries, reuses the float accuracy and finishes; --fresh starts
// over.
func TestStateFolderRules(t *testing.T) {
	f := newFixture(t)
	state := filepath.Join(f.dir, "state")
	report := filepath.Join(f.dir, "report.json")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath,
		"--state_dir", state, "--json", report}, quick...)
	args = append(args, "--distill_num_iter", "3")
	code, _, stderr := interruptAt(t, "generation: iter 1/3", args, nil)
	if code != exitInterrupted {
		t.Fatalf("interrupt: exit %d: %s", code, stderr)
	}
	dghState := filepath.Join(state, "dgh", dghStateFile)
	saved, err := os.ReadFile(dghState)
	if err != nil {
		t.Fatal(err)
	}
	var rec runRecord
	if err := statefile.Read(filepath.Join(state, runStateFile), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Float == nil || !(rec.Sources["dgh"].Seconds.Generation > 0) || !strings.HasPrefix(rec.Sources["dgh"].Position, "generation saved at iteration") {
		t.Fatalf("run record after the interrupt: %+v, %+v", rec, rec.Sources["dgh"])
	}

	refused := func(name string, extra []string, want ...string) {
		t.Helper()
		code, stdout, stderr := invoke(context.Background(), append(slices.Clone(args), extra...)...)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d: %s", name, code, exitUsage, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: %q does not say %q", name, stderr, w)
			}
		}
		if strings.Contains(stdout, "accuracy") || strings.Contains(stderr, "evaluating") || strings.Contains(stderr, "generation:") {
			t.Errorf("%s: work started before the refusal: %s", name, stdout)
		}
		if b, err := os.ReadFile(dghState); err != nil || !bytes.Equal(b, saved) {
			t.Fatalf("%s: the interrupted run's state changed: %v", name, err)
		}
	}
	refused("without --resume", nil, "holds an interrupted run's state", "dghcore run started", "dgh generation saved at iteration",
		"--resume", "--fresh")
	refused("other rate", []string{"--resume", "--distill_lr", "8"}, "--distill_lr 16 (saved) vs 8 (now)")
	refused("other seed and bits", []string{"--resume", "--random_seed", "3", "--weights_n_bits", "3"},
		"--random_seed 0 (saved) vs 3 (now); --weights_n_bits 4 (saved) vs 3 (now)")
	refused("other size", []string{"--resume", "--img_size", "12"}, "--img_size 8 (saved) vs 12 (now)")

	// One flipped bit in the generation state.
	flipped := bytes.Clone(saved)
	flipped[len(flipped)-3] ^= 1
	if err := os.WriteFile(dghState, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = invoke(context.Background(), append(slices.Clone(args), "--resume")...)
	if code != exitUsage || !strings.Contains(stderr, "checksum mismatch") || !strings.Contains(stderr, "--fresh") {
		t.Errorf("a flipped bit: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(dghState, saved, 0o644); err != nil {
		t.Fatal(err)
	}

	// Another process holds the lock.
	lock, err := os.OpenFile(filepath.Join(state, lockFileName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	refused("locked", []string{"--resume"}, "is in use by another dghcore run")
	lock.Close()

	// A temporary file a killed save left behind.
	orphan := dghState + ".tmp-12345"
	if err := os.WriteFile(orphan, []byte("half a state"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := invoke(context.Background(), append(slices.Clone(args), "--resume")...)
	if code != exitOK {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	for _, w := range []string{"Resuming the run saved under " + state, "the float accuracy; dgh generation saved at iteration",
		"(saved by the interrupted run)", "----> Full quantization"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("resumed run does not say %q:\n%s", w, stdout)
		}
	}
	if strings.Contains(stderr, "evaluating float model") {
		t.Errorf("the resumed run evaluated the float model again:\n%s", stderr)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state folder left after the finished run (orphan and all): %v", err)
	}
	gen := readReport(t, report)["runs"].([]any)[0].(map[string]any)["seconds"].(map[string]any)["generation"].(float64)
	if gen < rec.Sources["dgh"].Seconds.Generation-0.05 {
		t.Errorf("generation seconds %v in the report, the interrupted part alone took %v", gen, rec.Sources["dgh"].Seconds.Generation)
	}

	// --fresh deletes an interrupted run's state and starts over.
	if code, _, stderr := interruptAt(t, "generation: iter 1/3", args, nil); code != exitInterrupted {
		t.Fatalf("second interrupt: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = invoke(context.Background(), append(slices.Clone(args), "--fresh")...)
	if code != exitOK || !strings.Contains(stdout, "Starting over: removed the interrupted run's state") || strings.Contains(stdout, "saved by the interrupted run") {
		t.Fatalf("--fresh: exit %d:\n%s\n%s", code, stdout, stderr)
	}
}

// TestInterruptWhenTheSaveFails: when the save on Ctrl-C fails (the
// state folder gone, as on a full disk), the message says so and never
// claims a saved state.
func TestInterruptWhenTheSaveFails(t *testing.T) {
	f := newFixture(t)
	state := filepath.Join(f.dir, "state")
	args := append([]string{"generate", "--model", "resnet20", "--checkpoint", f.grey, "--state_dir", state,
		"--output", filepath.Join(f.dir, "out.npy")}, quick...)
	args = append(args, "--distill_num_iter", "3")
	code, _, stderr := interruptAt(t, "generation: iter 1/3", args, func() {
		dir := filepath.Join(state, "dgh")
		if err := os.Rename(dir, dir+".gone"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, nil, 0o644); err != nil { // a file where the folder was
			t.Fatal(err)
		}
	})
	last := lastLine(stderr)
	if code != exitInterrupted || !strings.Contains(last, "the state could NOT be saved") || strings.Contains(last, "state is saved") ||
		!strings.Contains(last, "not a directory") {
		t.Errorf("exit %d, last line %q", code, last)
	}
}

// childArgsEnv makes the test binary, re-executed, run the command line
// with these arguments (TestChildRun) instead of the tests.
const childArgsEnv = "DGHCORE_TEST_CHILD_ARGS"

// TestChildRun is the child process of the SIGKILL tests.
func TestChildRun(t *testing.T) {
	args := os.Getenv(childArgsEnv)
	if args == "" {
		t.Skip("only runs as the child of TestSIGKILL...")
	}
	os.Exit(run(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
}

// killWhen runs args in a child process and kills it with SIGKILL once
// ready reports true on the run record it saved.
func killWhen(t *testing.T, state string, args []string, ready func(*runRecord) bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildRun$", "-test.count=1")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+strings.Join(args, "\x1f"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("the child ended (%v) before the kill:\n%s", err, out.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("the child never got ready:\n%s", out.String())
		case <-time.After(2 * time.Millisecond):
		}
		var rec runRecord
		if statefile.Read(filepath.Join(state, runStateFile), &rec) == nil && ready(&rec) {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended by %v, not by SIGKILL", cmd.ProcessState)
	}
}

var savedIteration = regexp.MustCompile(`generation saved at iteration (\d+) of`)

// TestSIGKILLDuringGeneration kills a generation mid-run, after some of
// its periodic saves, and resumes it: the resume continues from the last
// save (it says from where, and its first step is the one after), and
// ends with exactly the images of a run that was never interrupted.
func TestSIGKILLDuringGeneration(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process")
	}
	f := newFixture(t)
	base := append([]string{"generate", "--model", "resnet20", "--checkpoint", f.grey}, quick...)
	base = append(base, "--distill_num_iter", "60")
	want := filepath.Join(f.dir, "want.npy")
	if code, _, stderr := invoke(context.Background(), append(slices.Clone(base), "--output", want, "--state_dir", filepath.Join(f.dir, "s0"))...); code != exitOK {
		t.Fatalf("uninterrupted run: %s", stderr)
	}
	state, got := filepath.Join(f.dir, "state"), filepath.Join(f.dir, "got.npy")
	args := append(slices.Clone(base), "--output", got, "--state_dir", state)
	// The killed run saves between every two batch steps.
	killWhen(t, state, append(slices.Clone(args), "--save_every", "1ms"), func(r *runRecord) bool {
		m := savedIteration.FindStringSubmatch(r.Sources["dgh"].positionOrEmpty())
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		return n >= 5
	})
	if _, err := os.Stat(got); err == nil {
		t.Fatal("the killed run wrote its images")
	}
	var rec runRecord
	if err := statefile.Read(filepath.Join(state, runStateFile), &rec); err != nil {
		t.Fatal(err)
	}
	saved, _ := strconv.Atoi(savedIteration.FindStringSubmatch(rec.Sources["dgh"].Position)[1])
	code, stdout, stderr := invoke(context.Background(), append(slices.Clone(args), "--resume")...)
	if code != exitOK {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, fmt.Sprintf("dgh generation saved at iteration %d of 60", saved)) {
		t.Errorf("the resume does not say it continues from iteration %d:\n%s", saved, stdout)
	}
	first := regexp.MustCompile(`generation: iter (\d+)/60`).FindStringSubmatch(stderr)
	if first == nil {
		t.Fatalf("no progress in the resumed run:\n%s", stderr)
	}
	if n, _ := strconv.Atoi(first[1]); n <= saved {
		t.Errorf("the resume's first step is iteration %d, want one after %d", n, saved)
	}
	a, err := tensor.ReadNPY(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tensor.ReadNPY(got)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Shape, b.Shape) || !slices.Equal(a.Data, b.Data) {
		t.Error("the resumed run ended with other images than the uninterrupted one")
	}
	t.Logf("killed after the save at iteration %d of 60; resumed at %s", saved, first[1])
}

// TestSIGKILLDuringQuantization kills a run inside BRECQ: the resume takes
// the saved calibration images instead of generating them again, says
// so, and finishes.
func TestSIGKILLDuringQuantization(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process")
	}
	f := newFixture(t)
	state := filepath.Join(f.dir, "state")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath, "--state_dir", state}, quick...)
	args = append(args, "--num_iterations", "100")
	killWhen(t, state, append(slices.Clone(args), "--save_every", "1ms"), func(r *runRecord) bool {
		return strings.Contains(r.Sources["dgh"].positionOrEmpty(), "quantization saved at AdaRound unit 2")
	})
	code, stdout, stderr := invoke(context.Background(), append(slices.Clone(args), "--resume")...)
	if code != exitOK {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "dgh quantization saved at AdaRound unit") || !strings.Contains(stdout, "Calibration: dgh, 4 images resumed from") {
		t.Errorf("the resume does not say what it reuses:\n%s", stdout)
	}
	if strings.Contains(stderr, "generation:") || strings.Contains(stderr, "AdaRound 1/") {
		t.Errorf("the resume generated the images or redid the first unit again:\n%s", stderr)
	}
}

// positionOrEmpty is a source's saved position, empty when there is none.
func (s *sourceRecord) positionOrEmpty() string {
	if s == nil {
		return ""
	}
	return s.Position
}

// TestCompareResumeReusesFinishedSources interrupts --compare in its
// second source: the resume reuses the first source's finished results
// (it says so, and does not quantize it again) and ends with all three
// rows.
func TestCompareResumeReusesFinishedSources(t *testing.T) {
	f := newFixture(t)
	report := filepath.Join(f.dir, "report.json")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath, "--compare", "--act_quant=false",
		"--json", report, "--state_dir", filepath.Join(f.dir, "state")}, quick...)
	if code, _, stderr := interruptAt(t, "generation: iter 1/2", args, nil); code != exitInterrupted {
		t.Fatalf("interrupt: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := invoke(context.Background(), append(args, "--resume")...)
	if code != exitOK {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "random_noise finished") || !strings.Contains(stdout, "(random_noise: finished by the interrupted run)") {
		t.Errorf("the resume does not reuse random_noise:\n%s", stdout)
	}
	if n := strings.Count(stderr, "AdaRound 11/11 fc: step 2/2"); n != 2 {
		t.Errorf("%d sources quantized by the resume, want dgh and real_data", n)
	}
	if runs := readReport(t, report)["runs"].([]any); len(runs) != 3 {
		t.Errorf("%d runs in the report", len(runs))
	}
}
