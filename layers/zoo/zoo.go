// Package zoo builds the networks dghcore quantizes (docs/DESIGN.md,
// "Models and checkpoints"): the ResNet family in torchvision's layout
// (which BRECQ's resnet18 and resnet50 share), BRECQ's mobilenet_v2 beside
// torchvision's key names for it, BRECQ's pycls-style RegNetX, MNASNet
// and the CIFAR-style resnet20, with PyTorch's state_dict names so the
// published checkpoints load without renaming. The block types are
// exported with their fields so the quantizer can take them apart and
// rebuild them.
//
// An architecture's name fixes its design (blocks per stage, block kind,
// kernel sizes, strides, expansion, grouping); the widths are read from
// the checkpoint, so BRECQ's MNASNet 2.0 and torchvision's MNASNet 1.0
// are both mnasnet, and a narrowed instance (NewNarrow) is still its
// architecture. Recognize names the architecture of a checkpoint from its
// keys and shapes alone.
package zoo

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/tensor"
)

// Model is a network with what the algorithms need to know about it.
type Model struct {
	Name   string
	Layout Layout // the key layout it was built in
	Net    layers.Module
	Spec   Spec
}

// Layout names a state_dict key layout.
type Layout string

// The key layouts of the zoo. BRECQ's ResNets and MNASNet use
// torchvision's names, so they are LayoutTorchvision.
const (
	LayoutBRECQ       Layout = "BRECQ"
	LayoutTorchvision Layout = "torchvision"
)

