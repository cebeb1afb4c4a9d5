// Package zoo builds the networks dghcore quantizes (docs/DESIGN.md, "Models and checkpoints"):
// torchvision-style resnet18 and resnet50, BRECQ's mobilenet_v2 and the
// CIFAR-style resnet20, with PyTorch's state_dict names so BRECQ's released
// checkpoints load without renaming. The block types are exported with
// their fields so the quantizer can take them apart and rebuild them.
package zoo

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/tensor"
)

// Model is a network with what the algorithms need to know about it.
type Model struct {
	Name string
	Net  layers.Module
	Spec Spec
}

// Spec describes a model's input and the per-model constants of DGH
// (docs/DESIGN.md, "DGH").
type Spec struct {
	InputSize int       // square input side in pixels
	Mean, Std []float32 // per-channel normalisation of [0, 1] pixels
	// LastBN is the dotted name of the last BatchNorm2d in definition
	// order, whose input the output loss uses.
	LastBN           string
	OutputLossFactor float32
}

// Forward runs the network through layers.Apply (so hooks on the network
// itself run too); a Model is itself a layers.Module.
func (m *Model) Forward(x *autograd.Var) *autograd.Var { return layers.Apply(m.Net, x) }

// Children makes NamedModules, StateDict and LoadStateDict on a Model
// see the network's modules under the same names as on Net.
func (m *Model) Children() []layers.Named {
	if c, ok := m.Net.(layers.Container); ok {
		return c.Children()
	}
	return nil
}

// Logits evaluates a batch [N, C, H, W] of normalised images without
// recording any gradient.
func (m *Model) Logits(x *tensor.Tensor) *tensor.Tensor { return m.Forward(autograd.Const(x)).Value }

var (
	imageNetMean = []float32{0.485, 0.456, 0.406}
	imageNetStd  = []float32{0.229, 0.224, 0.225}
)

// arch is one entry of the zoo.
type arch struct {
	build func(inCh, classes int) layers.Module
	// stemKey and headKey are the checkpoint weights whose shapes give the
	// input channels (axis 1 of stemKey) and the class count (axis 0 of
	// headKey); inFixed > 0 pins the input channels instead.
	stemKey, headKey string
	inFixed          int
	defaultIn        int
	defaultClasses   int
	spec             func(inCh int) Spec
}

var archs = map[string]arch{
	"resnet18": {
		build:   func(in, cls int) layers.Module { return newImageNetResNet([]int{2, 2, 2, 2}, false, in, cls) },
		stemKey: "conv1.weight", headKey: "fc.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec("layer4.1.bn2", 3e-7),
	},
	"resnet50": {
		build:   func(in, cls int) layers.Module { return newImageNetResNet([]int{3, 4, 6, 3}, true, in, cls) },
		stemKey: "conv1.weight", headKey: "fc.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec("layer4.2.bn3", 1e-7),
	},
	"mobilenet_v2": {
		build:   func(in, cls int) layers.Module { return newMobileNetV2(in, cls) },
		stemKey: "features.0.0.weight", headKey: "classifier.1.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec("features.18.1", 3e-5),
	},
	"resnet20": {
		build:   func(in, cls int) layers.Module { return newResNet20(in, cls) },
		stemKey: "conv1.weight", headKey: "fc.weight", defaultIn: 1, defaultClasses: 10,
		spec: resNet20Spec,
	},
}

func imageNetSpec(lastBN string, outputLossFactor float32) func(int) Spec {
	return func(int) Spec {
		return Spec{
			InputSize: 224, Mean: slices.Clone(imageNetMean), Std: slices.Clone(imageNetStd),
			LastBN: lastBN, OutputLossFactor: outputLossFactor,
		}
	}
}

// resNet20Spec guesses the dataset from the input channels, the only hint a
// checkpoint gives: one channel is the embedded Fashion-MNIST default (28x28,
// its training-set pixel statistics as in tools/fmnist/train.py), three is
// CIFAR (32x32, CIFAR-10 statistics), anything else 32x32 unnormalised. The
// output-loss factor is resnet18's: the paper gives none for resnet20.
func resNet20Spec(inCh int) Spec {
	s := Spec{InputSize: 32, LastBN: "layer3.2.bn2", OutputLossFactor: 3e-7}
	switch inCh {
	case 1:
		s.InputSize, s.Mean, s.Std = 28, []float32{0.2860}, []float32{0.3530}
	case 3:
		s.Mean, s.Std = []float32{0.4914, 0.4822, 0.4465}, []float32{0.2470, 0.2435, 0.2616}
	default:
		s.Mean, s.Std = make([]float32, inCh), make([]float32, inCh)
		for c := range s.Std {
			s.Std[c] = 1
		}
	}
	return s
}

// Names lists the architectures Build knows, sorted.
func Names() []string {
	names := make([]string, 0, len(archs))
	for n := range archs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func lookupArch(name string) (arch, error) {
	a, ok := archs[name]
	if !ok {
		return arch{}, fmt.Errorf("zoo: unknown model %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return a, nil
}

// New returns the named architecture with fresh parameters: zero weights
// and identity BatchNorms (gamma 1, beta 0, mean 0, variance 1).
// inChannels is ignored by the ImageNet models, which take 3.
func New(name string, inChannels, classes int) (*Model, error) {
	a, err := lookupArch(name)
	if err != nil {
		return nil, err
	}
	if a.inFixed > 0 {
		inChannels = a.inFixed
	}
	if inChannels < 1 || classes < 1 {
		return nil, fmt.Errorf("zoo: %s with %d input channels and %d classes", name, inChannels, classes)
	}
	return &Model{Name: name, Net: a.build(inChannels, classes), Spec: a.spec(inChannels)}, nil
}

// Build makes the named architecture and loads sd into it. The class
// count (and resnet20's input channels) come from the checkpoint's shapes;
// a checkpoint of another architecture fails with an error naming every
// missing, unexpected and mis-shaped key (a *torchload.MismatchError).
func Build(name string, sd *torchload.StateDict) (*Model, error) {
	a, err := lookupArch(name)
	if err != nil {
		return nil, err
	}
	inCh := a.inFixed
	if inCh == 0 {
		inCh = dimOf(sd, a.stemKey, 4, 1, a.defaultIn)
	}
	classes := dimOf(sd, a.headKey, 2, 0, a.defaultClasses)
	m, err := New(name, inCh, classes)
	if err != nil {
		return nil, err
	}
	if err := layers.LoadStateDict(m.Net, sd); err != nil {
		return nil, fmt.Errorf("zoo: %s: %w", name, err)
	}
	return m, nil
}

// dimOf is axis ax of the checkpoint tensor key when it exists with the
// expected rank, else def; a wrong tensor is then reported by the load.
func dimOf(sd *torchload.StateDict, key string, rank, ax, def int) int {
	t := sd.Tensors[key]
	if t == nil || len(t.Shape) != rank || t.Shape[ax] < 1 {
		return def
	}
	return t.Shape[ax]
}

// Load reads a PyTorch checkpoint (either serialisation, bare or wrapped,
// see layers/torchload) and builds the named architecture from it.
func Load(name, path string) (*Model, error) {
	if _, err := lookupArch(name); err != nil {
		return nil, err
	}
	sd, err := torchload.Load(path)
	if err != nil {
		return nil, fmt.Errorf("zoo: %s: %w", name, err)
	}
	return Build(name, sd)
}
