package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

// newArchitectures are the architectures of issue 18, each in the layout
// its published checkpoint uses (mobilenet_v2's torchvision layout; its
// BRECQ layout runs in the tests above).
var newArchitectures = []struct {
	name   string
	layout zoo.Layout
}{
	{"resnet34", zoo.LayoutTorchvision},
	{"resnet101", zoo.LayoutTorchvision},
	{"resnet152", zoo.LayoutTorchvision},
	{"wide_resnet50_2", zoo.LayoutTorchvision},
	{"resnext50_32x4d", zoo.LayoutTorchvision},
	{"mobilenet_v2", zoo.LayoutTorchvision},
	{"regnetx_600m", zoo.LayoutBRECQ},
	{"regnetx_3200m", zoo.LayoutBRECQ},
	{"mnasnet", zoo.LayoutTorchvision},
}

// TestEveryArchitectureEndToEnd runs the whole pipeline (generation,
// both quantization phases, the three evaluations) on a random instance
// of each new architecture at a sixteenth of its widths, for the dataset
// package's 3-class folder (64-pixel calibration images), without
// --model: the architecture is
// recognised from the checkpoint. Then infer runs the same checkpoint and
// must give the logits of the model the checkpoint was written from.
func TestEveryArchitectureEndToEnd(t *testing.T) {
	imagenet := filepath.Join("..", "..", "dataset", "testdata", "imagenet")
	for i, arch := range newArchitectures {
		t.Run(arch.name, func(t *testing.T) {
			dir := t.TempDir()
			m := zootest.RandomNarrow(t, arch.name, arch.layout, 3, 3, 16, uint64(100+i))
			ckpt := filepath.Join(dir, arch.name+".pth")
			writeCheckpoint(t, ckpt, m)

			args := append([]string{"--checkpoint", ckpt, "--data_path", imagenet, "--state_dir", filepath.Join(dir, "state")}, quick...)
			// The output loss needs the last stage at least 2x2: stride 32.
			args = append(args, "--img_size", "64", "--eval_images", "2")
			code, stdout, stderr := invoke(context.Background(), args...)
			if code != exitOK {
				t.Fatalf("exit code %d: %s", code, stderr)
			}
			t.Log(stdout)
			for _, w := range []string{
				"Recognised " + arch.name + " (" + string(arch.layout) + " layout) from the checkpoint's keys and shapes\n",
				"Model: " + arch.name, "Float accuracy: ", "----> Weight only quantization: ", "----> Full quantization (weights + activations): ",
				fmt.Sprintf("rounding weight %g\n", m.Spec.RoundingWeight),
			} {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not say %q:\n%s", w, stdout)
				}
			}

			in, out := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy")
			x := tensor.NewRNG(uint64(200+i)).Randn(2, 3, 32, 32)
			if err := tensor.WriteNPY(in, x); err != nil {
				t.Fatal(err)
			}
			code, _, stderr = invoke(context.Background(), "infer", "--model", arch.name, "--checkpoint", ckpt,
				"--input", in, "--output", out, "--img_size", "32")
			if code != exitOK {
				t.Fatalf("infer: exit code %d: %s", code, stderr)
			}
			got, err := tensor.ReadNPY(out)
			if err != nil {
				t.Fatal(err)
			}
			want := m.Logits(x)
			if !slices.Equal(got.Shape, want.Shape) {
				t.Fatalf("infer: logits %v, want %v", got.Shape, want.Shape)
			}
			for j := range want.Data {
				if d := math.Abs(float64(got.Data[j] - want.Data[j])); !(d <= 1e-5*math.Max(1, math.Abs(float64(want.Data[j])))) {
					t.Fatalf("infer: logit %d is %g, the model's %g", j, got.Data[j], want.Data[j])
				}
			}
		})
	}
}
