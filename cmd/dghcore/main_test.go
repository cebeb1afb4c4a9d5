package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

// invoke runs the program in-process and returns its exit code, stdout
// and stderr.
func invoke(ctx context.Context, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// fixture is a folder with tiny random resnet20 checkpoints: one for
// 1-channel 10-class inputs and one for the 3-class RGB test folder of the
// dataset package.
type fixture struct {
	dir          string
	grey, rgb    string
	greyM, rgbM  *zoo.Model
	imagenetPath string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), imagenetPath: filepath.Join("..", "..", "dataset", "testdata", "imagenet")}
	f.grey, f.rgb = filepath.Join(f.dir, "grey.pth"), filepath.Join(f.dir, "rgb.pth")
	f.greyM, f.rgbM = zootest.RandomModel(t, "resnet20", 1, 10, 1), zootest.RandomModel(t, "resnet20", 3, 3, 2)
	writeCheckpoint(t, f.grey, f.greyM)
	writeCheckpoint(t, f.rgb, f.rgbM)
	return f
}

// quick are flags that make any run take well under a second of work.
var quick = []string{
	"--n_images", "4", "--distill_batch_size", "2", "--distill_num_iter", "2", "--img_size", "8",
	"--num_iterations", "2", "--iters_a", "2", "--batch_size_for_calibration", "2", "--batch_size", "4",
}

