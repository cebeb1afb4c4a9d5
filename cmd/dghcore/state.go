package main

// The state folder (docs/DESIGN.md, "Command line"): an exclusive lock,
// the run record that a resume is checked against, and the rules that
// keep an interrupted run's work from being overwritten or resumed
// wrongly.
//
//	<state_dir>/lock                     held (flock) while a run uses the folder
//	<state_dir>/run.state                this command line's record of the run
//	<state_dir>/<source>/dgh.state       DGH's generation state
//	<state_dir>/<source>/calib.state     the calibration images BRECQ works on
//	<state_dir>/<source>/brecq.state     BRECQ's reconstruction state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/tensor"
)

// Files under --state_dir.
const (
	lockFileName   = "lock"
	runStateFile   = "run.state"
	dghStateFile   = "dgh.state"
	brecqStateFile = "brecq.state"
	calibStateFile = "calib.state"
)

// stateFiles are the files of one calibration source's folder.
var stateFiles = []string{dghStateFile, calibStateFile, brecqStateFile}

// runRecordVersion changes whenever runRecord's meaning does.
const runRecordVersion = 1

// runRecord is the command line's own state: the settings a resume must
// repeat, and what the run has finished, so a resume reuses it and says
// so.
type runRecord struct {
	Version  int
	Command  string
	Settings statefile.Settings
	Started  time.Time
	// Float is the float model's accuracy, valid for the evaluation set
	// described by EvalSet.
	Float   *savedAccuracy
	EvalSet string
	Sources map[string]*sourceRecord
	// Seconds of the phases outside the sources, summed over resumes.
	CheckSeconds, FloatSeconds float64
}

// sourceRecord is one calibration source's progress.
type sourceRecord struct {
	// Seconds per phase, summed over the runs that worked on it.
	Seconds phaseSeconds
	// Position says where its last saved state stands, for the message
	// that tells a user what a resume reuses.
	Position   string
	WeightOnly *savedAccuracy
	// Result is the finished source's report entry.
	Result *runReport
}

type savedAccuracy struct {
	Top1, Top5 float64
	Samples    int
}

type phaseSeconds struct {
	Generation, Quantization, Evaluation float64
}

// stateDir is --state_dir while a run holds it.
type stateDir struct {
	path   string
	lock   *os.File
	record *runRecord // nil until the rules are applied
	// ours is set when the run started on a folder without state: if it
	// then fails before saving anything, it leaves nothing behind.
	ours bool
}

// sourceDir is the folder of one calibration source's state.
func (s *stateDir) sourceDir(kind string) string { return filepath.Join(s.path, kind) }

func (s *stateDir) file(kind, name string) string { return filepath.Join(s.path, kind, name) }

// source returns kind's record, creating it.
func (s *stateDir) source(kind string) *sourceRecord {
	if s.record.Sources == nil {
		s.record.Sources = map[string]*sourceRecord{}
	}
	r := s.record.Sources[kind]
	if r == nil {
		r = &sourceRecord{}
		s.record.Sources[kind] = r
	}
	return r
}

// openState takes --state_dir for this run: it creates the folder and
// locks it (which proves it writable), removes the temporary files of
// saves a killed run left, and applies the rules: a folder holding an
// interrupted run's state is only continued with --resume or cleared with
// --fresh, and --resume needs a state. The settings are checked later, by
// checkResume, once the model is known.
func (a *app) openState(kinds []string) error {
	o := a.o
	dir := o.stateDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return usageErrorf("--state_dir %s: cannot create it: %v", dir, errorsUnwrapPath(err))
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return usageErrorf("--state_dir %s: not writable: %v", dir, errorsUnwrapPath(err))
	}
	if err := lockFile(f); err != nil {
		holder, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, errLocked) {
			return usageErrorf("--state_dir %s is in use by another dghcore run (%s); wait for it to end or give another --state_dir",
				dir, strings.TrimSpace(string(holder)))
		}
		return usageErrorf("--state_dir %s: cannot lock it: %v", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d, started %s", os.Getpid(), time.Now().Format("2006-01-02 15:04:05"))
		f.Sync()
	}
	a.state = &stateDir{path: dir, lock: f}
	for _, d := range append([]string{dir}, a.sourceDirs(kinds)...) {
		if _, err := statefile.RemoveTemporaries(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--state_dir %s: %w", dir, err)
		}
	}
	saved := a.savedStateFiles()
	switch {
	case len(saved) > 0 && o.fresh:
		for _, p := range saved {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("--fresh: %w", err)
			}
		}
		fmt.Fprintf(a.out, "Starting over: removed the interrupted run's state under %s\n", dir)
	case len(saved) > 0 && !o.resume:
		return usageErrorf("--state_dir %s holds an interrupted run's state (%s); continue it with --resume, or start over with --fresh",
			dir, a.describeSaved())
	case len(saved) == 0 && o.resume:
		return usageErrorf("--resume: no saved state under %s", dir)
	}
	a.state.ours = !o.resume
	a.state.record = &runRecord{Version: runRecordVersion, Command: commandName(a.command), Started: time.Now()}
	return nil
}

// sourceDirs lists the folders of every calibration source there could be
// state for.
func (a *app) sourceDirs(kinds []string) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, k := range append(kinds, allSources...) {
		if !seen[k] {
			seen[k] = true
			dirs = append(dirs, filepath.Join(a.o.stateDir, k))
		}
	}
	return dirs
}

