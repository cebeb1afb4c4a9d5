package main

// ONNX files (docs/DESIGN.md, "ONNX export"): --export on the full run
// and quantize, the export command for the float model, and ONNX models
// for infer and eval.

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/onnx"
)

// Metadata keys of the files dghcore writes; eval and infer read the
// input ones back.
const (
	metaModel      = "model"
	metaCheckpoint = "checkpoint"
	metaMean       = "input_mean"
	metaStd        = "input_std"
	metaSize       = "input_size"
	embeddedName   = "embedded"
)

func isONNXFile(model string) bool { return strings.EqualFold(filepath.Ext(model), ".onnx") }

// checkONNX validates the ONNX-related flags of command.
func (o *options) checkONNX(command string) error {
	switch {
	case isONNXFile(o.model) && command != cmdInfer && command != cmdEval:
		return usageErrorf("--model %s: an ONNX file can be run by infer and eval; the other commands start from a PyTorch checkpoint", o.model)
	case isONNXFile(o.model) && o.checkpoint != "":
		return usageErrorf("--model %s is an ONNX file; drop --checkpoint", o.model)
	case o.exportPath != "" && command != cmdRun && command != cmdQuantize:
		return usageErrorf("--export belongs to the full run and quantize, which end in a quantized model; dghcore export --output FILE.onnx writes the float model")
	case o.exportPath != "" && o.compare:
		return usageErrorf("--export writes one quantized model and --compare makes three; drop one of them")
	case command == cmdExport && o.outputPath == "":
		return usageErrorf("export: --output FILE.onnx is required")
	}
	return nil
}

// checkExportPath makes sure the file can be written before the long work
// starts.
func (a *app) checkExportPath() error {
	if a.o.exportPath == "" {
		return nil
	}
	if err := onnx.CheckWritable(a.o.exportPath); err != nil {
		return usageErrorf("--export %s: %v", a.o.exportPath, err)
	}
	return nil
}

// inputMetadata describes what the file's input expects.
func (a *app) inputMetadata() []onnx.Entry {
	ckpt := embeddedName
	if !a.o.embedded() {
		ckpt = filepath.Base(a.checkpointPath)
	}
	floats := func(v []float32) string {
		s := make([]string, len(v))
		for i, f := range v {
			s[i] = strconv.FormatFloat(float64(f), 'g', -1, 32)
		}
		return strings.Join(s, ",")
	}
	return []onnx.Entry{
		{Key: metaModel, Value: a.model.Name}, {Key: metaCheckpoint, Value: ckpt},
		{Key: metaSize, Value: strconv.Itoa(a.imageSize())},
		{Key: metaMean, Value: floats(a.norm.Mean)}, {Key: metaStd, Value: floats(a.norm.Std)},
	}
}

// write exports q (under its Mode) to path and says what went into it.
func (a *app) write(q *brecq.QuantModel, path, what string, meta []onnx.Entry) error {
	meta = append(meta, onnx.Entry{Key: "dghcore_version", Value: moduleVersion()}, onnx.Entry{Key: "kernels", Value: a.kernels})
	size := a.imageSize()
	m, sum, err := onnx.Export(q, onnx.Options{Channels: a.channels, Height: size, Width: size, Metadata: meta, ProducerVersion: moduleVersion()})
	if err != nil {
		return err
	}
	n, err := onnx.WriteFile(path, m)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Exported %s to %s (ONNX opset %d, %s%s)\n", what, path, sum.Opset, formatBytes(int64(n)), describeTypes(sum))
	return nil
}

// describeTypes lists the integer types of an export.
func describeTypes(s onnx.Summary) string {
	count := func(kind string, m map[onnx.DataType]int) string {
		if len(m) == 0 {
			return ""
		}
		var parts []string
		for _, dt := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%d %v", m[dt], dt))
		}
		return "; " + kind + " " + strings.Join(parts, ", ")
	}
	out := count("weights", s.WeightTypes) + count("activations", s.ActTypes)
	if len(s.Widened) > 0 {
		out += fmt.Sprintf("; wider types where a zero point lies outside the levels: %s", strings.Join(s.Widened, ", "))
	}
	return out
}