// TestRefusals checks that every bad input of docs/DESIGN.md, "Command line" gets one
// clear line on stderr and a non-zero exit before any long work starts.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	t.Setenv("DGHCORE_MODELS", f.dir)
	notCheckpoint := filepath.Join(f.dir, "notes.txt")
	emptyDir := filepath.Join(f.dir, "empty")
	for _, p := range []string{emptyDir} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(notCheckpoint, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	grey := []string{"--model", "resnet20", "--checkpoint", f.grey}
	rgb := []string{"--model", "resnet20", "--checkpoint", f.rgb}
	cases := []struct {
		name string
		args []string
		want []string // substrings of the error line
	}{
		{"unknown model", []string{"--model", "vgg16"}, []string{`unknown model "vgg16"`, "mobilenet_v2, resnet18, resnet20, resnet50"}},
		{"unknown model single dash", []string{"-model", "vgg16"}, []string{`unknown model "vgg16"`}},
		{"weight bits high", []string{"--weights_n_bits", "9"}, []string{"--weights_n_bits 9", "2..8"}},
		{"activation bits low", []string{"-activation-n-bits", "1"}, []string{"--activation_n_bits 1", "2..8"}},
		{"no images", []string{"--n_images", "0"}, []string{"--n_images 0"}},
		{"missing checkpoint", []string{"--model", "resnet18"},
			[]string{"resnet18_imagenet.pth.tar not found", "https://github.com/yhhhli/BRECQ/releases/download/v1.0/resnet18_imagenet.pth.tar"}},
		{"checkpoint file absent", []string{"--model", "resnet18", "--checkpoint", filepath.Join(f.dir, "nope.pth")},
			[]string{"nope.pth", "no such file"}},
		{"checkpoint of another model", []string{"--model", "resnet18", "--checkpoint", f.grey},
			[]string{"is not a resnet18 checkpoint", "missing key"}},
		{"not a checkpoint", []string{"--model", "resnet20", "--checkpoint", notCheckpoint},
			[]string{"is not a resnet20 checkpoint", "not a PyTorch checkpoint"}},
		{"checkpoint without model", []string{"--checkpoint", f.grey}, []string{"--model"}},
		{"data folder missing", append(slices.Clone(rgb), "--data_path", filepath.Join(f.dir, "nowhere")),
			[]string{"--data_path", "nowhere", "no such file"}},
		{"data folder empty", append(slices.Clone(rgb), "--data_path", emptyDir), []string{"--data_path", "empty"}},
		{"data path not given", rgb, []string{"--data_path is required"}},
		{"data channels", append(slices.Clone(grey), "--data_path", f.imagenetPath), []string{"ImageNet-style folder of 3-channel images for a 1-channel model"}},
		{"mean not a number", []string{"--mean", "0.1,x"}, []string{"--mean", `"x" is not a number`}},
		{"mean count", []string{"--mean", "0.1,0.2"}, []string{"2 means and 1 stds", "1 input channels"}},
		{"std zero", []string{"--std", "0"}, []string{"--std", "positive"}},
		{"calibration type", []string{"--calib_data_type", "gan"}, []string{`unknown --calib_data_type "gan"`, "dgh, random_noise, real_data"}},
		{"memory", []string{"--max_memory", "1MB"}, []string{"exceeds --max_memory"}},
		{"memory syntax", []string{"--max_memory", "lots"}, []string{"--max_memory", `"lots" is not a size`}},
		{"resume without state", []string{"--resume", "--state_dir", filepath.Join(f.dir, "state")}, []string{"--resume: no saved state"}},
		{"unknown flag", []string{"--frobnicate"}, []string{"unknown flag: --frobnicate"}},
		{"stray argument", []string{"quantise"}, []string{`unexpected argument "quantise"`}},
		{"generate without output", []string{"generate"}, []string{"nothing to write"}},
		{"quantize without images", []string{"quantize"}, []string{"--calib images.npy is required"}},
		{"infer without input", []string{"infer", "--output", "y.npy"}, []string{"--input X.npy and --output Y.npy are required"}},
		{"infer input missing", []string{"infer", "--input", filepath.Join(f.dir, "x.npy"), "--output", filepath.Join(f.dir, "y.npy")},
			[]string{"--input", "x.npy"}},
		{"real data beyond the set", append(slices.Clone(rgb), "--data_path", f.imagenetPath, "--calib_data_type", "real_data", "--n_images", "6"),
			[]string{"--n_images 6", "has 5"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := invoke(context.Background(), tc.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr %q", code, exitUsage, stderr)
			}
			if !strings.HasPrefix(stderr, "dghcore: ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one dghcore: line: %q", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
			if strings.Contains(stdout, "accuracy") {
				t.Errorf("refused input started work: %q", stdout)
			}
		})
	}
}

// TestFlagSpellings checks the reference's command lines: single-dash long
// flags, --model_name/-m/--model as one flag, '-' and '_' alike.
func TestFlagSpellings(t *testing.T) {
	cases := []struct {
		args   []string
		model  string
		weight float64
		bits   int
	}{
		{[]string{"-model", "mobilenet_v2", "-weight", "0.1"}, "mobilenet_v2", 0.1, 4},
		{[]string{"--model_name", "resnet18", "--weights-n-bits", "3"}, "resnet18", 0.01, 3},
		{[]string{"-m", "resnet50", "-weights_n_bits=2"}, "resnet50", 0.01, 2},
		{[]string{"--model-name=resnet20", "--weight=-0.5"}, "resnet20", -0.5, 4},
		{[]string{"-model_name", "resnet18", "-weight", "-0.5"}, "resnet18", -0.5, 4},
	}
	for _, tc := range cases {
		o, err := parseOptions(cmdRun, tc.args)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if o.model != tc.model || o.roundWeight != tc.weight || o.weightsBits != tc.bits {
			t.Errorf("%v: model %q weight %g bits %d, want %q %g %d", tc.args, o.model, o.roundWeight, o.weightsBits, tc.model, tc.weight, tc.bits)
		}
	}
}

// TestQuickPreset checks that the preset fills only what the command line
// leaves open, and only for the embedded model.
func TestQuickPreset(t *testing.T) {
	o, err := parseOptions(cmdRun, []string{"--n_images", "7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range quickPreset {
		want := p.value
		if p.flag == "n_images" {
			want = "7"
		}
		if got := o.fs.Lookup(p.flag).Value.String(); got != want {
			t.Errorf("embedded model: --%s %s, want %s", p.flag, got, want)
		}
	}
	o, err = parseOptions(cmdRun, []string{"--model", "resnet18"})
	if err != nil {
		t.Fatal(err)
	}
	if o.nImages != 1024 || o.distillIters != 1000 || o.numIterations != 20000 || o.itersA != 5000 || o.evalImages != 0 {
		t.Errorf("resnet18: n_images %d distill_num_iter %d num_iterations %d iters_a %d eval_images %d, want the paper's 1024, 1000, 20000, 5000 and all",
			o.nImages, o.distillIters, o.numIterations, o.itersA, o.evalImages)
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := invoke(context.Background(), "--help")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	for _, w := range []string{"dghcore generate", "--model_name", "--distill_num_iter", "--weights_n_bits", "--data_path"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("--help does not mention %s", w)
		}
	}
}

// TestInferMatchesPyTorch runs infer on the zoo's PyTorch fixture (a
// resnet20 for Fashion-MNIST and the logits torch computed for its
// inputs), in batches that do not divide the input.
func TestInferMatchesPyTorch(t *testing.T) {
	dir := t.TempDir()
	zooData := filepath.Join("..", "..", "layers", "zoo", "testdata")
	ckpt, in, out := filepath.Join(dir, "r20.pth"), filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy")
	gunzip(t, filepath.Join(zooData, "resnet20_fmnist.zip.pth.gz"), ckpt)
	gunzip(t, filepath.Join(zooData, "resnet20_fmnist_x.npy.gz"), in)
	code, stdout, stderr := invoke(context.Background(), "infer", "--model", "resnet20", "--checkpoint", ckpt,
		"--input", in, "--output", out, "--batch_size", "3")
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "logits to "+out) {
		t.Errorf("stdout %q does not name the output", stdout)
	}
	got, err := tensor.ReadNPY(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tensor.ReadNPY(filepath.Join(zooData, "resnet20_fmnist_logits.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("logits shape %v, PyTorch %v", got.Shape, want.Shape)
	}
	for i := range want.Data {
		if d := math.Abs(float64(got.Data[i] - want.Data[i])); d > 1e-3*math.Max(1, math.Abs(float64(want.Data[i]))) {
			t.Fatalf("logit %d: %g, PyTorch %g", i, got.Data[i], want.Data[i])
		}
	}
}

// TestInferBadInput checks the shape check on the input batch.
func TestInferBadInput(t *testing.T) {
	f := newFixture(t)
	in := filepath.Join(f.dir, "x.npy")
	if err := tensor.WriteNPY(in, tensor.New(2, 3, 8, 8)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := invoke(context.Background(), "infer", "--model", "resnet20", "--checkpoint", f.grey,
		"--input", in, "--output", filepath.Join(f.dir, "y.npy"))
	if code != exitUsage || !strings.Contains(stderr, "shape [2 3 8 8], want N x 1 x H x W") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestGenerateFiles checks generate's .npy (shape, valid pixel range) and
// PNGs (one per image holding the de-normalised pixels, plus the sheet).
func TestGenerateFiles(t *testing.T) {
	f := newFixture(t)
	npy, pngDir := filepath.Join(f.dir, "images.npy"), filepath.Join(f.dir, "png")
	args := append([]string{"generate", "--model", "resnet20", "--checkpoint", f.grey, "--output", npy, "--png", pngDir,
		"--state_dir", filepath.Join(f.dir, "state")}, quick...)
	args = append(args, "--n_images", "5")
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	t.Log(stdout)
	imgs, err := tensor.ReadNPY(npy)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{5, 1, 8, 8}; !slices.Equal(imgs.Shape, want) {
		t.Fatalf("images %v, want %v", imgs.Shape, want)
	}
	mean, std := f.greyM.Spec.Mean[0], f.greyM.Spec.Std[0]
	lo, hi := dgh.ValidRange([]float32{mean}, []float32{std})
	for i, v := range imgs.Data {
		if v < lo[0] || v > hi[0] {
			t.Fatalf("pixel %d = %g outside the valid range [%g, %g]", i, v, lo[0], hi[0])
		}
	}
	for i := range 5 {
		img := decodePNG(t, filepath.Join(pngDir, fmt.Sprintf("image_%04d.png", i)))
		if b := img.Bounds(); b.Dx() != 8 || b.Dy() != 8 {
			t.Fatalf("image %d is %v", i, b)
		}
		for y := range 8 {
			for x := range 8 {
				v := imgs.Data[i*64+y*8+x]
				want := math.Round(math.Min(math.Max(255*(float64(v)*float64(std)+float64(mean)), 0), 255))
				r, _, _, _ := img.At(x, y).RGBA()
				if got := float64(r >> 8); got != want {
					t.Fatalf("image %d pixel (%d,%d): %g, want %g", i, x, y, got, want)
				}
			}
		}
	}
	sheet := decodePNG(t, filepath.Join(pngDir, contactSheetName))
	if b := sheet.Bounds(); b.Dx() != 3*10-2 || b.Dy() != 2*10-2 {
		t.Errorf("contact sheet %v, want a 3 x 2 grid of 8-pixel images 2 apart", b)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "state")); !os.IsNotExist(err) {
		t.Errorf("state folder left after a finished run: %v", err)
	}
}

// TestEndToEnd runs the whole pipeline on the dataset package's tiny
// ImageNet-style folder with a random 3-class model, and checks the
// result lines and the JSON report.
func TestEndToEnd(t *testing.T) {
	f := newFixture(t)
	report := filepath.Join(f.dir, "report.json")
	args := append([]string{"-model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath,
		"--json", report, "--state_dir", filepath.Join(f.dir, "state")}, quick...)
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	for _, w := range []string{"Kernels: ", "Float accuracy: ", "----> Weight only quantization: ", "----> Full quantization (weights + activations): "} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout does not say %q:\n%s", w, stdout)
		}
	}
	for _, w := range []string{"generation: iter 2/2", "AdaRound 1/", "LSQ 1/", "evaluating float model"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("progress does not show %q:\n%s", w, stderr)
		}
	}
	var r map[string]any
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"float_top1", "weight_only_top1", "full_quant_top1", "float_top5", "weight_only_top5", "full_quant_top5"} {
		v, ok := r[k].(float64)
		if !ok || v < 0 || v > 100 {
			t.Errorf("%s = %v, want a percentage", k, r[k])
		}
	}
	// Five images in three classes: top-5 of three classes is everything.
	if r["float_top5"] != 100.0 {
		t.Errorf("float_top5 %v with 3 classes, want 100", r["float_top5"])
	}
	if r["model"] != "resnet20" || r["calib_data_type"] != "dgh" || r["n_images"] != 4.0 || r["weights_n_bits"] != 4.0 {
		t.Errorf("report %v", r)
	}
	secs, _ := r["seconds"].(map[string]any)
	for _, k := range []string{"generation", "quantization", "evaluation"} {
		if v, ok := secs[k].(float64); !ok || v <= 0 {
			t.Errorf("seconds.%s = %v", k, secs[k])
		}
	}
	if r["kernels"] == "" {
		t.Errorf("no kernel path in the report")
	}
}