// Spec describes a model's input and the per-model constants of DGH and
// BRECQ (docs/DESIGN.md, "Models and checkpoints").
type Spec struct {
	InputSize int       // square input side in pixels
	Mean, Std []float32 // per-channel normalisation of [0, 1] pixels
	// LastBN is the dotted name of the last BatchNorm2d in definition
	// (state_dict) order, whose input the output loss uses.
	LastBN           string
	OutputLossFactor float32
	// RoundingWeight is the weight of AdaRound's rounding term the
	// reference uses for this model (brecq.Config.Weight).
	RoundingWeight float64
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

// family makes the networks of one architecture in one layout from
// their widths.
type family interface {
	// published is the configuration of the published network with every
	// width divided by div (div 1: the published widths).
	published(div int) config
	// read is the configuration sd's shapes choose, the published widths
	// standing in for any that sd lacks, so that a load can then name
	// every key that does not fit.
	read(sd *torchload.StateDict) config
	// fits reports whether sd's shapes follow the design where its key
	// names cannot tell two architectures apart (ResNet's grouping and
	// bottleneck width).
	fits(sd *torchload.StateDict) bool
}

// config is a network's complete configuration.
type config interface {
	build(inCh, classes int) layers.Module
}

// arch is one entry of the zoo: an architecture in one key layout.
type arch struct {
	name   string
	layout Layout
	family family
	// source is where the published checkpoint is downloaded from.
	source string
	// stemKey and headKey are the checkpoint weights whose shapes give the
	// input channels (axis 1 of stemKey) and the class count (axis 0 of
	// headKey); inFixed > 0 pins the input channels instead.
	stemKey, headKey string
	inFixed          int
	defaultIn        int
	defaultClasses   int
	spec             func(inCh int) Spec
}

const (
	brecqReleases = "https://github.com/yhhhli/BRECQ/releases/download/v1.0/"
	torchvision   = "https://download.pytorch.org/models/"
)

// archs lists the zoo in the order Recognize prefers on a tie and New
// takes the layout of a name: BRECQ's layout first where it has its own.
//
// Rounding weights are BRECQ's and QDrop's (the same authors' per-model
// settings for these checkpoints): 0.01, 0.1 for mobilenet_v2, 0.2 for
// mnasnet. The DGH reference publishes output-loss factors for resnet18
// (3e-7), resnet50 (1e-7) and mobilenet_v2 (3e-5); the others take the
// factor of their closest relative: resnet18's for the BasicBlock ResNets,
// resnet50's for the bottleneck ResNets and RegNetX, mobilenet_v2's for
// MNASNet's inverted residuals (docs/DESIGN.md, "Models and checkpoints").
var archs = []arch{
	resNetArch("resnet18", basicResNet(2, 2, 2, 2), brecqReleases+"resnet18_imagenet.pth.tar", 3e-7),
	resNetArch("resnet34", basicResNet(3, 4, 6, 3), torchvision+"resnet34-b627a593.pth", 3e-7),
	resNetArch("resnet50", bottleneckResNet(1, 64, 3, 4, 6, 3), brecqReleases+"resnet50_imagenet.pth.tar", 1e-7),
	resNetArch("resnet101", bottleneckResNet(1, 64, 3, 4, 23, 3), torchvision+"resnet101-63fe2227.pth", 1e-7),
	resNetArch("resnet152", bottleneckResNet(1, 64, 3, 8, 36, 3), torchvision+"resnet152-394f9c45.pth", 1e-7),
	resNetArch("wide_resnet50_2", bottleneckResNet(1, 128, 3, 4, 6, 3), torchvision+"wide_resnet50_2-95faca4d.pth", 1e-7),
	resNetArch("resnext50_32x4d", bottleneckResNet(32, 4, 3, 4, 6, 3), torchvision+"resnext50_32x4d-7cdf4587.pth", 1e-7),
	{
		name: "mobilenet_v2", layout: LayoutBRECQ, family: mobileNetV2Family{LayoutBRECQ},
		source:  brecqReleases + "mobilenetv2.pth.tar",
		stemKey: "features.0.0.weight", headKey: "classifier.1.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec(3e-5, 0.1),
	},
	{
		name: "mobilenet_v2", layout: LayoutTorchvision, family: mobileNetV2Family{LayoutTorchvision},
		source:  torchvision + "mobilenet_v2-b0353104.pth",
		stemKey: "features.0.0.weight", headKey: "classifier.1.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec(3e-5, 0.1),
	},
	regNetArch("regnetx_600m", regNetX600M, brecqReleases+"regnet_600m.pth.tar"),
	regNetArch("regnetx_3200m", regNetX3200M, brecqReleases+"regnet_3200m.pth.tar"),
	{
		name: "mnasnet", layout: LayoutTorchvision, family: mnasNetFamily{},
		source:  brecqReleases + "mnasnet.pth.tar",
		stemKey: "layers.0.weight", headKey: "classifier.1.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec(3e-5, 0.2),
	},
	{
		name: "resnet20", layout: LayoutTorchvision, family: resNetFamily{&resNet20},
		stemKey: "conv1.weight", headKey: "fc.weight", defaultIn: 1, defaultClasses: 10,
		spec: resNet20Spec,
	},
}

func resNetArch(name string, d *resNetDesign, source string, outputLossFactor float32) arch {
	return arch{
		name: name, layout: LayoutTorchvision, family: resNetFamily{d}, source: source,
		stemKey: "conv1.weight", headKey: "fc.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec(outputLossFactor, 0.01),
	}
}

func regNetArch(name string, d *regNetDesign, source string) arch {
	return arch{
		name: name, layout: LayoutBRECQ, family: regNetFamily{d}, source: source,
		stemKey: "stem.conv.weight", headKey: "head.fc.weight", inFixed: 3, defaultClasses: 1000,
		spec: imageNetSpec(1e-7, 0.01),
	}
}

func imageNetSpec(outputLossFactor float32, roundingWeight float64) func(int) Spec {
	return func(int) Spec {
		return Spec{
			InputSize: 224, Mean: slices.Clone(imageNetMean), Std: slices.Clone(imageNetStd),
			OutputLossFactor: outputLossFactor, RoundingWeight: roundingWeight,
		}
	}
}

// resNet20Spec guesses the dataset from the input channels, the only hint a
// checkpoint gives: one channel is the embedded Fashion-MNIST default (28x28,
// its training-set pixel statistics as in tools/fmnist/train.py), three is
// CIFAR (32x32, CIFAR-10 statistics), anything else 32x32 unnormalised. The
// output-loss factor is resnet18's: the paper gives none for resnet20.
func resNet20Spec(inCh int) Spec {
	s := Spec{InputSize: 32, OutputLossFactor: 3e-7, RoundingWeight: 0.01}
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
	var names []string
	for _, a := range archs {
		if !slices.Contains(names, a.name) {
			names = append(names, a.name)
		}
	}
	slices.Sort(names)
	return names
}

// Layouts lists the key layouts name is known in, the one New builds
// first.
func Layouts(name string) []Layout {
	var ls []Layout
	for _, a := range archs {
		if a.name == name {
			ls = append(ls, a.layout)
		}
	}
	return ls
}

// Source is the URL of the published checkpoint of name (its first
// layout's), and the file name it is saved under.
func Source(name string) (url, file string, ok bool) {
	a, err := lookupArch(name, "")
	if err != nil || a.source == "" {
		return "", "", false
	}
	return a.source, path.Base(a.source), true
}

// lookupArch finds name in layout ("" for its first layout).
func lookupArch(name string, layout Layout) (*arch, error) {
	for i := range archs {
		if a := &archs[i]; a.name == name && (layout == "" || a.layout == layout) {
			return a, nil
		}
	}
	if layout != "" && len(Layouts(name)) > 0 {
		return nil, fmt.Errorf("zoo: %s has no %s layout (known: %s)", name, layout, joinLayouts(Layouts(name)))
	}
	return nil, fmt.Errorf("zoo: unknown model %q (known: %s)", name, strings.Join(Names(), ", "))
}

func joinLayouts(ls []Layout) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = string(l)
	}
	return strings.Join(s, ", ")
}

