package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/layers"
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
	withData := func(args ...string) []string {
		return append(append(slices.Clone(rgb), "--data_path", f.imagenetPath), args...)
	}
	// Spoilt checkpoints: one NaN weight, one negative running variance.
	spoilt := func(name, key string, v float32) string {
		entries := layers.StateDict(zootest.RandomModel(t, "resnet20", 3, 3, 2).Net)
		for _, e := range entries {
			if e.Name == key {
				e.Tensor.Data[1] = v
			}
		}
		p := filepath.Join(f.dir, name)
		writeStateDict(t, p, entries)
		return p
	}
	nanWeight := spoilt("nan.pth", "layer2.0.conv1.weight", float32(math.NaN()))
	negVar := spoilt("negvar.pth", "bn1.running_var", -1)
	// Images for --calib and infer that the model cannot mean.
	npyFile := func(name string, write func(path string) error) string {
		p := filepath.Join(f.dir, name)
		if err := write(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f64Images := npyFile("f64.npy", func(p string) error { return writeFloat64NPY(p, []int{2, 3, 8, 8}) })
	nanImages := npyFile("nan.npy", func(p string) error {
		x := tensor.New(2, 3, 8, 8)
		x.Data[70] = float32(math.NaN())
		return tensor.WriteNPY(p, x)
	})
	bigImages := npyFile("big.npy", func(p string) error { return tensor.WriteNPY(p, tensor.New(2, 3, 16, 16)) })
	idx8 := filepath.Join(f.dir, "idx8")
	if err := os.Mkdir(idx8, 0o755); err != nil {
		t.Fatal(err)
	}
	writeIDX(t, idx8, 12, 8)
	twoClasses := filepath.Join(f.dir, "two")
	for _, c := range []string{"a", "b"} {
		writeTestPNG(t, filepath.Join(twoClasses, c, "x.png"), 4)
	}
	notDir := filepath.Join(f.dir, "plainfile")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want []string // substrings of the error line
	}{
		{"unknown model", []string{"--model", "vgg16"}, []string{`unknown model "vgg16"`, "mnasnet, mobilenet_v2, regnetx_3200m, regnetx_600m, resnet101"}},
		{"unknown model single dash", []string{"-model", "vgg16"}, []string{`unknown model "vgg16"`}},
		{"weight bits high", []string{"--weights_n_bits", "9"}, []string{"--weights_n_bits 9", "2..8"}},
		{"activation bits low", []string{"-activation-n-bits", "1"}, []string{"--activation_n_bits 1", "2..8"}},
		{"no images", []string{"--n_images", "0"}, []string{"--n_images 0"}},
		{"missing checkpoint", []string{"--model", "resnet18"},
			[]string{"resnet18_imagenet.pth.tar not found", "https://github.com/yhhhli/BRECQ/releases/download/v1.0/resnet18_imagenet.pth.tar"}},
		{"checkpoint file absent", []string{"--model", "resnet18", "--checkpoint", filepath.Join(f.dir, "nope.pth")},
			[]string{"nope.pth", "no such file"}},
		{"checkpoint of another model", []string{"--model", "resnet18", "--checkpoint", f.grey},
			[]string{"holds a resnet20, not a resnet18"}},
		{"not a checkpoint", []string{"--model", "resnet20", "--checkpoint", notCheckpoint},
			[]string{"is not a resnet20 checkpoint", "not a PyTorch checkpoint"}},
		{"checkpoint of no known model", []string{"--checkpoint", notCheckpoint}, []string{"--checkpoint", "not a PyTorch checkpoint"}},
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

		// Out of range: refused, never clamped or turned into a default.
		{"p 0", []string{"--p", "0"}, []string{"--p 0: want a positive number"}},
		{"b_start 0", []string{"--b_start", "0"}, []string{"--b_start 0: want at least 1"}},
		{"b_end 0", []string{"--b_end", "0"}, []string{"--b_end 0: want at least 1"}},
		{"weight -1", []string{"--weight", "-1"}, []string{"--weight -1: want 0 or more"}},
		{"warmup -1", []string{"--warmup", "-1"}, []string{"--warmup -1: want 0 or more"}},
		{"warmup 1", []string{"--warmup", "1"}, []string{"--warmup 1: want a fraction below 1"}},
		{"lr 0", []string{"--lr", "0"}, []string{"--lr 0: want a positive number"}},
		{"distill_lr 0", []string{"--distill_lr", "0"}, []string{"--distill_lr 0: want a positive number"}},
		{"distill_std_factor -1", []string{"--distill_std_factor", "-1"}, []string{"--distill_std_factor -1: want 0 or more"}},
		{"output_loss_factor -1", []string{"--output_loss_factor", "-1"}, []string{"--output_loss_factor -1: want 0 or more"}},
		{"even smoothing", []string{"--distill_smoothing_filter_size", "2"}, []string{"--distill_smoothing_filter_size 2: want an odd size"}},
		{"sigma NaN", []string{"--distill_smoothing_filter_sigma", "NaN"}, []string{"want a finite number"}},
		{"save_every negative", []string{"--save_every", "-1s"}, []string{"--save_every -1s"}},
		{"img_size 0", []string{"--img_size", "0"}, []string{"--img_size 0"}},
		{"resume and fresh", []string{"--resume", "--fresh"}, []string{"--resume and --fresh"}},
		{"boolean with a space", []string{"--act_quant", "false"}, []string{`after --act_quant`, "--act_quant=false"}},
		{"boolean single dash", []string{"-act_quant", "false"}, []string{"--act_quant=false"}},

		// The model, its resolution and its data.
		{"NaN weight checkpoint", []string{"--model", "resnet20", "--checkpoint", nanWeight}, []string{"layer2.0.conv1.weight holds NaN at index 1"}},
		{"negative variance", []string{"--model", "resnet20", "--checkpoint", negVar}, []string{"bn1.running_var: running variance -1 at channel 1"}},
		{"img_size too small for DGH", withData("--img_size", "4"), []string{"--img_size 4", "layer3.2.bn2", "want at least 5"}},
		{"img_size for the embedded set", []string{"--img_size", "32"}, []string{"--img_size 32", "28x28"}},
		{"IDX of another size", append(slices.Clone(grey), "--data_path", idx8), []string{"IDX images of 8x8 for a model run at 28x28", "--img_size 8"}},
		{"IDX labels beyond the outputs", []string{"--model", "resnet20", "--checkpoint", spoiltClasses(t, f.dir), "--data_path", idx8, "--img_size", "8"},
			[]string{"label 4, but resnet20 has 4 outputs", "--check_class_count=false"}},
		{"class count", withDataPath(rgb, twoClasses), []string{"2 classes, but resnet20 has 3 outputs", "--check_class_count=false"}},
		{"calib float64", []string{"quantize", "--model", "resnet20", "--checkpoint", f.rgb, "--calib", f64Images, "--data_path", f.imagenetPath, "--img_size", "8"},
			[]string{"holds float64 values", "normalised float32 N x 3 x 8 x 8"}},
		{"calib NaN", []string{"quantize", "--model", "resnet20", "--checkpoint", f.rgb, "--calib", nanImages, "--data_path", f.imagenetPath, "--img_size", "8"},
			[]string{"image 0 holds NaN (value 70)"}},
		{"calib of another size", []string{"quantize", "--model", "resnet20", "--checkpoint", f.rgb, "--calib", bigImages, "--data_path", f.imagenetPath, "--img_size", "8"},
			[]string{"shape [2 3 16 16]", "give --img_size 16"}},
		{"infer float64", []string{"infer", "--model", "resnet20", "--checkpoint", f.rgb, "--input", f64Images, "--output", filepath.Join(f.dir, "y.npy"), "--img_size", "8"},
			[]string{"holds float64 values", "convert with x.astype(numpy.float32)"}},
		{"infer of another size", []string{"infer", "--model", "resnet20", "--checkpoint", f.rgb, "--input", bigImages, "--output", filepath.Join(f.dir, "y.npy")},
			[]string{"want normalised float32 N x 3 x 32 x 32", "give --img_size 16"}},
		{"state folder under a file", withData("--state_dir", filepath.Join(notDir, "state")), []string{"--state_dir", "cannot create it", "not a directory"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !slices.Contains(args, "--state_dir") {
				args = append(slices.Clone(args), "--state_dir", filepath.Join(f.dir, "state-"+strings.ReplaceAll(tc.name, " ", "_")))
			}
			expectRefusal(t, args, tc.want)
		})
	}
}

