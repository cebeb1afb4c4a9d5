package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/onnx"
	"github.com/dghcore/dghcore/tensor"
)

// TestExportAndEval quantizes with --export, then scores the file with
// eval on the same images: the accuracy the run printed for its model in
// memory, to the last digit. infer runs the file too, and the JSON
// report names it.
func TestExportAndEval(t *testing.T) {
	f := newFixture(t)
	idx := f.idxDir(t, 12, 8)
	model, report := filepath.Join(f.dir, "w4a4.onnx"), filepath.Join(f.dir, "report.json")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.grey, "--data_path", idx, "--calib_data_type", "random_noise",
		"--export", model, "--json", report, "--state_dir", filepath.Join(f.dir, "state")}, quick...)
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	exported := regexp.MustCompile(`Exported the W4A4 resnet20 to .*w4a4\.onnx \(ONNX opset 21, [0-9.]+ KiB; weights 22 UINT4; activations 20 UINT4\)`)
	if !exported.MatchString(stdout) {
		t.Errorf("no export line in:\n%s", stdout)
	}
	full := regexp.MustCompile(`Full quantization \(weights \+ activations\): ([0-9.]+% \(top-5 [0-9.]+%\))`).FindStringSubmatch(stdout)
	if full == nil {
		t.Fatalf("no accuracy in:\n%s", stdout)
	}
	var r struct {
		Runs []struct {
			Export string `json:"export"`
		} `json:"runs"`
	}
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &r); err != nil || len(r.Runs) != 1 || r.Runs[0].Export != model {
		t.Errorf("report %s: runs %+v (%v), want one exporting %s", b, r.Runs, err, model)
	}

	code, stdout, stderr = invoke(context.Background(), "eval", "--model", model, "--data_path", idx, "--batch_size", "4")
	if code != exitOK {
		t.Fatalf("eval: exit code %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "Accuracy: "+full[1]) || !strings.Contains(stdout, "from "+model+" (ONNX opset 21; 1-channel 8x8 input, 10 classes)") {
		t.Errorf("eval of the export, want the run's %s:\n%s", full[1], stdout)
	}

	in, out := filepath.Join(f.dir, "x.npy"), filepath.Join(f.dir, "y.npy")
	if err := tensor.WriteNPY(in, tensor.NewRNG(3).Randn(3, 1, 8, 8)); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := invoke(context.Background(), "infer", "--model", model, "--input", in, "--output", out); code != exitOK {
		t.Fatalf("infer: exit code %d: %s", code, stderr)
	}
	y, err := tensor.ReadNPY(out)
	if err != nil || !slices.Equal(y.Shape, []int{3, 10}) {
		t.Errorf("infer wrote %v (%v), want 3 x 10 logits", y, err)
	}
	if err := tensor.WriteNPY(in, tensor.New(1, 1, 9, 9)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = invoke(context.Background(), "infer", "--model", model, "--input", in, "--output", out)
	if code == exitOK || !strings.Contains(stderr, "N x 1 x 8 x 8") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("infer on 9x9 images: exit %d, stderr %q", code, stderr)
	}
}