// exportQuantized writes --export once quantization is done, before the
// last evaluation, so a failure there loses nothing.
func (a *app) exportQuantized(q *brecq.QuantModel, kind string, res *runReport) error {
	if a.o.exportPath == "" {
		return nil
	}
	o := a.o
	acts := strconv.Itoa(o.activationBits)
	what := fmt.Sprintf("the W%dA%d %s", o.weightsBits, o.activationBits, a.model.Name)
	if !o.actQuant {
		acts, what = "none", fmt.Sprintf("the W%d (weights only) %s", o.weightsBits, a.model.Name)
	}
	meta := append(a.inputMetadata(),
		onnx.Entry{Key: "weights_n_bits", Value: strconv.Itoa(o.weightsBits)},
		onnx.Entry{Key: "activation_n_bits", Value: acts},
		onnx.Entry{Key: "calib_data_type", Value: res.Calibration.Type},
		onnx.Entry{Key: "n_images", Value: strconv.Itoa(res.Calibration.Images)},
		onnx.Entry{Key: "random_seed", Value: strconv.FormatInt(o.seed, 10)},
		onnx.Entry{Key: "num_iterations", Value: strconv.Itoa(o.numIterations)},
		onnx.Entry{Key: "iters_a", Value: strconv.Itoa(o.itersA)},
		onnx.Entry{Key: "weight", Value: strconv.FormatFloat(o.roundWeight, 'g', -1, 64)},
		onnx.Entry{Key: "head_stem_8bit", Value: strconv.FormatBool(o.headStem8bit)},
		onnx.Entry{Key: "disable_network_output_quantization", Value: strconv.FormatBool(o.noOutputQuant)},
		onnx.Entry{Key: "layer_reconstruction", Value: strconv.FormatBool(o.layerRecon)},
	)
	if err := a.write(q, o.exportPath, what, meta); err != nil {
		return fmt.Errorf("--export: %w", err)
	}
	res.Export = o.exportPath
	return nil
}

// exportFloat is the export command: the float model with its BatchNorms
// folded, the network the quantized export starts from.
func (a *app) exportFloat() error {
	if err := onnx.CheckWritable(a.o.outputPath); err != nil {
		return usageErrorf("--output %s: %v", a.o.outputPath, err)
	}
	if err := a.loadModel(); err != nil {
		return err
	}
	q, err := brecq.Fold(a.model)
	if err != nil {
		return err
	}
	meta := append(a.inputMetadata(), onnx.Entry{Key: "weights_n_bits", Value: "float"})
	if err := a.write(q, a.o.outputPath, fmt.Sprintf("the float %s (BatchNorm folded)", a.model.Name), meta); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

// evalCommand is the eval command: top-1 and top-5 of the model on the data.
func (a *app) evalCommand(ctx context.Context) error {
	if err := a.loadModel(); err != nil {
		return err
	}
	if err := a.openData(ctx); err != nil {
		return err
	}
	a.planData()
	if err := a.checkData(ctx); err != nil {
		return err
	}
	a.rep.plan.add(phaseFloatEval, workInference, float64(a.eval.Len()))
	acc, err := a.evaluate(ctx, phaseFloatEval, "model", a.model.Logits)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Accuracy: %s\n", percent2(acc))
	return nil
}

// loadONNX reads --model FILE.onnx for infer and eval and stands it in for
// the zoo model: its Net runs the file's network, its Spec comes from the
// metadata dghcore wrote (or --mean and --std).
func (a *app) loadONNX() error {
	path := a.o.model
	net, err := onnx.ReadFile(path)
	if err != nil {
		return usageErrorf("--model %s: %v", path, strings.TrimPrefix(err.Error(), "onnx: "))
	}
	in := net.Input
	if in[1] != in[2] {
		return usageErrorf("--model %s: input %dx%d; dghcore runs square images", path, in[1], in[2])
	}
	if len(net.Output) != 1 {
		return usageErrorf("--model %s: output of shape %v per image, want one logit per class", path, net.Output)
	}
	spec := zoo.Spec{InputSize: in[1]}
	spec.Mean, err = parseFloats(metaMean, net.Meta(metaMean))
	if err == nil {
		spec.Std, err = parseFloats(metaStd, net.Meta(metaStd))
	}
	if err != nil || len(spec.Mean) != in[0] || len(spec.Std) != in[0] {
		if a.command == cmdEval && (a.o.mean == "" || a.o.std == "") {
			return usageErrorf("--model %s records no input normalization for its %d channels; give --mean and --std", path, in[0])
		}
		spec.Mean, spec.Std = make([]float32, in[0]), make([]float32, in[0])
		for c := range spec.Std {
			spec.Std[c] = 1
		}
	}
	name := cmp.Or(net.Meta(metaModel), net.Name)
	a.model = &zoo.Model{Name: name, Net: onnxModule{net}, Spec: spec}
	a.channels, a.classes, a.size = in[0], net.Output[0], in[1]
	a.checkpointPath = path
	a.embeddedExport = net.Meta(metaCheckpoint) == embeddedName
	if a.o.imgSize > 0 && a.o.imgSize != a.size {
		return usageErrorf("--img_size %d: %s takes %dx%d images, fixed when it was exported", a.o.imgSize, path, a.size, a.size)
	}
	if err := a.resolveNormalization(); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Model: %s from %s (ONNX opset %d; %d-channel %dx%d input, %d classes)\n",
		name, path, net.Opset, in[0], in[1], in[2], a.classes)
	fmt.Fprintf(a.out, "Kernels: %s\n", a.kernels)
	return nil
}

// onnxModule runs a compiled ONNX network as a layers.Module. Its only
// error is an input of the wrong shape, which it raises as a panic the
// way the zoo's modules do; infer and eval turn that into an error line.
type onnxModule struct{ net *onnx.Network }

func (m onnxModule) Forward(x *autograd.Var) *autograd.Var {
	y, err := m.net.Forward(x.Value)
	if err != nil {
		panic(err)
	}
	return autograd.Const(y)
}
