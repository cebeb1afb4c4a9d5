// Command onnxrt is the Go half of the ONNX Runtime checks that check.sh
// runs (docs/DESIGN.md, "ONNX export"); ort.mjs is the other half.
//
//	onnxrt testset -model M.onnx -dir D   D/x.npy, D/labels.npy: the embedded Fashion-MNIST
//	                                      test set as M's input; D/dghcore.npy: dghcore's
//	                                      logits for it; D/probe.onnx: M with every
//	                                      QuantizeLinear's input as a graph output too
//	onnxrt select -dir D                  D/mismatch_x.npy: the images whose ONNX Runtime
//	                                      logits (D/ort/logits.npy) differ from dghcore's
//	onnxrt report -dir D [-run R.json]    the figures, and the verdict: top-1 within 0.05
//	                                      points, logits within 1e-4 of their scale except
//	                                      where a rounding tie explains the difference; with
//	                                      -run, dghcore's reading of the file scores the
//	                                      exporting run's evaluation images exactly as it did
//	onnxrt float -ort Y.npy -want Z.npy   ONNX Runtime's logits against PyTorch's, 1e-4 relative
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dghcore/dghcore/assets"
	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/onnx"
	"github.com/dghcore/dghcore/tensor"
)

// The bounds (docs/DESIGN.md, "ONNX export").
const (
	logitTolerance = 1e-4 // of the logits' scale, or relative for the float models
	top1Tolerance  = 0.05 // percentage points
	// tieTolerance bounds how far apart, relative to the largest value
	// of the tensor, two inputs of a quantizer may be and still count as
	// one value rounded differently at a level boundary: sums in another
	// order differ by float32 rounding of their largest terms, a few
	// ulps of that size (6e-8 each).
	tieTolerance = 1e-5
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: onnxrt testset|select|report|float [flags]"))
	}
	fs := flag.NewFlagSet("onnxrt "+os.Args[1], flag.ExitOnError)
	model := fs.String("model", "", "the exported .onnx file")
	dir := fs.String("dir", "", "the folder the steps share")
	ort := fs.String("ort", "", "ONNX Runtime's logits .npy")
	want := fs.String("want", "", "PyTorch's logits .npy")
	runJSON := fs.String("run", "", "the exporting run's --json report, whose accuracy the file must reproduce")
	if err := fs.Parse(os.Args[2:]); err != nil {
		fail(err)
	}
	if err := kernels.Init(); err != nil {
		fail(err)
	}
	var err error
	switch os.Args[1] {
	case "testset":
		err = testset(*model, *dir)
	case "select":
		err = selectMismatches(*dir)
	case "report":
		err = report(*dir, *runJSON)
	case "float":
		err = floatCheck(*ort, *want)
	default:
		err = fmt.Errorf("unknown step %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "onnxrt:", err)
	os.Exit(1)
}

// testset writes the inputs, labels and dghcore's logits of the embedded
// test set, and the probe model.
func testset(model, dir string) error {
	data, err := os.ReadFile(model)
	if err != nil {
		return err
	}
	net, err := onnx.Parse(data)
	if err != nil {
		return err
	}
	mean, err1 := strconv.ParseFloat(net.Meta("input_mean"), 32)
	std, err2 := strconv.ParseFloat(net.Meta("input_std"), 32)
	if err1 != nil || err2 != nil || net.Meta("checkpoint") != "embedded" {
		return fmt.Errorf("%s is not an export of the embedded model (metadata %v)", model, net.Metadata)
	}
	ds, err := dataset.ReadIDX(bytes.NewReader(assets.FashionMNISTTestImages()), bytes.NewReader(assets.FashionMNISTTestLabels()),
		dataset.Normalization{Mean: []float32{float32(mean)}, Std: []float32{float32(std)}}, assets.FashionMNISTClasses)
	if err != nil {
		return err
	}
	x, labels, err := dataset.Range(ds, 0, ds.Len())
	if err != nil {
		return err
	}
	logits, err := forwardBatches(net, x)
	if err != nil {
		return err
	}
	lab := tensor.New(len(labels))
	for i, l := range labels {
		lab.Data[i] = float32(l)
	}
	for name, t := range map[string]*tensor.Tensor{"x.npy": x, "labels.npy": lab, "dghcore.npy": logits} {
		if err := tensor.WriteNPY(filepath.Join(dir, name), t); err != nil {
			return err
		}
	}
	probe, err := onnx.Unmarshal(data)
	if err != nil {
		return err
	}
	for _, n := range probe.Graph.Nodes {
		if n.OpType == "QuantizeLinear" {
			probe.Graph.Outputs = append(probe.Graph.Outputs, onnx.ValueInfo{Name: n.Inputs[0], ElemType: onnx.Float})
		}
	}
	if _, err := onnx.WriteFile(filepath.Join(dir, "probe.onnx"), probe); err != nil {
		return err
	}
	fmt.Printf("onnxrt: %d test images, dghcore's logits and a probe model with %d quantizer inputs written to %s\n",
		x.Shape[0], len(probe.Graph.Outputs)-1, dir)
	return nil
}

// forwardBatches runs net over x in batches of 32, the command line's.
func forwardBatches(net *onnx.Network, x *tensor.Tensor) (*tensor.Tensor, error) {
	var out *tensor.Tensor
	for lo := 0; lo < x.Shape[0]; lo += 32 {
		hi := min(lo+32, x.Shape[0])
		y, err := net.Forward(x.Batch(lo, hi))
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = tensor.New(x.Shape[0], y.Shape[1])
		}
		copy(out.Data[lo*y.Shape[1]:], y.Data)
	}
	return out, nil
}

