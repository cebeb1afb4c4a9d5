// Package brecq quantizes a trained CNN to low bit-width after training
// (docs/DESIGN.md, "BRECQ"): BRECQ block reconstruction (Li et al., ICLR 2021) with
// AdaRound weight rounding and LSQ activation step sizes.
//
// New folds every BatchNorm into its convolution and rebuilds the network
// from quant modules (per-output-channel weight quantizer, per-tensor
// activation quantizer on the output, the following ReLU/ReLU6 merged in)
// and quant blocks (BasicBlock, Bottleneck, InvertedResidual: the last
// conv and the shortcut conv keep their outputs unquantized; the block
// quantizes after the residual add). The units of the reconstruction are
// the blocks and the lone modules (stem, MobileNetV2's last conv, the
// classifier), in network order.
//
// Quantize reconstructs the units one after another: first the weight
// rounding, then, with Config.ActQuant, the activation step sizes. Between
// the two phases Config.AfterWeights sees the weight-only model, which is
// where docs/DESIGN.md, "BRECQ", step 5 measures the weight-only accuracy; Evaluate scores any
// forward function over a Batches source. The result's Forward gives the
// logits of the quantized network, and its Mode switches weight and
// activation quantization on and off.
//
// Memory: the calibration set is streamed through the network, so a
// unit's reconstruction holds its float outputs and its quantized inputs
// and outputs for every calibration image (the reference caches the same
// inputs and outputs), plus the calibration images themselves.
package brecq

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"github.com/dghcore/dghcore/tensor"
)

// The paper's defaults (docs/DESIGN.md, "BRECQ"), used where a Config field is zero.
const (
	DefaultWeightBits     = 4
	DefaultActBits        = 4
	DefaultNumIterations  = 20000
	DefaultBatchSize      = 32
	DefaultWeight         = 0.01
	DefaultBStart         = 20
	DefaultBEnd           = 2
	DefaultWarmup         = 0.2
	DefaultItersA         = 5000
	DefaultLR             = 4e-4
	DefaultP              = 2.4
	DefaultActInitSamples = 512

	// WeightLR is Adam's rate on AdaRound's alphas (torch's default,
	// which BRECQ keeps).
	WeightLR = 1e-3
	// weightP is the reconstruction norm of the weight phase.
	weightP = 2
	// HeadStemBits is the bit width of the first and last layers under
	// Config.HeadStem8bit.
	HeadStemBits = 8
)

// Config controls Quantize. Its zero value is the paper's W4A4 setting
// with the activation phase off: every zero field takes the default named
// beside it.
type Config struct {
	WeightBits int // weight bits, 2..8; 4
	ActBits    int // activation bits, 2..8; 4

	// NumIterations is the number of AdaRound steps per unit; 20000.
	// Negative means none: weights keep round-to-nearest.
	NumIterations int
	BatchSize     int     // reconstruction mini-batch; 32
	Weight        float64 // rounding-term weight; 0.01 (0.1 for mobilenet_v2 in the paper). Negative means 0.
	BStart, BEnd  float64 // temperature annealed from BStart to BEnd; 20 and 2
	// Warmup is the fraction of the steps before the rounding term and the
	// temperature schedule start; 0.2. Negative means 0.
	Warmup float64

	// ActQuant runs the activation phase after the weight phase.
	ActQuant bool
	// ItersA is the number of activation-step steps per unit; 5000.
	// Negative means none: the activation steps keep their initial search.
	ItersA int
	LR     float64 // Adam's rate on the activation steps; 4e-4
	P      float64 // norm of the activation reconstruction loss; 2.4
	// ActInitSamples is how many calibration samples (the first ones)
	// initialise the activation steps; 512, the batch the DGH reference
	// initialises on. It is capped at the calibration set's size.
	ActInitSamples int

	// HeadStem8bit quantizes the first and last layers' weights, the first
	// layer's output and the last layer's input at 8 bits and leaves the
	// first layer out of the reconstruction.
	HeadStem8bit bool
	// DisableNetworkOutputQuantization leaves the logits unquantized.
	DisableNetworkOutputQuantization bool
	// LayerReconstruction reconstructs every layer on its own instead of
	// whole residual blocks: each conv of a block against its own float
	// output (the shortcut conv on the block's input). As in the
	// reference, a block's own activation quantizer then keeps the step
	// of its initial search.
	LayerReconstruction bool

	// Seed seeds the mini-batch sampling; each unit of each phase draws
	// from its own stream, so a resumed run repeats an uninterrupted one.
	Seed uint64

	// Progress, when set, is called after every reconstruction step; it
	// runs on Quantize's goroutine.
	Progress ProgressFunc
	// AfterWeights, when set, is called once the weight phase is done
	// (also when a resumed run finds it done), with the model in
	// weight-only mode; docs/DESIGN.md, "BRECQ", step 5 evaluates the weight-only accuracy here.
	// An error from it stops Quantize and is returned.
	AfterWeights func(*QuantModel) error

	// StatePath, when set, is where the quantization state is written
	// after every finished unit and when ctx is cancelled. Writes are
	// atomic (temporary file, then rename).
	StatePath string
	// Resume continues from StatePath: finished units keep their saved
	// quantizers and the run restarts at the unit it stopped in. The state
	// must come from a run with the same model and settings.
	Resume bool
}

// Phase names the stage of the algorithm a Progress report belongs to.
type Phase int

// The phases of Quantize.
const (
	PhaseWeights     Phase = iota // AdaRound weight rounding (docs/DESIGN.md, "BRECQ", step 4)
	PhaseActivations              // activation step sizes (docs/DESIGN.md, "BRECQ", step 6)
)

