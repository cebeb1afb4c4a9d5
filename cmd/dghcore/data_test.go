package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/dataset/datasettest"
	"github.com/dghcore/dghcore/internal/memtest"
	"github.com/dghcore/dghcore/layers/torchload/torchtest"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

// bigFolder writes n small RGB images in three class folders; the file
// named bad, when not empty, is a truncated PNG.
func bigFolder(t *testing.T, dir string, n int, bad string) {
	t.Helper()
	good := pngBytes(t, 4, 1)
	for _, c := range []string{"a", "b", "c"} {
		if err := os.MkdirAll(filepath.Join(dir, c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		name := filepath.Join(dir, []string{"a", "b", "c"}[i%3], fmt.Sprintf("%05d.png", i))
		data := good
		if filepath.Base(name) == bad {
			data = good[:len(good)/2]
		}
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorruptImageRefusedBeforeWork: one truncated PNG among 10000 images
// is found by the decode of the whole folder, in seconds, before the
// float evaluation or anything after it; the refusal names it. With
// --skip_bad_images the run goes on without it and says so.
func TestCorruptImageRefusedBeforeWork(t *testing.T) {
	f := newFixture(t)
	data := filepath.Join(f.dir, "data")
	bigFolder(t, data, 10000, "07777.png")
	args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", data,
		"--state_dir", filepath.Join(f.dir, "state")}, quick...)
	start := time.Now()
	code, stdout, stderr := invoke(context.Background(), args...)
	took := time.Since(start)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr)
	}
	for _, w := range []string{"  b/07777.png: ", "not enough pixel data", "1 of 10000 images do not decode", "--skip_bad_images"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr)
		}
	}
	if strings.Contains(stdout, "accuracy") || strings.Contains(stderr, "evaluating") || strings.Contains(stderr, "generation:") {
		t.Errorf("work started before the refusal:\n%s\n%s", stdout, stderr)
	}
	if took > 5*time.Second {
		t.Errorf("the refusal took %v", took)
	}
	t.Logf("10000 images checked and refused in %v", took.Round(time.Millisecond))

	report := filepath.Join(f.dir, "report.json")
	args = append(args, "--skip_bad_images", "--calib_data_type", "random_noise", "--eval_images", "12", "--json", report)
	code, stdout, stderr = invoke(context.Background(), args...)
	if code != exitOK {
		t.Fatalf("--skip_bad_images: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "Data: skipping 1 image that does not decode") || !strings.Contains(stdout, "9999 images") {
		t.Errorf("stdout:\n%s", stdout)
	}
	if d := readReport(t, report)["data"].(map[string]any); d["skipped_bad_images"] != 1.0 || d["images"] != 9999.0 || d["evaluated"] != 12.0 {
		t.Errorf("data report %v", d)
	}
}