// TestWeightsOnlyReport checks that without activation quantization the
// full-quantization figures are null and no such line is printed.
func TestWeightsOnlyReport(t *testing.T) {
	f := newFixture(t)
	report := filepath.Join(f.dir, "report.json")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath,
		"--json", report, "--act_quant=false", "--calib_data_type", "random_noise", "--state_dir", filepath.Join(f.dir, "state")}, quick...)
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "Full quantization") {
		t.Errorf("weights-only run printed a full-quantization line:\n%s", stdout)
	}
	var r map[string]any
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if v, ok := r["full_quant_top1"]; !ok || v != nil {
		t.Errorf("full_quant_top1 = %v (present %t), want null", v, ok)
	}
	if r["calib_data_type"] != "random_noise" {
		t.Errorf("calib_data_type %v", r["calib_data_type"])
	}
}

// TestCompare checks the side-by-side table of the three calibration
// sources (weights only, to keep it quick).
func TestCompare(t *testing.T) {
	f := newFixture(t)
	report := filepath.Join(f.dir, "report.json")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath,
		"--compare", "--act_quant=false", "--json", report, "--state_dir", filepath.Join(f.dir, "state")}, quick...)
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	_, table, ok := strings.Cut(stdout, "\ncalibration ")
	if !ok {
		t.Fatalf("no table in:\n%s", stdout)
	}
	for _, k := range []string{"random_noise", "dgh", "real_data"} {
		if !strings.Contains(table, "\n"+k+" ") {
			t.Errorf("table has no %s row:\n%s", k, table)
		}
	}
	var rs []map[string]any
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rs); err != nil || len(rs) != 3 {
		t.Fatalf("report: %v, %d entries", err, len(rs))
	}
}