// comparison holds the two runtimes' logits.
type comparison struct {
	dgh, ort *tensor.Tensor
	scale    float64 // max |dghcore logit|
}

// readPair reads two .npy files of the same shape.
func readPair(a, b string) (*tensor.Tensor, *tensor.Tensor, error) {
	ta, err := tensor.ReadNPY(a)
	if err != nil {
		return nil, nil, err
	}
	tb, err := tensor.ReadNPY(b)
	if err != nil {
		return nil, nil, err
	}
	if !tensor.SameShape(ta, tb) {
		return nil, nil, fmt.Errorf("%s has shape %v, %s %v", a, ta.Shape, b, tb.Shape)
	}
	return ta, tb, nil
}

func load(dir, ortFile string) (*comparison, error) {
	dgh, ort, err := readPair(filepath.Join(dir, "dghcore.npy"), filepath.Join(dir, ortFile))
	if err != nil {
		return nil, err
	}
	c := &comparison{dgh: dgh, ort: ort}
	for _, v := range dgh.Data {
		c.scale = max(c.scale, math.Abs(float64(v)))
	}
	return c, nil
}

// differing lists the images whose logits differ by more than the
// tolerance, and the largest difference relative to the scale.
func (c *comparison) differing() (idx []int, worst float64) {
	k := c.dgh.Shape[1]
	for i := range c.dgh.Shape[0] {
		off := false
		for j := i * k; j < (i+1)*k; j++ {
			d := math.Abs(float64(c.dgh.Data[j]-c.ort.Data[j])) / c.scale
			worst = max(worst, d)
			off = off || d > logitTolerance
		}
		if off {
			idx = append(idx, i)
		}
	}
	return idx, worst
}

func selectMismatches(dir string) error {
	c, err := load(dir, filepath.Join("ort", "logits.npy"))
	if err != nil {
		return err
	}
	idx, _ := c.differing()
	path := filepath.Join(dir, "mismatch_x.npy")
	os.Remove(path)
	if len(idx) == 0 {
		fmt.Println("onnxrt: every image's logits agree within the tolerance")
		return nil
	}
	x, err := tensor.ReadNPY(filepath.Join(dir, "x.npy"))
	if err != nil {
		return err
	}
	per := x.Numel() / x.Shape[0]
	sel := tensor.New(append([]int{len(idx)}, x.Shape[1:]...)...)
	for i, j := range idx {
		copy(sel.Data[i*per:(i+1)*per], x.Data[j*per:(j+1)*per])
	}
	fmt.Printf("onnxrt: %d images differ beyond the tolerance; their inputs go to %s for the probe run\n", len(idx), path)
	return tensor.WriteNPY(path, sel)
}