// allSources are the calibration sources state can be saved for: the
// three types and a --calib file.
var allSources = []string{dgh.SourceRandomNoise, dgh.SourceDGH, dgh.SourceRealData, sourceFile}

// sourceFile is the calibration source of --calib.
const sourceFile = "file"

// savedStateFiles lists the state files under --state_dir.
func (a *app) savedStateFiles() []string {
	var files []string
	if p := filepath.Join(a.o.stateDir, runStateFile); fileExists(p) {
		files = append(files, p)
	}
	for _, d := range a.sourceDirs(nil) {
		for _, f := range stateFiles {
			if p := filepath.Join(d, f); fileExists(p) {
				files = append(files, p)
			}
		}
	}
	return files
}

// describeSaved says what an interrupted run left, in a few words.
func (a *app) describeSaved() string {
	var rec runRecord
	if err := statefile.Read(filepath.Join(a.o.stateDir, runStateFile), &rec); err != nil {
		return "saved by an older or damaged run"
	}
	parts := []string{fmt.Sprintf("dghcore %s started %s", rec.Command, rec.Started.Format("2006-01-02 15:04"))}
	for _, k := range allSources {
		if s := rec.Sources[k]; s != nil && s.Position != "" {
			parts = append(parts, k+" "+s.Position)
		}
	}
	return strings.Join(parts, "; ")
}

// checkResume compares the saved run's settings with this run's and
// verifies every saved state's checksum, before any evaluation or long
// work: a resume that would compute something else, or read a damaged
// file, is refused naming what differs.
func (a *app) checkResume(settings statefile.Settings) error {
	s := a.state
	if !a.o.resume {
		s.record.Settings = settings
		return a.saveRecord()
	}
	rec := &runRecord{}
	path := filepath.Join(s.path, runStateFile)
	if err := statefile.Read(path, rec); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usageErrorf("--resume: %s is missing, so the saved state cannot be checked against this run; start over with --fresh", path)
		}
		return usageErrorf("--resume: %v; start over with --fresh", err)
	}
	if rec.Version != runRecordVersion {
		return usageErrorf("--resume: %s was written by another version of dghcore (record version %d, want %d); start over with --fresh",
			path, rec.Version, runRecordVersion)
	}
	if rec.Command != commandName(a.command) {
		return usageErrorf("--resume: the saved run is dghcore %s, this is dghcore %s; run that command with --resume, or start over with --fresh",
			rec.Command, commandName(a.command))
	}
	if diff := rec.Settings.Diff(settings); diff != "" {
		return usageErrorf("--resume: the saved run differs: %s; give the saved values, or start over with --fresh", diff)
	}
	for _, p := range a.savedStateFiles() {
		if err := statefile.Verify(p); err != nil {
			return usageErrorf("--resume: %v; start over with --fresh", err)
		}
	}
	s.record = rec
	return nil
}

// saveRecord writes run.state.
func (a *app) saveRecord() error {
	if a.state == nil {
		return nil
	}
	return statefile.Write(filepath.Join(a.state.path, runStateFile), a.state.record)
}

// closeState releases the lock. When the run is finished, or failed
// before saving anything in a folder that held nothing, its state files
// and, when empty, their folders go too; an interrupted run's stay.
func (a *app) closeState(finished bool) {
	s := a.state
	if s == nil {
		return
	}
	finished = finished || s.ours && !a.hasSavedWork()
	if finished {
		for _, p := range a.savedStateFiles() {
			os.Remove(p)
		}
		for _, d := range a.sourceDirs(nil) {
			os.Remove(d)
		}
		os.Remove(s.lock.Name())
	}
	s.lock.Close()
	if finished {
		os.Remove(s.path)
	}
	a.state = nil
}

// hasSavedWork reports whether the run has saved anything a resume
// would reuse: an accuracy, a finished source, a source's state.
func (a *app) hasSavedWork() bool {
	rec := a.state.record
	if rec == nil {
		return true // the rules were not applied: keep what is there
	}
	if rec.Float != nil {
		return true
	}
	for _, s := range rec.Sources {
		if s.Result != nil || s.WeightOnly != nil {
			return true
		}
	}
	for _, p := range a.savedStateFiles() {
		if filepath.Base(p) != runStateFile {
			return true
		}
	}
	return false
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// makeDir creates a folder under --state_dir.
func makeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--state_dir: %w", err)
	}
	return nil
}

// removeFile deletes a state file that is no longer needed.
func removeFile(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// A leftover file is refused by the next run's rules, never
		// resumed wrongly; nothing more to do here.
		return
	}
}

// savedCalibration is the calibration set a quantization works on, kept so
// that a resumed quantization continues on the same images.
type savedCalibration struct {
	Shape []int
	Data  []float32
}

func saveCalibration(path string, imgs *tensor.Tensor) error {
	return statefile.Write(path, &savedCalibration{Shape: imgs.Shape, Data: imgs.Data})
}

func loadCalibration(path string) (*tensor.Tensor, error) {
	var c savedCalibration
	if err := statefile.Read(path, &c); err != nil {
		return nil, err
	}
	if len(c.Shape) != 4 || tensor.Numel(c.Shape) != len(c.Data) {
		return nil, fmt.Errorf("%s: %d values for images %v", path, len(c.Data), c.Shape)
	}
	return tensor.FromSlice(c.Data, c.Shape...), nil
}

// commandName names a command as a user types it.
func commandName(command string) string {
	if command == cmdRun {
		return "run"
	}
	return command
}