// String names the phase as progress lines show it.
func (p Phase) String() string {
	switch p {
	case PhaseWeights:
		return "weights"
	case PhaseActivations:
		return "activations"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Progress describes a run after one reconstruction step.
type Progress struct {
	Phase     Phase
	Unit      string // dotted PyTorch name of the unit, e.g. "layer2.0"
	UnitIndex int    // 0-based among the units the phase reconstructs
	Units     int
	// Iteration counts the unit's steps, 1..Iterations.
	Iteration, Iterations int
	RecLoss               float64 // reconstruction loss of the step
	RoundLoss             float64 // weighted rounding term (0 in warmup and the activation phase)
	Beta                  float64 // AdaRound temperature of the step (0 when off)
	Remaining             time.Duration
}

// ProgressFunc receives progress reports.
type ProgressFunc func(Progress)

// settings is a Config with every default filled in and checked.
type settings struct {
	wBits, aBits  int
	iters, batch  int
	weight        float64
	bStart, bEnd  float64
	warmup        float64
	actQuant      bool
	itersA        int
	lr, p         float64
	actInit       int
	headStem8bit  bool
	noOutputQuant bool
	layerRecon    bool
	seed          uint64
	progress      ProgressFunc
	afterWeights  func(*QuantModel) error
	statePath     string
	resume        bool
	calibN        int
	calibShape    []int
	calibSum      uint64 // FNV-1a of the calibration values, for resume
}

// CheckBits reports whether bits is a supported bit width (2..8).
func CheckBits(what string, bits int) error {
	if bits < 2 || bits > 8 {
		return fmt.Errorf("brecq: %s bits %d, want 2..8", what, bits)
	}
	return nil
}

func (c Config) resolve(calib *tensor.Tensor) (settings, error) {
	s := settings{
		wBits:         cmp.Or(c.WeightBits, DefaultWeightBits),
		aBits:         cmp.Or(c.ActBits, DefaultActBits),
		iters:         max(cmp.Or(c.NumIterations, DefaultNumIterations), 0),
		batch:         cmp.Or(c.BatchSize, DefaultBatchSize),
		weight:        max(cmp.Or(c.Weight, DefaultWeight), 0),
		bStart:        cmp.Or(c.BStart, DefaultBStart),
		bEnd:          cmp.Or(c.BEnd, DefaultBEnd),
		warmup:        max(cmp.Or(c.Warmup, DefaultWarmup), 0),
		actQuant:      c.ActQuant,
		itersA:        max(cmp.Or(c.ItersA, DefaultItersA), 0),
		lr:            cmp.Or(c.LR, DefaultLR),
		p:             cmp.Or(c.P, DefaultP),
		actInit:       cmp.Or(c.ActInitSamples, DefaultActInitSamples),
		headStem8bit:  c.HeadStem8bit,
		noOutputQuant: c.DisableNetworkOutputQuantization,
		layerRecon:    c.LayerReconstruction,
		seed:          c.Seed,
		progress:      c.Progress,
		afterWeights:  c.AfterWeights,
		statePath:     c.StatePath,
		resume:        c.Resume,
	}
	if err := CheckBits("weight", s.wBits); err != nil {
		return s, err
	}
	if err := CheckBits("activation", s.aBits); err != nil {
		return s, err
	}
	switch {
	case calib == nil || calib.Dims() < 2 || calib.Shape[0] < 1:
		return s, errors.New("brecq: the calibration set is empty, want a [N, C, H, W] tensor with N >= 1")
	case s.batch < 1:
		return s, fmt.Errorf("brecq: batch size %d, want at least 1", s.batch)
	case s.actInit < 1:
		return s, fmt.Errorf("brecq: activation init samples %d, want at least 1", s.actInit)
	case !finite(s.bStart) || !finite(s.bEnd) || s.bStart <= 0 || s.bEnd <= 0:
		return s, fmt.Errorf("brecq: temperature range %v..%v, want positive finite values", s.bStart, s.bEnd)
	case !finite(s.weight):
		return s, fmt.Errorf("brecq: rounding weight %v, want a finite value", s.weight)
	case !(s.warmup < 1):
		return s, fmt.Errorf("brecq: warmup %v, want a fraction below 1", s.warmup)
	case !(s.lr > 0) || !finite(s.lr):
		return s, fmt.Errorf("brecq: learning rate %v, want a positive number", s.lr)
	case !(s.p > 0) || !finite(s.p):
		return s, fmt.Errorf("brecq: norm p %v, want a positive number", s.p)
	case s.resume && s.statePath == "":
		return s, errors.New("brecq: Resume needs a StatePath")
	}
	s.calibN = calib.Shape[0]
	s.calibShape = calib.Shape
	h := fnv.New64a()
	var buf [4]byte
	for _, v := range calib.Data {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
		h.Write(buf[:])
	}
	s.calibSum = h.Sum64()
	s.actInit = min(s.actInit, s.calibN)
	return s, nil
}

// fingerprint describes everything that shapes the result, for a readable
// mismatch error on resume.
func (s *settings) fingerprint(model string) string {
	return fmt.Sprintf("model=%s calib=%v/%016x w%da%d iters=%d batch=%d weight=%g b=%g..%g warmup=%g act_quant=%t iters_a=%d lr=%g p=%g act_init=%d head_stem_8bit=%t no_output_quant=%t layer_recon=%t seed=%d",
		model, s.calibShape, s.calibSum, s.wBits, s.aBits, s.iters, s.batch, s.weight, s.bStart, s.bEnd, s.warmup,
		s.actQuant, s.itersA, s.lr, s.p, s.actInit, s.headStem8bit, s.noOutputQuant, s.layerRecon, s.seed)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
