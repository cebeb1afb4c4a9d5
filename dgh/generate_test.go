package dgh

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// smallConfig is a fast run on the small fixture model: two uneven
// batches, smoothing and random crops on.
func smallConfig(t *testing.T) Config {
	return Config{NImages: 6, BatchSize: 4, Iterations: 6, Padding: 4, Seed: 7,
		StatePath: filepath.Join(t.TempDir(), "state.gob")}
}

func TestGenerateShapeAndRange(t *testing.T) {
	model := smallModel(t)
	var reports []Progress
	cfg := smallConfig(t)
	cfg.Progress = func(p Progress) { reports = append(reports, p) }
	imgs, err := Generate(context.Background(), model, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{6, 3, 8, 8}; !slices.Equal(imgs.Shape, want) {
		t.Fatalf("shape %v, want %v", imgs.Shape, want)
	}
	lo, hi := ValidRange(imagenetMean, imagenetStd)
	for i, v := range imgs.Data {
		c := (i / 64) % 3
		if !(v >= lo[c] && v <= hi[c]) {
			t.Fatalf("value %v at %d outside channel %d's range [%v, %v]", v, i, c, lo[c], hi[c])
		}
	}
	if len(reports) != cfg.Iterations {
		t.Fatalf("%d progress reports, want %d", len(reports), cfg.Iterations)
	}
	for i, p := range reports {
		if p.Iteration != i+1 || p.Iterations != cfg.Iterations || !(p.LR > 0) || math.IsNaN(p.BNLoss) || p.ImagesPerSec <= 0 {
			t.Errorf("report %d: %+v", i, p)
		}
	}
}

func TestRecorderRemove(t *testing.T) {
	model := smallModel(t)
	r, err := newRecorder(model.Net)
	if err != nil {
		t.Fatal(err)
	}
	if names := []string{r.layers[0].name, r.layers[1].name}; len(r.layers) != 2 || names[0] != "1" || names[1] != "4" {
		t.Fatalf("recorder found %d layers %v, want [1 4]", len(r.layers), names)
	}
	x := autograd.Const(tensor.New(2, 3, 8, 8))
	if _, err := r.forward(model.Net, x); err != nil {
		t.Fatal(err)
	}
	r.remove()
	clear(r.inputs)
	layers.Apply(model.Net, x)
	for i, in := range r.inputs {
		if in != nil {
			t.Errorf("layer %d still recorded after remove", i)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	model := smallModel(t)
	run := func(seed uint64) *tensor.Tensor {
		cfg := smallConfig(t)
		cfg.Seed = seed
		imgs, err := Generate(context.Background(), model, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return imgs
	}
	a, b, c := run(3), run(3), run(4)
	if !slices.Equal(a.Data, b.Data) {
		t.Error("the same seed gave different images")
	}
	if slices.Equal(a.Data, c.Data) {
		t.Error("different seeds gave the same images")
	}
}

// cancelAfter cancels ctx once the model's first conv has run n times on
// images that want a gradient, that is in the n-th batch step (the
// statistics measurements run without gradients, and how many of them a
// step runs depends on the batch order).
func cancelAfter(model *zoo.Model, n int, cancel context.CancelFunc) (remove func()) {
	conv := layers.NamedModules(model.Net)[1].Module.(*layers.Conv2d)
	calls := 0
	return conv.AddHook(func(_ layers.Module, in, _ *autograd.Var) {
		if !in.RequiresGrad() {
			return
		}
		calls++
		if calls == n {
			cancel()
		}
	})
}

func TestResumeGivesSameImages(t *testing.T) {
	model := smallModel(t)
	want, err := Generate(context.Background(), model, smallConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// interrupt runs the first part and leaves a state at path.
		interrupt func(t *testing.T, cfg Config)
	}{
		{"cancel mid-iteration", func(t *testing.T, cfg Config) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Batch step 5 is the first of iteration 3.
			remove := cancelAfter(model, 5, cancel)
			defer remove()
			_, err := Generate(ctx, model, cfg)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		}},
		{"cancel at an iteration's end", func(t *testing.T, cfg Config) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg.Progress = func(p Progress) {
				if p.Iteration == 2 {
					cancel()
				}
			}
			if _, err := Generate(ctx, model, cfg); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		}},
		{"periodic save", func(t *testing.T, cfg Config) {
			cfg.SaveEvery = 4
			if _, err := Generate(context.Background(), model, cfg); err != nil {
				t.Fatal(err)
			}
		}},
		{"save by the clock mid-iteration", func(t *testing.T, cfg Config) {
			// A 1 ns interval saves between every two batch steps; the
			// state left is the one before the last step, mid-iteration.
			cfg.SaveInterval = time.Nanosecond
			saves, lastIter, lastPos := 0, -1, -1
			cfg.AfterSave = func(iter, pos int) { saves, lastIter, lastPos = saves+1, iter, pos }
			if _, err := Generate(context.Background(), model, cfg); err != nil {
				t.Fatal(err)
			}
			var st savedState
			if err := statefile.Read(cfg.StatePath, &st); err != nil {
				t.Fatal(err)
			}
			if st.Iter != cfg.Iterations-1 || st.Pos != 1 {
				t.Fatalf("last periodic save at iteration %d batch %d, want %d and 1", st.Iter, st.Pos, cfg.Iterations-1)
			}
			// Two batches: a save before each of the 12 steps.
			if saves != 2*cfg.Iterations || lastIter != st.Iter || lastPos != st.Pos {
				t.Fatalf("AfterSave called %d times, last with %d/%d; want %d, %d/%d", saves, lastIter, lastPos, 2*cfg.Iterations, st.Iter, st.Pos)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(t)
			tc.interrupt(t, cfg)
			if _, err := os.Stat(cfg.StatePath); err != nil {
				t.Fatalf("no state saved: %v", err)
			}
			cfg.Resume = true
			got, err := Generate(context.Background(), model, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Data, want.Data) {
				t.Error("the resumed run ended with other images than the uninterrupted one")
			}
		})
	}
}

func TestResumeRejectsOtherSettings(t *testing.T) {
	model := smallModel(t)
	cfg := smallConfig(t)
	cfg.SaveEvery = 2
	if _, err := Generate(context.Background(), model, cfg); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"more images", func(c *Config) { c.NImages = 7 }, "images 6 (saved) vs 7 (now)"},
		{"other padding", func(c *Config) { c.Padding = 2 }, "padding 4 (saved) vs 2 (now)"},
		{"other seed", func(c *Config) { c.Seed = 8 }, "seed 7 (saved) vs 8 (now)"},
		{"other rate", func(c *Config) { c.LR = 8 }, "lr 16 (saved) vs 8 (now)"},
		{"missing file", func(c *Config) { c.StatePath += ".missing" }, "no such file"},
		{"no path", func(c *Config) { c.StatePath = "" }, "needs a StatePath"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.Resume = true
			tc.change(&c)
			_, err := Generate(context.Background(), model, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	other := smallModel(t)
	layers.StateDict(other.Net)[0].Tensor.Data[0] += 1e-6
	c := cfg
	c.Resume = true
	if _, err := Generate(context.Background(), other, c); err == nil || !strings.Contains(err.Error(), "model ") {
		t.Fatalf("other weights: err = %v, want the model named", err)
	}
	flipped, err := os.ReadFile(cfg.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	flipped[len(flipped)/2] ^= 4
	c.StatePath = filepath.Join(t.TempDir(), "flipped")
	if err := os.WriteFile(c.StatePath, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(context.Background(), model, c); !errors.Is(err, statefile.ErrCorrupt) {
		t.Fatalf("a state with one bit flipped: err = %v, want ErrCorrupt", err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not a state"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.StatePath = garbage
	if _, err := Generate(context.Background(), model, c); err == nil || !strings.Contains(err.Error(), "not a DGH state") {
		t.Fatalf("garbage state: err = %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	model := smallModel(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative images", Config{NImages: -1}, "number of images"},
		{"negative batch", Config{NImages: 2, BatchSize: -2}, "batch size"},
		{"negative lr", Config{NImages: 2, LR: -1}, "learning rate"},
		{"even smoothing", Config{NImages: 2, SmoothingSize: 2}, "smoothing filter size"},
		{"channel mismatch", Config{NImages: 2, Mean: []float32{0, 0}, Std: []float32{1, 1}}, "running the model"},
		{"zero std", Config{NImages: 2, Mean: []float32{0, 0, 0}, Std: []float32{1, 0, 1}}, "std > 0"},
		{"std count", Config{NImages: 2, Mean: []float32{0, 0, 0}, Std: []float32{1}}, "normalisation"},
		{"output loss on 1x1", Config{NImages: 2, ImageSize: 1, Padding: 1}, "unbiased std"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Iterations = 1
			_, err := Generate(context.Background(), model, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	bad := smallModel(t)
	bad.Spec.LastBN = "3"
	if _, err := Generate(context.Background(), bad, Config{NImages: 2, Iterations: 1}); err == nil || !strings.Contains(err.Error(), `"3"`) {
		t.Fatalf("wrong LastBN: err = %v", err)
	}
	if _, err := Generate(context.Background(), nil, Config{}); err == nil {
		t.Fatal("nil model: no error")
	}
}

func TestEstimateMemory(t *testing.T) {
	model := smallModel(t)
	small, err := EstimateMemory(model, Config{NImages: 8, BatchSize: 4, Padding: 4})
	if err != nil {
		t.Fatal(err)
	}
	// The optimised images with gradients and two moments alone take
	// 4 x 8 x 3 x 12 x 12 floats.
	if floor := int64(4 * 4 * 8 * 3 * 12 * 12); small < floor {
		t.Fatalf("estimate %d bytes, below the image state's %d", small, floor)
	}
	big, err := EstimateMemory(model, Config{NImages: 80, BatchSize: 4, Padding: 4})
	if err != nil {
		t.Fatal(err)
	}
	if want := small + 4*4*72*3*12*12 + 4*72*3*8*8; big != want {
		t.Fatalf("72 more images: estimate %d, want %d", big, want)
	}
	// A 100000-pixel request is estimated from shapes: it allocates
	// nothing near its size (a 3 x 100000^2 image alone is 120 GB).
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	huge, err := EstimateMemory(model, Config{NImages: 1, BatchSize: 1, ImageSize: 100000, Padding: -1})
	runtime.ReadMemStats(&ms)
	if err != nil {
		t.Fatal(err)
	}
	if floor := int64(4 * 4 * 3 * 100000 * 100000); huge < floor {
		t.Errorf("100000 pixels: estimate %d bytes, below the image state's %d", huge, floor)
	}
	if used := ms.TotalAlloc - before; used > 64<<20 {
		t.Errorf("estimating 100000 pixels allocated %d MiB", used>>20)
	}
}

// TestActivationsPerImage: every leaf module's output counts once, but an
// activation right after a batch norm runs fused with it and adds nothing.
func TestActivationsPerImage(t *testing.T) {
	conv := func() layers.Module { return layers.NewConv2d(3, 4, 3, 1, 1, 1, false) }
	for _, c := range []struct {
		name string
		net  layers.Module
		want int64
	}{
		{"conv-bn-relu6", layers.NewSequential(conv(), layers.NewBatchNorm2d(4), &layers.ReLU6{}), 75 + 100 + 100},
		{"conv-bn", layers.NewSequential(conv(), layers.NewBatchNorm2d(4)), 75 + 100 + 100},
		{"conv-relu", layers.NewSequential(conv(), &layers.ReLU{}), 75 + 100 + 100},
		{"conv-bn-relu-relu", layers.NewSequential(conv(), layers.NewBatchNorm2d(4), &layers.ReLU{}, &layers.ReLU{}), 75 + 100 + 100 + 100},
	} {
		got, err := activationsPerImage(c.net, 3, 5)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: %d values per image, want %d", c.name, got, c.want)
		}
	}
}

// TestLazyStatisticsAreCurrent checks the lazy step 8: whenever a batch
// step starts, the statistics it reads of every other batch are those of
// that batch's current images, exactly.
func TestLazyStatisticsAreCurrent(t *testing.T) {
	model := smallModel(t)
	s, err := Config{NImages: 10, BatchSize: 4, Padding: 4, Seed: 3}.resolve(model.Spec)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGenerator(model, s)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if err := g.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, b := range []int{0, 0, 2, 1, 0, 1, 1, 2} {
		if err := g.refresh(b); err != nil {
			t.Fatal(err)
		}
		for j, bt := range g.batches {
			if j == b {
				continue
			}
			want, err := g.measure(bt.x.Value)
			if err != nil {
				t.Fatal(err)
			}
			for l := range want.mean {
				if !slices.Equal(g.stats[j].mean[l], want.mean[l]) || !slices.Equal(g.stats[j].meanSq[l], want.meanSq[l]) {
					t.Fatalf("step %d (batch %d): batch %d layer %d statistics are not those of its images", i, b, j, l)
				}
			}
		}
		if _, err := g.step(b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNoIterations checks that negative Iterations means none (the
// command line's --distill_num_iter 0): the finalised starting noise, the
// same for the same seed, without a single step.
func TestNoIterations(t *testing.T) {
	model := smallModel(t)
	cfg := smallConfig(t)
	cfg.Iterations = -1
	steps := 0
	cfg.Progress = func(Progress) { steps++ }
	a, err := Generate(context.Background(), model, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(context.Background(), model, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if steps != 0 || !slices.Equal(a.Data, b.Data) || !slices.Equal(a.Shape, []int{6, 3, 8, 8}) {
		t.Fatalf("%d steps, shape %v, equal %t", steps, a.Shape, slices.Equal(a.Data, b.Data))
	}
	cfg.Iterations = 1
	c, err := Generate(context.Background(), model, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(a.Data, c.Data) {
		t.Fatal("one iteration left the images as they were")
	}
}
