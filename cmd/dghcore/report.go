package main

// The JSON report (--json; docs/DESIGN.md, "Command line"): one object
// whatever the command, a runs list (one entry per calibration source,
// three with --compare), the resolved configuration that reproduces the
// run, and numbers rounded to what they mean.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/dghcore/dghcore/brecq"
	"github.com/spf13/pflag"
)

// reportVersion changes whenever a field changes meaning or goes away;
// new fields may appear without it changing.
const reportVersion = 1

type jsonReport struct {
	ReportVersion int            `json:"report_version"`
	Dghcore       string         `json:"dghcore"`
	Command       string         `json:"command"`
	Kernels       string         `json:"kernels"`
	Config        map[string]any `json:"config"`
	Model         modelReport    `json:"model"`
	Data          *dataReport    `json:"data"`
	Runs          []*runReport   `json:"runs"`
	Seconds       totalSeconds   `json:"seconds"`
}

// totalSeconds are the phases outside the runs and the whole, each
// summed over resumes.
type totalSeconds struct {
	DataCheck       seconds `json:"data_check"`
	FloatEvaluation seconds `json:"float_evaluation"`
	Total           seconds `json:"total"`
}

type modelReport struct {
	Name       string `json:"name"`
	Checkpoint string `json:"checkpoint"`
	SHA256     string `json:"checkpoint_sha256"`
	Channels   int    `json:"channels"`
	ImageSize  int    `json:"image_size"`
	Classes    int    `json:"classes"`
}

type dataReport struct {
	Path string `json:"path"`
	// SampleShape is one preprocessed image as the model sees it.
	SampleShape  [3]int `json:"sample_shape"`
	Images       int    `json:"images"`
	Classes      int    `json:"classes"`
	Evaluated    int    `json:"evaluated"`
	SkippedBad   int    `json:"skipped_bad_images"`
	LinksSkipped int    `json:"folders_reached_twice"`
}

// runReport is one calibration source's run.
type runReport struct {
	Calibration calibrationReport `json:"calibration"`
	Accuracy    accuracyReport    `json:"accuracy"`
	Units       []unitReport      `json:"units"`
	Seconds     phaseReport       `json:"seconds"`
	Export      string            `json:"export,omitempty"` // the ONNX file written
}

type calibrationReport struct {
	Type      string `json:"type"`           // dgh, random_noise, real_data or file
	File      string `json:"file,omitempty"` // --calib
	SHA256    string `json:"file_sha256,omitempty"`
	Images    int    `json:"images"`
	ImageSize int    `json:"image_size"`
}

// accuracyReport holds top-1 and top-5 in percent; null when not
// measured (the float model with --eval_float_accuracy=false, the full
// model with --act_quant=false).
type accuracyReport struct {
	Float      *topK `json:"float"`
	WeightOnly *topK `json:"weight_only"`
	Full       *topK `json:"full"`
}

type topK struct {
	Top1    percent `json:"top1"`
	Top5    percent `json:"top5"`
	Samples int     `json:"samples"`
}

func newTopK(a savedAccuracy) *topK {
	return &topK{Top1: percent(100 * a.Top1), Top5: percent(100 * a.Top5), Samples: a.Samples}
}

// unitReport is one reconstruction unit: the reconstruction loss before
// and after each phase, and the quantizers' chosen scales.
type unitReport struct {
	Unit        string         `json:"unit"`
	Weights     *lossReport    `json:"weights"`     // AdaRound; null when not reconstructed
	Activations *lossReport    `json:"activations"` // LSQ; null when not reconstructed
	Modules     []moduleReport `json:"modules"`
	ActScales   []actScale     `json:"activation_quantizers"`
}

type lossReport struct {
	Before significant `json:"loss_before"`
	After  significant `json:"loss_after"`
}

type moduleReport struct {
	Name       string        `json:"name"`
	WeightBits int           `json:"weight_bits"`
	Scales     []significant `json:"weight_scales"`      // per output channel
	ZeroPoints []int         `json:"weight_zero_points"` // per output channel
}

type actScale struct {
	Bits      int         `json:"bits"`
	Scale     significant `json:"scale"`
	ZeroPoint int         `json:"zero_point"`
}

type phaseReport struct {
	Generation   seconds `json:"generation"`
	Quantization seconds `json:"quantization"`
	Evaluation   seconds `json:"evaluation"`
}

// percent prints with two decimals, the resolution of a top-1 count on
// 10000 images.
type percent float64

func (p percent) MarshalJSON() ([]byte, error) { return fixed(float64(p), 2) }