// top1 is the accuracy of logits against labels, in percent.
func top1(logits, labels *tensor.Tensor) float64 {
	k, right := logits.Shape[1], 0
	for i := range logits.Shape[0] {
		row := logits.Data[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == int(labels.Data[i]) {
			right++
		}
	}
	return 100 * float64(right) / float64(logits.Shape[0])
}

func report(dir, runJSON string) error {
	c, err := load(dir, filepath.Join("ort", "logits.npy"))
	if err != nil {
		return err
	}
	labels, err := tensor.ReadNPY(filepath.Join(dir, "labels.npy"))
	if err != nil {
		return err
	}
	if runJSON != "" {
		if err := sameAsRun(runJSON, c.dgh, labels); err != nil {
			return err
		}
	}
	n := c.dgh.Shape[0]
	dTop, oTop := top1(c.dgh, labels), top1(c.ort, labels)
	idx, worst := c.differing()
	fmt.Printf("images %d; top-1 dghcore %.2f%%, ONNX Runtime %.2f%% (difference %.2f points)\n", n, dTop, oTop, math.Abs(dTop-oTop))
	fmt.Printf("logits: scale %.4g, largest difference %.3g of it; %d images beyond %g of it\n", c.scale, worst, len(idx), logitTolerance)
	ties, unexplained := 0, 0
	if len(idx) > 0 {
		var widest float64
		if ties, unexplained, widest, err = classify(dir, c, idx); err != nil {
			return err
		}
		fmt.Printf("of those, %d are rounding ties (at the first quantizer whose levels differ, the two runtimes' inputs lie on either side of a level boundary, at most %.3g of the tensor's largest value apart; the bound is %g), %d are not\n",
			ties, widest, tieTolerance, unexplained)
	}
	if def, err := load(dir, filepath.Join("ort_default", "logits.npy")); err == nil {
		didx, dworst := def.differing()
		fmt.Printf("ONNX Runtime with its default optimizations (WeightBiasQuantization on): top-1 %.2f%%, largest logit difference %.3g of the scale, %d images beyond %g\n",
			top1(def.ort, labels), dworst, len(didx), logitTolerance)
	}
	switch {
	case math.Abs(dTop-oTop) > top1Tolerance:
		return fmt.Errorf("top-1 differs by %.2f points, more than %g", math.Abs(dTop-oTop), top1Tolerance)
	case unexplained > 0:
		return fmt.Errorf("%d images differ beyond %g of the logits' scale without a rounding tie", unexplained, logitTolerance)
	}
	fmt.Println("onnxrt: ONNX Runtime agrees with dghcore")
	return nil
}

// sameAsRun checks that dghcore's logits of the file score the run's
// evaluation images (the first eval_images of the test set) exactly as
// the run scored its in-memory model.
func sameAsRun(path string, logits, labels *tensor.Tensor) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var report struct {
		Runs []struct {
			Accuracy struct {
				Full *struct {
					Top1    float64 `json:"top1"`
					Samples int     `json:"samples"`
				} `json:"full"`
			} `json:"accuracy"`
			Export string `json:"export"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b, &report); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(report.Runs) != 1 {
		return fmt.Errorf("%s: %d runs, want the one that exported", path, len(report.Runs))
	}
	run := report.Runs[0]
	full := run.Accuracy.Full
	if full == nil || full.Samples < 1 || full.Samples > logits.Shape[0] || run.Export == "" {
		return fmt.Errorf("%s: no full-quantization accuracy, evaluation count or export to compare with", path)
	}
	n := full.Samples
	got := top1(logits.Batch(0, n), labels.Batch(0, n))
	fmt.Printf("the run: %.2f%% top-1 on its %d evaluation images in memory; its export %s, read back by dghcore: %.2f%%\n",
		full.Top1, n, run.Export, got)
	// The report gives percentages to two decimals.
	if math.Abs(math.Round(got*100)/100-full.Top1) > 1e-9 {
		return fmt.Errorf("the export scores %.4f%% where the run's model scored %.2f%%", got, full.Top1)
	}
	return nil
}

// classify explains each differing image: walking the quantizers in graph
// order, the first whose levels differ between the runtimes must see
// inputs within tieTolerance of the tensor's size on either side of a
// rounding boundary. Everything before it agrees, so the two inputs
// differ only by float sums in another order.
func classify(dir string, c *comparison, idx []int) (ties, unexplained int, widest float64, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "probe.onnx"))
	if err != nil {
		return 0, 0, 0, err
	}
	m, err := onnx.Unmarshal(data)
	if err != nil {
		return 0, 0, 0, err
	}
	qs, err := quantizers(m)
	if err != nil {
		return 0, 0, 0, err
	}
	// dghcore runs the model as exported: the probe outputs come off.
	m.Graph.Outputs = m.Graph.Outputs[:1]
	net, err := onnx.Compile(m)
	if err != nil {
		return 0, 0, 0, err
	}
	x, err := tensor.ReadNPY(filepath.Join(dir, "mismatch_x.npy"))
	if err != nil {
		return 0, 0, 0, err
	}
	probes := map[string]*tensor.Tensor{}
	for _, q := range qs {
		if probes[q.input], err = tensor.ReadNPY(filepath.Join(dir, "probe_ort", q.input+".npy")); err != nil {
			return 0, 0, 0, err
		}
	}
	probeLogits, err := tensor.ReadNPY(filepath.Join(dir, "probe_ort", onnx.OutputName+".npy"))
	if err != nil {
		return 0, 0, 0, err
	}
	k := c.ort.Shape[1]
	for i, img := range idx {
		for j := range k {
			if probeLogits.Data[i*k+j] != c.ort.Data[img*k+j] {
				return 0, 0, 0, fmt.Errorf("image %d: the probe model's logits differ from the plain model's, so its values do not stand for that run", img)
			}
		}
		values := map[string]*tensor.Tensor{}
		if _, err := net.Trace(x.Batch(i, i+1), func(name string, v *tensor.Tensor) { values[name] = v.Clone() }); err != nil {
			return 0, 0, 0, err
		}
		tie, gap, where := firstDivergence(qs, values, probes, i)
		switch {
		case where == "":
			unexplained++
			fmt.Printf("  image %d: every quantizer agrees, yet the logits differ\n", img)
		case tie:
			ties++
			widest = max(widest, gap)
		default:
			unexplained++
			fmt.Printf("  image %d: %s: inputs %.3g of the tensor's size apart, not a tie\n", img, where, gap)
		}
	}
	return ties, unexplained, widest, nil
}

// quantizer is one QuantizeLinear of the file: its input value, scale,
// zero point and range.
type quantizer struct {
	name, input string
	scale       float32
	zp, lo, hi  float64
}

func quantizers(m *onnx.Model) ([]quantizer, error) {
	inits := map[string]*onnx.Tensor{}
	for i := range m.Graph.Initializers {
		inits[m.Graph.Initializers[i].Name] = &m.Graph.Initializers[i]
	}
	var qs []quantizer
	for _, n := range m.Graph.Nodes {
		if n.OpType != "QuantizeLinear" {
			continue
		}
		q := quantizer{name: n.Name, input: n.Inputs[0]}
		s := inits[n.Inputs[1]]
		if s == nil {
			return nil, fmt.Errorf("%s: no scale", n.Name)
		}
		scale, _, err := s.Values()
		if err != nil || len(scale) != 1 {
			return nil, fmt.Errorf("%s: no scalar scale (%v)", n.Name, err)
		}
		q.scale = scale[0]
		dt := onnx.Uint8
		for _, a := range n.Attrs {
			if a.Name == "output_dtype" && a.I != 0 {
				dt = onnx.DataType(a.I)
			}
		}
		if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			z := inits[n.Inputs[2]]
			if z == nil {
				return nil, fmt.Errorf("%s: no zero point", n.Name)
			}
			_, zp, err := z.Values()
			if err != nil || len(zp) != 1 {
				return nil, fmt.Errorf("%s: no scalar zero point (%v)", n.Name, err)
			}
			dt, q.zp = z.DataType, float64(zp[0])
		}
		lo, hi, ok := dt.Range()
		if !ok {
			return nil, fmt.Errorf("%s: quantizes to %v", n.Name, dt)
		}
		q.lo, q.hi = float64(lo), float64(hi)
		qs = append(qs, q)
	}
	return qs, nil
}

// firstDivergence finds the first quantizer whose levels differ between
// dghcore's values and ONNX Runtime's (image i of the probes) and says
// whether every differing level there is a tie, and the widest gap
// between the two inputs relative to the tensor's largest value.
func firstDivergence(qs []quantizer, values, probes map[string]*tensor.Tensor, i int) (tie bool, gap float64, where string) {
	for _, q := range qs {
		d, o := values[q.input], probes[q.input]
		per := d.Numel()
		ov := o.Data[i*per : (i+1)*per]
		tie, diverged := true, false
		size := float64(q.scale) // the tensor's largest magnitude, or the step
		for _, dv := range d.Data {
			size = max(size, math.Abs(float64(dv)))
		}
		for j, dv := range d.Data {
			ld, lo := q.level(dv), q.level(ov[j])
			if ld == lo {
				continue
			}
			diverged = true
			g := math.Abs(float64(dv)-float64(ov[j])) / size
			gap = max(gap, g)
			tie = tie && math.Abs(ld-lo) == 1 && g <= tieTolerance
		}
		if diverged {
			return tie, gap, q.name
		}
	}
	return false, 0, ""
}

// level is QuantizeLinear's saturate(round(x/scale) + zero point).
func (q quantizer) level(x float32) float64 {
	return min(max(math.RoundToEven(float64(x/q.scale))+q.zp, q.lo), q.hi)
}

// floatCheck compares ONNX Runtime's logits of a float export with
// PyTorch's fixture.
func floatCheck(ortPath, wantPath string) error {
	got, want, err := readPair(ortPath, wantPath)
	if err != nil {
		return err
	}
	var scale, worst float64
	for i, w := range want.Data {
		scale = max(scale, math.Abs(float64(w)))
		worst = max(worst, math.Abs(float64(got.Data[i]-w)))
	}
	name := strings.TrimSuffix(filepath.Base(wantPath), "_logits.npy")
	fmt.Printf("%-16s %d images: max |ONNX Runtime - PyTorch| = %.3g, %.3g of the scale %.4g\n", name, got.Shape[0], worst, worst/scale, scale)
	if !(worst <= logitTolerance*scale) {
		return fmt.Errorf("%s: ONNX Runtime's logits differ from PyTorch's by %.3g of their scale, more than %g", name, worst/scale, logitTolerance)
	}
	return nil
}