// expectRefusal runs args and checks a refusal: exit code 2 and one
// dghcore: line on stderr that says every want, before any work.
func expectRefusal(t *testing.T, args, want []string) {
	t.Helper()
	code, stdout, stderr := invoke(context.Background(), args...)
	t.Log(strings.TrimSpace(stderr))
	if code != exitUsage {
		t.Errorf("exit code %d, want %d; stderr %q", code, exitUsage, stderr)
	}
	if !strings.HasPrefix(stderr, "dghcore: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr is not one dghcore: line: %q", stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not say %q", stderr, w)
		}
	}
	if strings.Contains(stdout, "accuracy") || strings.Contains(stdout, "Exported") || strings.Contains(stderr, "evaluating") || strings.Contains(stderr, "generation:") {
		t.Errorf("refused input started work: %q, %q", stdout, stderr)
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
		seed   int64
	}{
		{[]string{"-model", "mobilenet_v2", "-weight", "0.1"}, "mobilenet_v2", 0.1, 4, 0},
		{[]string{"--model_name", "resnet18", "--weights-n-bits", "3"}, "resnet18", 0.01, 3, 0},
		{[]string{"-m", "resnet50", "-weights_n_bits=2"}, "resnet50", 0.01, 2, 0},
		{[]string{"--model-name=resnet20", "--random_seed=-5"}, "resnet20", 0.01, 4, -5},
		{[]string{"-model_name", "resnet18", "-random-seed", "-5"}, "resnet18", 0.01, 4, -5},
	}
	for _, tc := range cases {
		o, err := parseOptions(cmdRun, tc.args)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if o.model != tc.model || o.roundWeight != tc.weight || o.weightsBits != tc.bits || o.seed != tc.seed {
			t.Errorf("%v: model %q weight %g bits %d seed %d, want %q %g %d %d", tc.args, o.model, o.roundWeight, o.weightsBits, o.seed,
				tc.model, tc.weight, tc.bits, tc.seed)
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
	if code != exitUsage || !strings.Contains(stderr, "shape [2 3 8 8], want normalised float32 N x 1 x 28 x 28 images") {
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
	// Five 8-pixel images in a 3 x 2 grid, each enlarged 42 times (to
	// 336 pixels, the sheet 1010 wide) with 1-pixel grid lines.
	sheet := decodePNG(t, filepath.Join(pngDir, contactSheetName))
	if b := sheet.Bounds(); b.Dx() != 3*336+2 || b.Dy() != 2*336+1 {
		t.Fatalf("contact sheet %v, want 1010 x 673", b)
	}
	for _, px := range []struct{ i, x, y int }{{0, 0, 0}, {0, 7, 7}, {4, 3, 5}} {
		img := decodePNG(t, filepath.Join(pngDir, fmt.Sprintf("image_%04d.png", px.i)))
		want, _, _, _ := img.At(px.x, px.y).RGBA()
		x0, y0 := px.i%3*337, px.i/3*337
		for _, d := range [][2]int{{0, 0}, {41, 41}, {20, 3}} {
			if got, _, _, _ := sheet.At(x0+px.x*42+d[0], y0+px.y*42+d[1]).RGBA(); got != want {
				t.Errorf("sheet: image %d pixel (%d,%d) enlarged reads %d, the image %d", px.i, px.x, px.y, got>>8, want>>8)
			}
		}
	}
	if g, _, _, _ := sheet.At(336, 100).RGBA(); g>>8 != 128 {
		t.Errorf("grid line at x=336 is %d, want grey 128", g>>8)
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
	r := readReport(t, report)
	runs := r["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("%d runs in the report, want 1", len(runs))
	}
	run := runs[0].(map[string]any)
	acc := run["accuracy"].(map[string]any)
	for _, k := range []string{"float", "weight_only", "full"} {
		a, _ := acc[k].(map[string]any)
		for _, top := range []string{"top1", "top5"} {
			if v, ok := a[top].(float64); !ok || v < 0 || v > 100 {
				t.Errorf("accuracy.%s.%s = %v, want a percentage", k, top, a[top])
			}
		}
		// Five images in three classes: top-5 of three classes is everything.
		if a["top5"] != 100.0 || a["samples"] != 5.0 {
			t.Errorf("accuracy.%s = %v with 3 classes and 5 images, want top-5 100 over 5 samples", k, a)
		}
	}
	calib := run["calibration"].(map[string]any)
	if calib["type"] != "dgh" || calib["images"] != 4.0 || calib["image_size"] != 8.0 {
		t.Errorf("calibration %v", calib)
	}
	cfg := r["config"].(map[string]any)
	if cfg["model_name"] != "resnet20" || cfg["weights_n_bits"] != 4.0 || cfg["act_quant"] != true || cfg["img_size"] != 8.0 {
		t.Errorf("config %v", cfg)
	}
	model := r["model"].(map[string]any)
	if sum, _ := model["checkpoint_sha256"].(string); len(sum) != 64 || model["checkpoint"] != f.rgb {
		t.Errorf("model %v", model)
	}
	secs, _ := run["seconds"].(map[string]any)
	for _, k := range []string{"generation", "quantization", "evaluation"} {
		if v, ok := secs[k].(float64); !ok || v < 0 {
			t.Errorf("seconds.%s = %v", k, secs[k])
		}
	}
	if total, _ := r["seconds"].(map[string]any)["total"].(float64); !(total > 0) {
		t.Errorf("seconds.total = %v", r["seconds"])
	}
	if r["kernels"] == "" || !strings.HasPrefix(r["dghcore"].(string), "dghcore ") {
		t.Errorf("no kernel path or version in the report")
	}
	units := run["units"].([]any)
	if len(units) != 11 { // resnet20: stem, nine blocks, fc
		t.Fatalf("%d units, want 11", len(units))
	}
	for _, u := range units {
		u := u.(map[string]any)
		for _, ph := range []string{"weights", "activations"} {
			l, _ := u[ph].(map[string]any)
			if _, ok := l["loss_before"].(float64); !ok {
				t.Errorf("unit %v: no %s loss", u["unit"], ph)
			}
			if _, ok := l["loss_after"].(float64); !ok {
				t.Errorf("unit %v: no %s loss", u["unit"], ph)
			}
		}
		if m := u["modules"].([]any); len(m) == 0 || len(m[0].(map[string]any)["weight_scales"].([]any)) == 0 {
			t.Errorf("unit %v: no weight scales", u["unit"])
		}
		if len(u["activation_quantizers"].([]any)) == 0 {
			t.Errorf("unit %v: no activation scales", u["unit"])
		}
	}
}

// readReport decodes a JSON report.
func readReport(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
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
	run := readReport(t, report)["runs"].([]any)[0].(map[string]any)
	if v, ok := run["accuracy"].(map[string]any)["full"]; !ok || v != nil {
		t.Errorf("accuracy.full = %v (present %t), want null", v, ok)
	}
	if c := run["calibration"].(map[string]any); c["type"] != "random_noise" {
		t.Errorf("calibration %v", c)
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
	runs := readReport(t, report)["runs"].([]any)
	if len(runs) != 3 {
		t.Fatalf("report: %d runs, want 3", len(runs))
	}
	for i, k := range []string{"random_noise", "dgh", "real_data"} {
		if typ := runs[i].(map[string]any)["calibration"].(map[string]any)["type"]; typ != k {
			t.Errorf("run %d is %v, want %s", i, typ, k)
		}
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
		if !strings.HasPrefix(last, "dghcore: interrupted during "+step.phase) || !strings.Contains(last, "--resume") || !strings.Contains(last, state) ||
			strings.Contains(last, "context canceled") {
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
	if err := os.WriteFile(dst, zootest.Gunzip(t, src), 0o644); err != nil {
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

// idxDir writes writeIDX's test split into a folder of the fixture and
// returns the folder.
func (f *fixture) idxDir(t *testing.T, n, side int) string {
	t.Helper()
	dir := filepath.Join(f.dir, "idx")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeIDX(t, dir, n, side)
	return dir
}

// TestQuantizeCommand quantizes with calibration images from a file and
// evaluates on a folder of IDX files.
func TestQuantizeCommand(t *testing.T) {
	f := newFixture(t)
	idx := f.idxDir(t, 6, 8)
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
	r := readReport(t, report)
	run := r["runs"].([]any)[0].(map[string]any)
	c := run["calibration"].(map[string]any)
	sum, _ := c["file_sha256"].(string)
	if c["type"] != "file" || c["file"] != calib || len(sum) != 64 || c["images"] != 4.0 || run["seconds"].(map[string]any)["generation"] != 0.0 {
		t.Errorf("run %v", run)
	}
	if r["command"] != "quantize" {
		t.Errorf("command %v", r["command"])
	}
}

// TestReporter checks both progress styles: throttled log lines, and one
// line rewritten in place (blanking a longer predecessor) on a terminal,
// cut to the terminal's width.
func TestReporter(t *testing.T) {
	var log bytes.Buffer
	r := &reporter{w: &log, every: time.Hour, plan: newPlan()}
	r.step("a", 0.1, 0, false, "step %d", 1)
	r.step("a", 0.2, 0, false, "step %d", 2) // within the hour: dropped
	r.step("a", 1, 0, true, "step %d", 3)    // final: always shown
	r.step("b", 0.5, 0, false, "next %d", 1) // a new phase starts at once
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], " step 1  (time left after a few steps)") || !strings.Contains(lines[1], " step 3  done in 0s") ||
		!strings.Contains(lines[2], " next 1") {
		t.Errorf("log lines %q", lines)
	}
	for _, l := range lines {
		if !strings.Contains(l, "| run 0s") {
			t.Errorf("line %q does not show the run's time", l)
		}
	}
	var tty bytes.Buffer
	r = &reporter{w: &tty, terminal: true, columns: func() int { return 80 }, plan: newPlan()}
	r.print(false, "long line")
	r.last = time.Time{}
	r.print(true, "short")
	r.end()
	if want := "\rlong line\rshort    \n"; tty.String() != want {
		t.Errorf("terminal output %q, want %q", tty.String(), want)
	}
	tty.Reset()
	r = &reporter{w: &tty, terminal: true, columns: func() int { return 6 }, plan: newPlan()}
	r.print(true, "long line")
	if want := "\rlong \n"; tty.String() != want {
		t.Errorf("6-column terminal output %q, want %q", tty.String(), want)
	}
}

func TestCompact(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 42 * time.Second: "42s", 100 * time.Second: "1m40s", 65 * time.Second: "1m05s",
		2*time.Hour + 7*time.Minute + 40*time.Second: "2h08m", 50 * time.Hour: "50h00m",
	} {
		if got := compact(d); got != want {
			t.Errorf("compact(%v) = %q, want %q", d, got, want)
		}
	}
}

// withDataPath adds --data_path dir to a command line.
func withDataPath(args []string, dir string) []string {
	return append(slices.Clone(args), "--data_path", dir)
}

// spoiltClasses writes a grey resnet20 checkpoint with 4 classes, fewer
// than the labels of writeIDX's files.
func spoiltClasses(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "grey4.pth")
	writeCheckpoint(t, p, zootest.RandomModel(t, "resnet20", 1, 4, 3))
	return p
}

// writeTestPNG writes a side x side RGB PNG of noise, making its folder.
func writeTestPNG(t testing.TB, path string, side int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pngBytes(t, side, int64(len(path))), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pngBytes encodes a side x side RGB image of seeded noise.
func pngBytes(t testing.TB, side int, seed int64) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	rng := tensor.NewRNG(uint64(seed))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Intn(256))
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeFloat64NPY writes zeros of the given shape as a float64 .npy, the
// array numpy makes by default.
func writeFloat64NPY(path string, shape []int) error {
	dims := make([]string, len(shape))
	n := 1
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
		n *= d
	}
	header := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%s), }", strings.Join(dims, ", "))
	header += strings.Repeat(" ", 63-(10+len(header))%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	b.WriteByte(byte(len(header)))
	b.WriteByte(byte(len(header) >> 8))
	b.WriteString(header)
	b.Write(make([]byte, 8*n))
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// TestHelpWrapsAndVersion: every --help line fits the width it is
// wrapped to, a flag too long for the name column gets its text on the
// next line, the way to switch a boolean off is spelled out, and
// --version names the Go release and the platform.
func TestHelpWrapsAndVersion(t *testing.T) {
	o, err := parseOptions(cmdRun, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	printUsage(&b, o.fs, 80)
	text := b.String()
	for i, line := range strings.Split(text, "\n") {
		// A single word longer than the column (a URL) may stick out.
		if len(line) > 80 && strings.Contains(strings.TrimSpace(line[usageColumn:]), " ") {
			t.Errorf("line %d is %d wide: %q", i+1, len(line), line)
		}
	}
	for _, w := range []string{
		"      --disable_network_output_quantization\n" + strings.Repeat(" ", usageColumn) + "do not quantize",
		"--act_quant=false", "(default true)", "--skip_bad_images", "--fresh", "--save_every duration",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("--help does not say %q", w)
		}
	}
	code, stdout, _ := invoke(context.Background(), "--version")
	if code != exitOK || !strings.HasPrefix(stdout, "dghcore ") || !strings.Contains(stdout, runtime.Version()) || !strings.Contains(stdout, runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("--version: %d %q", code, stdout)
	}
}

// TestColumns: the width of a file that is not a terminal is unknown
// (0), so $COLUMNS decides, and without it 80.
func TestColumns(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if c := terminalColumns(f); c != 0 {
		t.Errorf("a plain file is %d columns wide", c)
	}
	t.Setenv("COLUMNS", "132")
	if c := outputColumns(f); c != 132 {
		t.Errorf("$COLUMNS 132: %d", c)
	}
	t.Setenv("COLUMNS", "wide")
	if c := outputColumns(f); c != 80 {
		t.Errorf("$COLUMNS wide: %d", c)
	}
}

// TestPlanRemaining checks the whole run's estimate: nothing before a
// phase has run long enough, then the measured rate carried to the
// phases left, a kind not measured yet priced by the prior ratio.
func TestPlanRemaining(t *testing.T) {
	p := newPlan()
	p.add("check", workDecode, 1000)
	p.add("train", workTraining, 300)
	p.add("eval", workInference, 100)
	t0 := time.Now()
	p.begin("check", t0)
	p.advance(0.5, t0.Add(time.Second))
	if _, ok := p.remaining(); ok {
		t.Error("an estimate after one second")
	}
	p.advance(1, t0.Add(4*time.Second))
	p.finish(t0.Add(4 * time.Second))
	// Decoding: 4 ms a unit, so a training or inference unit 20 ms.
	left, ok := p.remaining()
	if want := 400 * 20 * time.Millisecond; !ok || left.Round(time.Millisecond) != want {
		t.Errorf("after the check: %v, %t; want %v", left, ok, want)
	}
	p.begin("train", t0.Add(4*time.Second))
	p.advance(0.5, t0.Add(7*time.Second)) // 150 units in 3 s: 20 ms each
	left, _ = p.remaining()
	if want := (150 + 100) * 20 * time.Millisecond; left.Round(time.Millisecond) != want {
		t.Errorf("half through training: %v, want %v", left, want)
	}
	p.skip("eval")
	left, _ = p.remaining()
	if want := 150 * 20 * time.Millisecond; left.Round(time.Millisecond) != want {
		t.Errorf("with the evaluation saved: %v, want %v", left, want)
	}
}