// TestDataFolderLinksAndCtrlC: a folder with links back to itself is
// listed once (each folder by device and inode), and a scan stopped by
// Ctrl-C ends as an interruption that saved nothing.
func TestDataFolderLinksAndCtrlC(t *testing.T) {
	f := newFixture(t)
	data := filepath.Join(f.dir, "data")
	bigFolder(t, data, 6, "")
	for _, l := range []string{"a/loop1", "a/loop2", "b/loop"} {
		if err := os.Symlink(".", filepath.Join(data, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../c", filepath.Join(data, "a", "to_c")); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"generate", "--model", "resnet20", "--checkpoint", f.rgb, "--data_path", data, "--calib_data_type", "real_data",
		"--output", filepath.Join(f.dir, "x.npy"), "--state_dir", filepath.Join(f.dir, "state"), "--json", filepath.Join(f.dir, "r.json")}, quick...)
	code, stdout, stderr := invoke(context.Background(), args...)
	if code != exitOK || !strings.Contains(stdout, "6 images of 3x8x8 in 3 classes") {
		t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
	}
	// Three links to "." and one into class c, each skipped.
	if d := readReport(t, filepath.Join(f.dir, "r.json"))["data"].(map[string]any); d["folders_reached_twice"] != 4.0 {
		t.Errorf("data report %v, want 4 folders reached twice", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, _, stderr = invoke(ctx, args...)
	if code != exitInterrupted || !strings.Contains(stderr, "interrupted during the scan of --data_path") || !strings.Contains(stderr, "nothing was saved") {
		t.Errorf("a cancelled scan: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "state")); !os.IsNotExist(err) {
		t.Errorf("a run that saved nothing left its state folder: %v", err)
	}
}

// TestBombsRefusedInSmallMemory feeds the command line each decompression
// bomb of the probe: a zip checkpoint inflating to 256 MiB, an IDX header
// claiming 1 x 65536 x 65536 in a small gzip, and a folder of image files
// claiming 30000 x 30000 and 16000 x 16000 pixels. Each is refused in one
// line, within a fixed allocation budget far below what it claims.
func TestBombsRefusedInSmallMemory(t *testing.T) {
	f := newFixture(t)
	bomb, err := torchtest.Zip([]torchtest.Tensor{{Name: "conv1.weight", Shape: []int{1 << 16, 1 << 10}, Deflate: true}})
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(f.dir, "bomb.pth")
	if err := os.WriteFile(ckpt, bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(f.dir, "idx")
	if err := os.Mkdir(idx, 0o755); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0})
	zw.Write(make([]byte, 4<<20))
	zw.Close()
	for name, b := range map[string][]byte{"t10k-images-idx3-ubyte.gz": gz.Bytes(), "t10k-labels-idx1-ubyte": {0, 0, 8, 1, 0, 0, 0, 1, 0}} {
		if err := os.WriteFile(filepath.Join(idx, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images := filepath.Join(f.dir, "images")
	bigFolder(t, images, 3, "")
	writeFile(t, filepath.Join(images, "a", "bomb.png"), datasettest.PNGClaiming(t, 30000, 30000))
	writeFile(t, filepath.Join(images, "b", "bomb.jpg"), datasettest.JPEGClaiming(t, rocketJPEG(t), 16000, 16000))
	state := filepath.Join(f.dir, "state")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"zip checkpoint", []string{"--model", "resnet20", "--checkpoint", ckpt}, []string{"decompression bomb"}},
		{"IDX header", []string{"--model", "resnet20", "--checkpoint", f.grey, "--data_path", idx}, []string{"header sizes [1 65536 65536]: more than"}},
		{"image headers", []string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", images, "--img_size", "8"},
			[]string{"2 of 5 images do not decode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			var stderr string
			memtest.Within(t, 256<<20, func() {
				code, _, stderr = invoke(context.Background(), append(tc.args, "--state_dir", state)...)
			})
			if code != exitUsage {
				t.Errorf("exit %d: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("%q does not say %q", stderr, w)
				}
			}
			if tc.name == "image headers" && (!strings.Contains(stderr, "30000x30000") || !strings.Contains(stderr, "16000x16000")) {
				t.Errorf("the bad images are not listed with their sizes: %s", stderr)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rocketJPEG is the dataset package's baseline JPEG photograph.
func rocketJPEG(t *testing.T) []byte {
	data, err := os.ReadFile(filepath.Join("..", "..", "dataset", "testdata", "photos", "rocket.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMemoryEstimateFromShapes: absurd sizes are estimated from the
// layers' shapes and refused at once, within a small allocation budget;
// before, --img_size 100000 died of out-of-memory in the estimate and
// --img_size 1500 --max_memory 1GiB used 4.8 GB for 21 s.
func TestMemoryEstimateFromShapes(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--img_size", "100000"}, "exceeds --max_memory 16.0 GiB"},
		{[]string{"--img_size", "1500", "--max_memory", "1GiB"}, "exceeds --max_memory 1.0 GiB"},
	} {
		args := append([]string{"--model", "resnet20", "--checkpoint", f.rgb, "--data_path", f.imagenetPath,
			"--state_dir", filepath.Join(f.dir, "state")}, tc.args...)
		var code int
		var stdout, stderr string
		start := time.Now()
		memtest.Within(t, 128<<20, func() { code, stdout, stderr = invoke(context.Background(), args...) })
		if code != exitUsage || !strings.Contains(stderr, tc.want) || !strings.Contains(stdout, "Estimated peak memory") {
			t.Errorf("%v: exit %d: %s", tc.args, code, stderr)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%v: the refusal took %v", tc.args, d)
		}
	}
}

// TestImageSizeForEverything runs a random resnet20 at two resolutions and
// a random mobilenet_v2 at 112 (an edge model's size): the model line, the data, the
// calibration images and the report say the resolution, and the float
// accuracy is that of the model on the folder preprocessed at it
// (shorter side S*256/224, centre crop S), computed here independently.
func TestImageSizeForEverything(t *testing.T) {
	f := newFixture(t)
	mobile := filepath.Join(f.dir, "mobilenet.pth")
	mobileM := zootest.RandomModel(t, "mobilenet_v2", 3, 3, 4)
	writeCheckpoint(t, mobile, mobileM)
	for _, tc := range []struct {
		model, ckpt string
		m           *zoo.Model
		size        int
	}{
		{"resnet20", f.rgb, f.rgbM, 16}, {"resnet20", f.rgb, f.rgbM, 24}, {"mobilenet_v2", mobile, mobileM, 112},
	} {
		t.Run(fmt.Sprintf("%s_%d", tc.model, tc.size), func(t *testing.T) {
			report, calib := filepath.Join(f.dir, "report.json"), filepath.Join(f.dir, "calib.npy")
			s := fmt.Sprint(tc.size)
			code, stdout, stderr := invoke(context.Background(), "--model", tc.model, "--checkpoint", tc.ckpt, "--data_path", f.imagenetPath,
				"--img_size", s, "--calib_data_type", "random_noise", "--n_images", "2", "--num_iterations", "0", "--iters_a", "0",
				"--output", calib, "--json", report, "--state_dir", filepath.Join(f.dir, "state"))
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range []string{"3-channel " + s + "x" + s + " input", "5 images of 3x" + s + "x" + s} {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not say %q:\n%s", w, stdout)
				}
			}
			if x, err := tensor.ReadNPY(calib); err != nil || !slices.Equal(x.Shape, []int{2, 3, tc.size, tc.size}) {
				t.Errorf("calibration images %v, %v", x, err)
			}
			r := readReport(t, report)
			if got := r["data"].(map[string]any)["sample_shape"]; fmt.Sprint(got) != fmt.Sprintf("[3 %d %d]", tc.size, tc.size) {
				t.Errorf("evaluated samples %v", got)
			}
			want := independentAccuracy(t, tc.m, f.imagenetPath, tc.size)
			got := r["runs"].([]any)[0].(map[string]any)["accuracy"].(map[string]any)["float"].(map[string]any)
			if math.Abs(got["top1"].(float64)-100*want.Top1) > 0.005 || got["samples"] != 5.0 {
				t.Errorf("float accuracy %v, the model on the folder at %d pixels gives %.2f%%", got, tc.size, 100*want.Top1)
			}
		})
	}
}

// independentAccuracy evaluates m on the folder preprocessed at size.
func independentAccuracy(t *testing.T, m *zoo.Model, dir string, size int) brecq.Accuracy {
	t.Helper()
	ds, err := dataset.OpenFolder(dir, dataset.FolderOptions{Resize: (size*256 + 112) / 224, Crop: size, Norm: dataset.Normalization{Mean: m.Spec.Mean, Std: m.Spec.Std}})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := brecq.Evaluate(context.Background(), m.Logits, &evalBatches{d: ds, size: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}
