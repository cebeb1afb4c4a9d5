package brecq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

func randomImages(seed uint64, shape ...int) *tensor.Tensor {
	return tensor.NewRNG(seed).Randn(shape...)
}

func relErr(a, b *tensor.Tensor) float64 {
	var num, den float64
	for i := range a.Data {
		d := float64(a.Data[i] - b.Data[i])
		num += d * d
		den += float64(b.Data[i]) * float64(b.Data[i])
	}
	return math.Sqrt(num / den)
}

// TestReconstructionBeatsNearest checks the point of docs/DESIGN.md, "BRECQ", step 4: after AdaRound
// every unit reproduces its float output better than round-to-nearest.
func TestReconstructionBeatsNearest(t *testing.T) {
	if testing.Short() {
		t.Skip("reconstructs resnet20 twice (about 10 s)")
	}
	for _, layer := range []bool{false, true} {
		m := zootest.RandomModel(t, "resnet20", 3, 10, 1)
		calib := randomImages(2, 32, 3, 4, 4)
		// A short schedule (no warmup, low starting temperature) so the
		// rounding settles within 100 steps.
		q, err := Quantize(context.Background(), m, calib, Config{
			WeightBits: 3, NumIterations: 100, Warmup: -1, BStart: 4, Seed: 3, LayerReconstruction: layer,
		})
		if err != nil {
			t.Fatal(err)
		}
		want := len(q.Units())
		if layer {
			want = len(q.Modules())
		}
		got := map[Phase]int{}
		for _, r := range q.Report {
			got[r.Phase]++
			t.Logf("layer=%t %v %-16s before %.5g after %.5g", layer, r.Phase, r.Unit, r.Before, r.After)
			if !(r.After < r.Before) {
				t.Errorf("layer=%t %v %s: reconstruction loss %g, before it %g", layer, r.Phase, r.Unit, r.After, r.Before)
			}
		}
		if got[PhaseWeights] != want || got[PhaseActivations] != 0 {
			t.Errorf("layer=%t: %d weight and %d activation reports for %d units", layer, got[PhaseWeights], got[PhaseActivations], want)
		}
	}
}

// TestW8A8StaysCloseToFloat: at 8 bits the quantized network's logits
// stay near the float network's (docs/DESIGN.md, "BRECQ", steps 2 and 3), and with the quantizers
// off the folded network is the float one.
func TestW8A8StaysCloseToFloat(t *testing.T) {
	for _, tc := range []struct {
		model       string
		inCh, size  int
		iters       int
		layer, head bool
	}{
		{"resnet20", 3, 8, 20, false, false},
		{"resnet20", 1, 8, 10, true, true},
	} {
		t.Run(fmt.Sprintf("layer=%t,head_stem=%t", tc.layer, tc.head), func(t *testing.T) {
			m := zootest.RandomModel(t, tc.model, tc.inCh, 10, 5)
			calib := randomImages(6, 16, tc.inCh, tc.size, tc.size)
			q, err := Quantize(context.Background(), m, calib, Config{
				WeightBits: 8, ActBits: 8, ActQuant: true, NumIterations: tc.iters, ItersA: tc.iters,
				LayerReconstruction: tc.layer, HeadStem8bit: tc.head, Seed: 7,
			})
			if err != nil {
				t.Fatal(err)
			}
			x := randomImages(8, 8, tc.inCh, tc.size, tc.size)
			want := m.Logits(x)
			got := q.Forward(x)
			if e := relErr(got, want); !(e < 0.03) {
				t.Errorf("W8A8 logits differ from float by %.3g (relative)", e)
			}
			q.Mode = Mode{}
			if e := relErr(q.Forward(x), want); !(e < 1e-5) {
				t.Errorf("folded float logits differ from the model's by %.3g (relative)", e)
			}
		})
	}
}