// seconds prints with one decimal.
type seconds float64

func (s seconds) MarshalJSON() ([]byte, error) { return fixed(float64(s), 1) }

// significant prints losses and scales with five significant digits,
// more than their run-to-run spread.
type significant float64

func (s significant) MarshalJSON() ([]byte, error) {
	v := float64(s)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return []byte(strconv.FormatFloat(v, 'g', 5, 64)), nil
}

func fixed(v float64, decimals int) ([]byte, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return []byte(strconv.FormatFloat(v, 'f', decimals, 64)), nil
}

// unitReports gathers the per-unit losses of a quantization and the
// scales its quantizers chose.
func unitReports(q *brecq.QuantModel) []unitReport {
	var out []unitReport
	index := map[string]int{}
	for _, u := range q.Units() {
		ur := unitReport{Unit: u.UnitName(), Modules: []moduleReport{}, ActScales: []actScale{}}
		for _, m := range u.Modules() {
			mr := moduleReport{Name: m.Name, WeightBits: m.WQ.Bits}
			for c, d := range m.WQ.Delta {
				mr.Scales = append(mr.Scales, significant(d))
				mr.ZeroPoints = append(mr.ZeroPoints, zeroPoint(m.WQ.ZP[c]))
			}
			ur.Modules = append(ur.Modules, mr)
		}
		for _, aq := range u.ActQuantizers() {
			if aq.Ready() {
				ur.ActScales = append(ur.ActScales, actScale{Bits: aq.Bits, Scale: significant(aq.Delta.Value.Data[0]), ZeroPoint: zeroPoint(aq.ZP)})
			}
		}
		index[ur.Unit] = len(out)
		out = append(out, ur)
	}
	// Under layer reconstruction the report names layers inside units:
	// they go to the unit whose name prefixes theirs.
	for _, r := range q.Report {
		i, ok := index[r.Unit]
		if !ok {
			for name, j := range index {
				if len(r.Unit) > len(name) && r.Unit[:len(name)+1] == name+"." {
					i, ok = j, true
				}
			}
		}
		if !ok {
			continue
		}
		l := &lossReport{Before: significant(r.Before), After: significant(r.After)}
		if r.Phase == brecq.PhaseWeights {
			out[i].Weights = l
		} else {
			out[i].Activations = l
		}
	}
	return out
}

// zeroPoint is a quantizer's zero point, an integer held as a float.
func zeroPoint(z float32) int { return int(math.Round(float64(z))) }

// configReport is every flag with its resolved value, typed as JSON.
func (a *app) configReport() map[string]any {
	cfg := map[string]any{}
	resolved := a.resolvedFlags()
	a.o.fs.VisitAll(func(f *pflag.Flag) {
		v := f.Value.String()
		if r, ok := resolved[f.Name]; ok {
			v = r
		}
		switch f.Value.Type() {
		case "int", "int64", "float64":
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				cfg[f.Name] = json.Number(strconv.FormatFloat(n, 'g', -1, 64))
				return
			}
		case "bool":
			cfg[f.Name] = v == "true"
			return
		}
		cfg[f.Name] = v
	})
	return cfg
}

// writeJSON writes --json.
func (a *app) writeJSON(runs []*runReport) error {
	if a.o.jsonPath == "" {
		return nil
	}
	r := jsonReport{
		ReportVersion: reportVersion, Dghcore: versionString(), Command: commandName(a.command),
		Kernels: a.kernels, Config: a.configReport(), Runs: runs,
		Model: modelReport{
			Name: a.model.Name, Checkpoint: a.checkpointPath, SHA256: a.checkpointSum,
			Channels: a.channels, ImageSize: a.imageSize(), Classes: a.classes,
		},
		Data: a.dataReport,
	}
	var total float64
	if rec := a.record(); rec != nil {
		r.Seconds.DataCheck, r.Seconds.FloatEvaluation = seconds(rec.CheckSeconds), seconds(rec.FloatSeconds)
		total = rec.CheckSeconds + rec.FloatSeconds
	}
	for _, run := range runs {
		total += float64(run.Seconds.Generation + run.Seconds.Quantization + run.Seconds.Evaluation)
	}
	r.Seconds.Total = seconds(total)
	if r.Runs == nil {
		r.Runs = []*runReport{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	if err := os.WriteFile(a.o.jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// record is the run record, nil without a state folder.
func (a *app) record() *runRecord {
	if a.state == nil {
		return nil
	}
	return a.state.record
}
