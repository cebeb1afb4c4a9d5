package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload/torchtest"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

// writeCheckpoint saves m's state dict the way torch.save does since
// torch 1.6 (torchtest.Zip).
func writeCheckpoint(t *testing.T, path string, m *zoo.Model) {
	t.Helper()
	writeStateDict(t, path, layers.StateDict(m.Net))
}

// writeStateDict writes the given named tensors as writeCheckpoint does,
// so tests can also make checkpoints with renamed or mis-shaped keys.
func writeStateDict(t *testing.T, path string, entries []layers.NamedTensor) {
	t.Helper()
	tensors := make([]torchtest.Tensor, len(entries))
	for i, e := range entries {
		tensors[i] = torchtest.Tensor{Name: e.Name, Shape: e.Tensor.Shape, Data: e.Tensor.Data}
	}
	data, err := torchtest.Zip(tensors)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWriteCheckpointLoads checks the test writer against the real
// loader: the model built from the file computes what the original does.
func TestWriteCheckpointLoads(t *testing.T) {
	m := zootest.RandomModel(t, "resnet20", 3, 4, 1)
	path := t.TempDir() + "/tiny.pth"
	writeCheckpoint(t, path, m)
	got, err := zoo.Load("resnet20", path)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.NewRNG(2).Randn(2, 3, 8, 8)
	want, have := m.Logits(x), got.Logits(x)
	for i := range want.Data {
		if want.Data[i] != have.Data[i] {
			t.Fatalf("logit %d: loaded model %g, original %g", i, have.Data[i], want.Data[i])
		}
	}
}

// TestInferBadCheckpoints checks that every kind of bad checkpoint of
// issue 4 gets one clear error line from dghcore infer and a non-zero
// exit, naming what is wrong.
func TestInferBadCheckpoints(t *testing.T) {
	f := newFixture(t)
	good, err := os.ReadFile(f.grey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("truncated.pth", good[:len(good)/2])
	notCheckpoint := write("notes.pth", []byte("these are not weights\n"))

	entries := layers.StateDict(f.greyM.Net)
	renamed := slices.Clone(entries)
	misshaped := slices.Clone(entries)
	for i, e := range entries {
		switch e.Name {
		case "layer2.0.conv1.weight":
			renamed[i].Name = "layer2.0.conv_1.weight"
		case "layer3.1.conv2.weight":
			misshaped[i].Tensor = tensor.New(64, 64, 3, 1)
		}
	}
	renamedPath := filepath.Join(f.dir, "renamed.pth")
	writeStateDict(t, renamedPath, renamed)
	misshapedPath := filepath.Join(f.dir, "misshaped.pth")
	writeStateDict(t, misshapedPath, misshaped)
	var blockless []layers.NamedTensor // layer3.2 removed
	for _, e := range entries {
		if !strings.HasPrefix(e.Name, "layer3.2.") {
			blockless = append(blockless, e)
		}
	}
	blocklessPath := filepath.Join(f.dir, "blockless.pth")
	writeStateDict(t, blocklessPath, blockless)

	in := filepath.Join(f.dir, "x.npy")
	if err := tensor.WriteNPY(in, tensor.New(1, 1, 28, 28)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, model, checkpoint string
		want                    []string
	}{
		{"truncated", "resnet20", truncated, []string{"truncated.pth", "truncated"}},
		{"another architecture", "resnet18", f.grey, []string{"holds a resnet20, not a resnet18", "give --model resnet20"}},
		{"renamed key", "resnet20", renamedPath, []string{`missing key "layer2.0.conv1.weight"`, "1 unexpected"}},
		{"wrong shape", "resnet20", misshapedPath, []string{"layer3.1.conv2.weight", "[64 64 3 1]", "[64 64 3 3]"}},
		{"not a checkpoint", "resnet20", notCheckpoint, []string{"notes.pth", "not a PyTorch checkpoint"}},
		// Without --model the architecture is recognised, or the closest
		// one named with the first key that does not fit it.
		{"truncated, no model", "", truncated, []string{"truncated.pth", "truncated"}},
		{"a block removed, no model", "", blocklessPath,
			[]string{"blockless.pth", "no known architecture", "closest is resnet20 (torchvision layout)", `has no key "layer3.2.conv1.weight"`}},
		{"renamed key, no model", "", renamedPath, []string{"closest is resnet20", `has no key "layer2.0.conv1.weight"`, "1 more key"}},
		{"not a checkpoint, no model", "", notCheckpoint, []string{"notes.pth", "not a PyTorch checkpoint"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"infer", "--checkpoint", tc.checkpoint, "--input", in, "--output", filepath.Join(f.dir, "y.npy")}
			if tc.model != "" {
				args = append(args, "--model", tc.model)
			}
			code, stdout, stderr := invoke(context.Background(), args...)
			if code == exitOK {
				t.Fatalf("exit 0 for a bad checkpoint; stdout %q", stdout)
			}
			if !strings.HasPrefix(stderr, "dghcore: ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one dghcore: line: %q", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
		})
	}
}