// cancelOn is a stderr that cancels the run when a progress line
// containing a marker goes by: an interrupt at a known place.
type cancelOn struct {
	bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.marker) {
		c.cancel()
	}
	return c.Buffer.Write(p)
}

// TestInterruptAndResume interrupts a run in the generation and then in
// the quantization, and finishes it with --resume from the saved state.
func TestInterruptAndResume(t *testing.T) {
	f := newFixture(t)
	state := filepath.Join(f.dir, "state")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath,
		"--state_dir", state}, quick...)
	args = append(args, "--distill_num_iter", "3", "--num_iterations", "3")
	for _, step := range []struct {
		marker, phase, file string
	}{
		{"generation: iter 1/3", "generation", dghStateFile},
		{"AdaRound 1/", "quantization", brecqStateFile},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		stderr := &cancelOn{marker: step.marker, cancel: cancel}
		var stdout bytes.Buffer
		code := run(ctx, args, &stdout, stderr)
		cancel()
		if code != exitInterrupted {
			t.Fatalf("interrupt at %q: exit code %d: %s", step.marker, code, stderr.String())
		}
		last := strings.TrimSpace(stderr.String()[strings.LastIndex(strings.TrimSpace(stderr.String()), "\n")+1:])
		if !strings.HasPrefix(last, "dghcore: "+step.phase+" interrupted") || !strings.Contains(last, "--resume") || !strings.Contains(last, state) {
			t.Errorf("last line %q does not say how to resume", last)
		}
		if _, err := os.Stat(filepath.Join(state, "dgh", step.file)); err != nil {
			t.Errorf("after the interrupt at %q: %v", step.marker, err)
		}
		args = append(args, "--resume")
	}
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("resumed run: exit code %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "resumed from") || !strings.Contains(stdout, "----> Full quantization") {
		t.Errorf("resumed run:\n%s", stdout)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state folder left after the finished run: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"16GiB", 16 << 30, true}, {"512MB", 512e6, true}, {"2e9", 2e9, true}, {"0", 0, true},
		{"1.5k", 1536, true}, {"10 mib", 10 << 20, true}, {"lots", 0, false}, {"-1GB", 0, false}, {"3PB", 0, false},
	}
	for _, tc := range cases {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok %t", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestOneLine(t *testing.T) {
	got := oneLine("load: 2 missing\n  missing key \"a\"\n  missing key \"b\"")
	want := `load: 2 missing; first: missing key "a" (and 1 more)`
	if got != want {
		t.Errorf("oneLine = %q, want %q", got, want)
	}
}