// TestExportFloat: the export command writes the float model, which infer
// runs to the checkpoint's own logits (BatchNorm folded: within float
// rounding), and an export of the embedded model evaluates on the
// embedded test set without flags.
func TestExportFloat(t *testing.T) {
	f := newFixture(t)
	model, in := filepath.Join(f.dir, "float.onnx"), filepath.Join(f.dir, "x.npy")
	code, stdout, stderr := invoke(context.Background(), "export", "--model", "resnet20", "--checkpoint", f.grey, "--output", model)
	if code != exitOK || !strings.Contains(stdout, "Exported the float resnet20 (BatchNorm folded) to "+model+" (ONNX opset 13") {
		t.Fatalf("exit code %d: %s\n%s", code, stdout, stderr)
	}
	if err := tensor.WriteNPY(in, tensor.NewRNG(4).Randn(5, 1, 28, 28)); err != nil {
		t.Fatal(err)
	}
	logits := func(args ...string) *tensor.Tensor {
		out := filepath.Join(f.dir, "y.npy")
		if code, _, stderr := invoke(context.Background(), append([]string{"infer", "--input", in, "--output", out}, args...)...); code != exitOK {
			t.Fatalf("infer %v: exit code %d: %s", args, code, stderr)
		}
		y, err := tensor.ReadNPY(out)
		if err != nil {
			t.Fatal(err)
		}
		return y
	}
	got, want := logits("--model", model), logits("--model", "resnet20", "--checkpoint", f.grey)
	var scale, worst float64
	for i, w := range want.Data {
		scale = math.Max(scale, math.Abs(float64(w)))
		worst = math.Max(worst, math.Abs(float64(got.Data[i]-w)))
	}
	if !slices.Equal(got.Shape, want.Shape) || !(worst <= 1e-5*scale) {
		t.Errorf("the export's logits %v differ from the checkpoint's %v by %.3g (scale %.3g)", got.Shape, want.Shape, worst, scale)
	}

	embedded := filepath.Join(f.dir, "embedded.onnx")
	if code, _, stderr := invoke(context.Background(), "export", "--output", embedded); code != exitOK {
		t.Fatalf("export of the embedded model: exit code %d: %s", code, stderr)
	}
	code, stdout, stderr = invoke(context.Background(), "eval", "--model", embedded, "--eval_images", "64")
	if code != exitOK || !strings.Contains(stdout, "Data: the embedded Fashion-MNIST test set") || !strings.Contains(stdout, "Accuracy: ") {
		t.Errorf("eval of the embedded export: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestONNXRefusals: each bad use of --export, export, and ONNX models
// gets one line and exit code 2 before any work.
func TestONNXRefusals(t *testing.T) {
	f := newFixture(t)
	good := filepath.Join(f.dir, "good.onnx")
	if code, _, stderr := invoke(context.Background(), "export", "--model", "resnet20", "--checkpoint", f.grey, "--output", good); code != exitOK {
		t.Fatalf("export: %s", stderr)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated, foreign, unsupported := filepath.Join(f.dir, "cut.onnx"), filepath.Join(f.dir, "notes.onnx"), filepath.Join(f.dir, "bn.onnx")
	m, err := onnx.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Graph.Nodes {
		if m.Graph.Nodes[i].OpType == "Relu" {
			m.Graph.Nodes[i].OpType = "BatchNormalization"
			break
		}
	}
	for path, b := range map[string][]byte{truncated: data[:len(data)*2/3], foreign: []byte("not a model\n"), unsupported: m.Marshal()} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nowhere := filepath.Join(f.dir, "no", "such", "folder", "m.onnx")
	rgb := []string{"--model", "resnet20", "--checkpoint", f.rgb}
	infer := func(model string) []string {
		return []string{"infer", "--model", model, "--input", filepath.Join(f.dir, "x.npy"), "--output", filepath.Join(f.dir, "y.npy")}
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"export from generate", []string{"generate", "--output", "x.npy", "--export", "m.onnx"}, []string{"--export belongs to the full run and quantize"}},
		{"export from infer", append(infer(good), "--export", "m.onnx"), []string{"--export belongs to the full run and quantize"}},
		{"export with compare", []string{"--compare", "--export", "m.onnx"}, []string{"--compare makes three"}},
		{"export without output", []string{"export"}, []string{"--output FILE.onnx is required"}},
		{"unwritable export", append(slices.Clone(rgb), "--data_path", f.imagenetPath, "--export", nowhere), []string{"--export " + nowhere, "cannot write to", "no such file"}},
		{"export to a folder", append(slices.Clone(rgb), "--data_path", f.imagenetPath, "--export", f.dir), []string{"is a folder"}},
		{"unwritable float export", []string{"export", "--output", nowhere}, []string{"--output " + nowhere, "cannot write to"}},
		{"onnx for quantize", []string{"quantize", "--model", good, "--calib", "c.npy"}, []string{"an ONNX file can be run by infer and eval"}},
		{"onnx with checkpoint", []string{"eval", "--model", good, "--checkpoint", f.grey}, []string{"drop --checkpoint"}},
		{"truncated", infer(truncated), []string{"--model " + truncated, "not an ONNX model", "truncated"}},
		{"foreign", []string{"eval", "--model", foreign, "--data_path", f.imagenetPath}, []string{"--model " + foreign, "not an ONNX model"}},
		{"unsupported operator", infer(unsupported), []string{"operator BatchNormalization", "is not supported"}},
		{"missing file", infer(filepath.Join(f.dir, "absent.onnx")), []string{"absent.onnx", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { expectRefusal(t, tc.args, tc.want) })
	}
}

// TestExportNotWrittenWhenInterrupted: a quantization stopped half-way
// leaves no model file behind, only the resumable state.
func TestExportNotWrittenWhenInterrupted(t *testing.T) {
	f := newFixture(t)
	model := filepath.Join(f.dir, "m.onnx")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath,
		"--export", model, "--state_dir", filepath.Join(f.dir, "state")}, quick...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &cancelOn{marker: "AdaRound 1/", cancel: cancel}
	var stdout bytes.Buffer
	if code := run(ctx, args, &stdout, stderr); code != exitInterrupted {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".onnx") {
			t.Errorf("interrupted run left %s", e.Name())
		}
	}
	if strings.Contains(stdout.String(), "Exported") {
		t.Errorf("interrupted run says it exported:\n%s", stdout.String())
	}
}