// TestMobileNetV2RunsEveryOption takes MobileNetV2 through both phases
// with every switch on, a few steps per unit.
func TestMobileNetV2RunsEveryOption(t *testing.T) {
	m := zootest.RandomModel(t, "mobilenet_v2", 3, 10, 21)
	calib := randomImages(22, 4, 3, 32, 32)
	q, err := Quantize(context.Background(), m, calib, Config{
		NumIterations: 2, ItersA: 2, BatchSize: 2, ActQuant: true, HeadStem8bit: true,
		DisableNetworkOutputQuantization: true, LayerReconstruction: true, Seed: 23,
	})
	if err != nil {
		t.Fatal(err)
	}
	ms := q.Modules()
	// Every layer but the stem; activation steps for the layers with a
	// quantizer of their own (not the stem, not a block's last conv).
	wantW, wantA := len(ms)-1, 0
	for _, mm := range ms[1:] {
		if mm.AQ != nil {
			wantA++
		}
	}
	got := map[Phase]int{}
	for _, r := range q.Report {
		got[r.Phase]++
	}
	if got[PhaseWeights] != wantW || got[PhaseActivations] != wantA {
		t.Errorf("%d weight and %d activation reconstructions, want %d and %d", got[PhaseWeights], got[PhaseActivations], wantW, wantA)
	}
	if ms[len(ms)-2].AQ.Bits != 8 {
		t.Errorf("features.18 output at %d bits, want 8 (the classifier's input)", ms[len(ms)-2].AQ.Bits)
	}
	x := randomImages(24, 2, 3, 32, 32)
	if y := q.Forward(x); y.Shape[0] != 2 || y.Shape[1] != 10 {
		t.Errorf("logits %v, want [2 10]", y.Shape)
	}
}

// TestUnits checks the unit lists of docs/DESIGN.md, "BRECQ", step 4 for the two families.
func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		model   string
		inCh    int
		units   []string
		modules int
	}{
		{"resnet20", 1, []string{"conv1", "layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.1", "layer2.2",
			"layer3.0", "layer3.1", "layer3.2", "fc"}, 1 + 9*2 + 2 + 1},
		{"mobilenet_v2", 3, append(append([]string{"features.0.0"}, seqNames("features.", 1, 17)...),
			"features.18.0", "classifier.1"), 1 + 1*2 + 16*3 + 1 + 1},
	} {
		m := zootest.RandomModel(t, tc.model, tc.inCh, 10, 3)
		q, err := New(m, 4, 4)
		if err != nil {
			t.Fatal(err)
		}
		x := randomImages(4, 2, tc.inCh, 32, 32)
		if e := relErr(q.forward(autograd.Const(x), Mode{}).Value, m.Logits(x)); !(e < 1e-5) {
			t.Errorf("%s: folded float logits differ from the model's by %.3g (relative)", tc.model, e)
		}
		var names []string
		for _, u := range q.Units() {
			names = append(names, u.UnitName())
		}
		if strings.Join(names, " ") != strings.Join(tc.units, " ") {
			t.Errorf("%s units %v, want %v", tc.model, names, tc.units)
		}
		if len(q.Modules()) != tc.modules {
			t.Errorf("%s: %d quant modules, want %d", tc.model, len(q.Modules()), tc.modules)
		}
		for _, u := range q.Units() {
			b, ok := u.(*Block)
			if !ok {
				if u.(*QuantModule).AQ == nil {
					t.Errorf("%s %s: lone module without output quantizer", tc.model, u.UnitName())
				}
				continue
			}
			last := b.Main[len(b.Main)-1]
			if last.AQ != nil || (b.Downsample != nil && b.Downsample.AQ != nil) || b.AQ == nil {
				t.Errorf("%s %s: last conv or shortcut quantizes its output, or the block does not", tc.model, b.Name)
			}
			for _, mm := range b.Main[:len(b.Main)-1] {
				if mm.AQ == nil || mm.Act == ActNone {
					t.Errorf("%s %s: inner module %s lacks its activation or quantizer", tc.model, b.Name, mm.Name)
				}
			}
		}
	}
}

func seqNames(prefix string, lo, hi int) []string {
	var s []string
	for i := lo; i <= hi; i++ {
		s = append(s, prefix+strconv.Itoa(i))
	}
	return s
}