// New returns the named architecture at its published widths with fresh
// parameters: zero weights and identity BatchNorms (gamma 1, beta 0,
// mean 0, variance 1), in the first layout Layouts lists. inChannels is
// ignored by the ImageNet models, which take 3.
func New(name string, inChannels, classes int) (*Model, error) {
	return NewNarrow(name, "", inChannels, classes, 1)
}

// NewNarrow is New in the given layout ("" for the first) with every
// width divided by div (rounded down, at least 1; a RegNetX keeps its
// group counts, a ResNeXt one channel per group), for tests and
// experiments that need the design without its cost.
func NewNarrow(name string, layout Layout, inChannels, classes, div int) (*Model, error) {
	a, err := lookupArch(name, layout)
	if err != nil {
		return nil, err
	}
	if a.inFixed > 0 {
		inChannels = a.inFixed
	}
	if inChannels < 1 || classes < 1 || div < 1 {
		return nil, fmt.Errorf("zoo: %s with %d input channels, %d classes, widths divided by %d", name, inChannels, classes, div)
	}
	return a.model(a.family.published(div).build(inChannels, classes), inChannels), nil
}

func (a *arch) model(net layers.Module, inCh int) *Model {
	s := a.spec(inCh)
	s.LastBN = lastBN(net)
	return &Model{Name: a.name, Layout: a.layout, Net: net, Spec: s}
}

// lastBN is the dotted name of net's last BatchNorm2d in definition order.
func lastBN(net layers.Module) string {
	last := ""
	for _, nm := range layers.NamedModules(net) {
		if _, ok := nm.Module.(*layers.BatchNorm2d); ok {
			last = nm.Name
		}
	}
	return last
}

// Build makes the named architecture and loads sd into it. The widths,
// the class count (and resnet20's input channels) come from the
// checkpoint's shapes, and of a name known in several layouts the one
// whose keys sd uses is taken; a checkpoint of another architecture fails
// with an error naming every missing, unexpected and mis-shaped key (a
// *torchload.MismatchError).
func Build(name string, sd *torchload.StateDict) (*Model, error) {
	if _, err := lookupArch(name, ""); err != nil {
		return nil, err
	}
	var best *arch
	bestDist := 0
	for i := range archs {
		if a := &archs[i]; a.name == name {
			if d := a.keyDistance(sd); best == nil || d < bestDist {
				best, bestDist = a, d
			}
		}
	}
	return best.build(sd)
}

// build makes a's network at sd's widths and loads sd into it.
func (a *arch) build(sd *torchload.StateDict) (*Model, error) {
	inCh := a.inFixed
	if inCh == 0 {
		inCh = dimOf(sd, a.stemKey, 4, 1, a.defaultIn)
	}
	classes := dimOf(sd, a.headKey, 2, 0, a.defaultClasses)
	m := a.model(a.family.read(sd).build(inCh, classes), inCh)
	if err := layers.LoadStateDict(m.Net, sd); err != nil {
		return nil, fmt.Errorf("zoo: %s: %w", a.name, err)
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
	if _, err := lookupArch(name, ""); err != nil {
		return nil, err
	}
	sd, err := torchload.Load(path)
	if err != nil {
		return nil, fmt.Errorf("zoo: %s: %w", name, err)
	}
	return Build(name, sd)
}