func gunzip(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeIDX writes an uncompressed MNIST-style test split of n random
// side x side images with labels 0..9 into dir.
func writeIDX(t *testing.T, dir string, n, side int) {
	t.Helper()
	rng := tensor.NewRNG(5)
	images := []byte{0, 0, 8, 3}
	for _, d := range []int{n, side, side} {
		images = append(images, byte(d>>24), byte(d>>16), byte(d>>8), byte(d))
	}
	labels := []byte{0, 0, 8, 1, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for i := range n {
		for range side * side {
			images = append(images, byte(rng.Intn(256)))
		}
		labels = append(labels, byte(i%10))
	}
	for name, b := range map[string][]byte{"t10k-images-idx3-ubyte": images, "t10k-labels-idx1-ubyte": labels} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQuantizeCommand quantizes with calibration images from a file and
// evaluates on a folder of IDX files.
func TestQuantizeCommand(t *testing.T) {
	f := newFixture(t)
	idx := filepath.Join(f.dir, "idx")
	if err := os.Mkdir(idx, 0o755); err != nil {
		t.Fatal(err)
	}
	writeIDX(t, idx, 6, 8)
	calib, report := filepath.Join(f.dir, "calib.npy"), filepath.Join(f.dir, "report.json")
	if err := tensor.WriteNPY(calib, tensor.NewRNG(6).Randn(4, 1, 8, 8)); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"quantize", "--model", "resnet20", "--checkpoint", f.grey, "--calib", calib,
		"--data_path", idx, "--json", report, "--state_dir", filepath.Join(f.dir, "state")}, quick...)
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "generation:") {
		t.Errorf("quantize generated images although --calib was given:\n%s", stderr)
	}
	if !strings.Contains(stdout, "6 images of 1x8x8") || !strings.Contains(stdout, "----> Full quantization") {
		t.Errorf("stdout:\n%s", stdout)
	}
	var r map[string]any
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r["calib_data_type"] != calib || r["n_images"] != 4.0 || r["seconds"].(map[string]any)["generation"] != 0.0 {
		t.Errorf("report %v", r)
	}
}

// TestReporter checks both progress styles: throttled log lines, and one
// line rewritten in place (blanking a longer predecessor) on a terminal.
func TestReporter(t *testing.T) {
	var log bytes.Buffer
	r := &reporter{w: &log, every: time.Hour}
	r.update(false, "step %d", 1)
	r.update(false, "step %d", 2) // within the hour: dropped
	r.update(true, "step %d", 3)  // final: always shown
	r.update(false, "next %d", 1) // a new phase starts at once
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], " step 1") || !strings.HasSuffix(lines[1], " step 3") || !strings.HasSuffix(lines[2], " next 1") {
		t.Errorf("log lines %q", lines)
	}
	var tty bytes.Buffer
	r = &reporter{w: &tty, terminal: true}
	r.update(false, "long line")
	r.last = time.Time{}
	r.update(true, "short")
	r.end()
	if want := "\rlong line\rshort    \n"; tty.String() != want {
		t.Errorf("terminal output %q, want %q", tty.String(), want)
	}
	tty.Reset()
	r = &reporter{w: &tty, terminal: true, columns: 6}
	r.update(true, "long line")
	if want := "\rlong \n"; tty.String() != want {
		t.Errorf("6-column terminal output %q, want %q", tty.String(), want)
	}
}