func TestHeadStem8bitAndOutput(t *testing.T) {
	m := zootest.RandomModel(t, "resnet20", 1, 10, 9)
	calib := randomImages(10, 8, 1, 4, 4)
	steps := map[Phase]int{}
	afterWeights := 0
	q, err := Quantize(context.Background(), m, calib, Config{
		NumIterations: 3, ItersA: 4, ActQuant: true, HeadStem8bit: true, DisableNetworkOutputQuantization: true, Seed: 1,
		Progress: func(p Progress) {
			steps[p.Phase]++
			if p.Units != 11 || p.Unit == "conv1" || p.Iteration < 1 || p.Iteration > p.Iterations || p.Remaining < 0 {
				t.Errorf("progress %+v", p)
			}
		},
		AfterWeights: func(q *QuantModel) error {
			afterWeights++
			if q.Mode != (Mode{Weights: true}) {
				t.Errorf("AfterWeights sees mode %+v", q.Mode)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// 10 units reconstructed (the stem is not); the last layer has no
	// activation quantizer left to learn.
	if steps[PhaseWeights] != 10*3 || steps[PhaseActivations] != 9*4 || afterWeights != 1 {
		t.Errorf("%d weight steps, %d activation steps, %d AfterWeights calls; want 30, 36, 1",
			steps[PhaseWeights], steps[PhaseActivations], afterWeights)
	}
	ms := q.Modules()
	first, last := ms[0], ms[len(ms)-1]
	if first.WQ.Bits != 8 || first.AQ.Bits != 8 || last.WQ.Bits != 8 || !first.SkipReconstruction {
		t.Errorf("head/stem: first W%d A%d skip=%t, last W%d", first.WQ.Bits, first.AQ.Bits, first.SkipReconstruction, last.WQ.Bits)
	}
	if first.WQ.Alpha != nil {
		t.Error("the stem was reconstructed")
	}
	if last.AQ != nil {
		t.Error("the network output is still quantized")
	}
	for _, mm := range ms[1 : len(ms)-1] {
		if mm.WQ.Bits != 4 || mm.WQ.Alpha == nil {
			t.Errorf("%s: W%d, reconstructed %t", mm.Name, mm.WQ.Bits, mm.WQ.Alpha != nil)
		}
	}
	for _, r := range q.Report {
		if r.Unit == "conv1" {
			t.Errorf("report lists the stem: %+v", r)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	m := zootest.RandomModel(t, "resnet20", 1, 10, 1)
	calib := randomImages(1, 4, 1, 4, 4)
	for _, tc := range []struct {
		name  string
		cfg   Config
		calib *tensor.Tensor
	}{
		{"weight bits 1", Config{WeightBits: 1}, calib},
		{"weight bits 9", Config{WeightBits: 9}, calib},
		{"act bits 16", Config{ActBits: 16}, calib},
		{"no calibration", Config{}, nil},
		{"empty calibration", Config{}, tensor.New(0, 1, 4, 4)},
		{"resume without path", Config{Resume: true}, calib},
		{"resume missing file", Config{Resume: true, StatePath: filepath.Join(t.TempDir(), "none")}, calib},
		{"nan lr", Config{LR: math.NaN()}, calib},
		{"warmup 1", Config{Warmup: 1}, calib},
		{"3 channels for 1", Config{}, randomImages(1, 4, 3, 4, 4)},
		{"flat calibration", Config{}, tensor.New(4, 16)},
	} {
		if _, err := Quantize(context.Background(), m, tc.calib, tc.cfg); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	errStop := errors.New("stop")
	cfg := Config{NumIterations: -1, AfterWeights: func(*QuantModel) error { return errStop }}
	if _, err := Quantize(context.Background(), m, calib, cfg); !errors.Is(err, errStop) {
		t.Errorf("AfterWeights' error became %v", err)
	}
}

// TestResumeRepeatsUninterruptedRun cancels runs in each phase and checks
// that resuming from the saved state gives the same model as a run that
// was never interrupted.
func TestResumeRepeatsUninterruptedRun(t *testing.T) {
	m := zootest.RandomModel(t, "resnet20", 1, 10, 11)
	calib := randomImages(12, 12, 1, 4, 4)
	base := Config{NumIterations: 6, ItersA: 5, BatchSize: 4, ActQuant: true, Seed: 13}
	ref, err := Quantize(context.Background(), m, calib, base)
	if err != nil {
		t.Fatal(err)
	}
	x := randomImages(14, 4, 1, 4, 4)
	want := ref.Forward(x)
	for _, stop := range []struct {
		phase Phase
		unit  int
	}{{PhaseWeights, 0}, {PhaseWeights, 4}, {PhaseActivations, 7}} {
		t.Run(fmt.Sprintf("%v_%d", stop.phase, stop.unit), func(t *testing.T) {
			cfg := base
			cfg.StatePath = filepath.Join(t.TempDir(), "state")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cfg.Progress = func(p Progress) {
				if p.Phase == stop.phase && p.UnitIndex == stop.unit && p.Iteration == 2 {
					cancel()
				}
			}
			if _, err := Quantize(ctx, m, calib, cfg); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled run returned %v", err)
			}
			cfg.Progress = func(p Progress) {
				if p.Phase < stop.phase || (p.Phase == stop.phase && p.UnitIndex < stop.unit) {
					t.Fatalf("resumed run redid %v unit %d", p.Phase, p.UnitIndex)
				}
			}
			cfg.Resume = true
			q, err := Quantize(context.Background(), m, calib, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Forward(x); !slices.Equal(got.Data, want.Data) {
				t.Errorf("resumed run differs from the uninterrupted one by %.3g (relative)", relErr(got, want))
			}
			// A finished state is a saved quantized model: resuming it
			// reconstructs nothing and gives the same network.
			cfg.Progress = func(p Progress) { t.Fatalf("finished state resumed at %v unit %d", p.Phase, p.UnitIndex) }
			if q, err = Quantize(context.Background(), m, calib, cfg); err != nil {
				t.Fatal(err)
			}
			if got := q.Forward(x); !slices.Equal(got.Data, want.Data) {
				t.Errorf("reloaded model differs from the uninterrupted one by %.3g (relative)", relErr(got, want))
			}
			other := cfg
			other.Seed++
			if _, err := Quantize(context.Background(), m, calib, other); err == nil {
				t.Error("resumed a state made with another seed")
			}
			if _, err := Quantize(context.Background(), m, randomImages(15, 12, 1, 4, 4), cfg); err == nil {
				t.Error("resumed a state made with other calibration images")
			}
		})
	}
}

type sliceBatches struct {
	xs     []*tensor.Tensor
	labels [][]int
	pos    int
}

func (s *sliceBatches) Len() int { return len(s.xs) }

func (s *sliceBatches) Next() (*tensor.Tensor, []int, error) {
	if s.pos == len(s.xs) {
		return nil, nil, io.EOF
	}
	s.pos++
	return s.xs[s.pos-1], s.labels[s.pos-1], nil
}

func TestEvaluate(t *testing.T) {
	// Logits are the images themselves: 7 classes, label ranks 0, 2, 6, 4, 0 (tie).
	rows := [][]float32{
		{9, 1, 2, 3, 4, 5, 6},
		{1, 5, 2, 3, 9, 0, 0},
		{7, 6, 5, 4, 3, 2, 1},
		{1, 2, 3, 4, 5, 6, 7},
		{3, 3, 0, 0, 0, 0, 0},
	}
	labels := []int{0, 3, 6, 2, 0}
	var flat []float32
	for _, r := range rows {
		flat = append(flat, r...)
	}
	b := &sliceBatches{
		xs:     []*tensor.Tensor{tensor.FromSlice(flat[:21], 3, 7), tensor.FromSlice(flat[21:], 2, 7)},
		labels: [][]int{labels[:3], labels[3:]},
	}
	batches := 0
	acc, err := Evaluate(context.Background(), func(x *tensor.Tensor) *tensor.Tensor { return x }, b, func(int) { batches++ })
	if err != nil {
		t.Fatal(err)
	}
	if acc.Samples != 5 || acc.Top1 != 2.0/5 || acc.Top5 != 4.0/5 || batches != 2 {
		t.Errorf("accuracy %+v after %d batches, want top-1 0.4, top-5 0.8 over 5 samples in 2 batches", acc, batches)
	}
	bad := &sliceBatches{xs: []*tensor.Tensor{tensor.New(1, 7)}, labels: [][]int{{7}}}
	if _, err := Evaluate(context.Background(), func(x *tensor.Tensor) *tensor.Tensor { return x }, bad, nil); err == nil {
		t.Error("label 7 of 7 classes accepted")
	}
}

// TestForwardReusesBuffers: Forward takes its activations from a recycled
// arena, so calls in a row and concurrent calls on different inputs must
// each give the logits of a pass on fresh buffers, bit for bit, and the
// logits a call returns must not change under later calls.
func TestForwardReusesBuffers(t *testing.T) {
	m := zootest.RandomModel(t, "resnet20", 1, 10, 5)
	q, err := Quantize(context.Background(), m, randomImages(3, 8, 1, 12, 12), Config{
		WeightBits: 4, ActBits: 4, ActQuant: true, NumIterations: 2, ItersA: 2, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	if q.Mode != (Mode{Weights: true, Acts: true}) {
		t.Fatalf("mode %+v after the activation phase", q.Mode)
	}
	inputs := []*tensor.Tensor{randomImages(1, 4, 1, 12, 12), randomImages(2, 4, 1, 12, 12)}
	want := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		want[i] = q.forward(autograd.Const(x), q.Mode).Value.Clone()
	}
	first := q.Forward(inputs[0])
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			for range 3 {
				i := g % len(inputs)
				if got := q.Forward(inputs[i]); !slices.Equal(got.Data, want[i].Data) {
					done <- fmt.Errorf("goroutine %d: logits of input %d differ from a fresh pass", g, i)
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if !slices.Equal(first.Data, want[0].Data) {
		t.Error("returned logits changed under later calls")
	}
}
