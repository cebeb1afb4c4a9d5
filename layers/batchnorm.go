package layers

import (
	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// DefaultBNEps is PyTorch's BatchNorm2d eps.
const DefaultBNEps = 1e-5

// BatchNorm2d is PyTorch's nn.BatchNorm2d in evaluation mode: it
// normalises with the running statistics, never with the batch's, and
// never updates them (docs/DESIGN.md, "Packages and the flow of a run": eval mode, running stats).
type BatchNorm2d struct {
	Hooks
	Weight, Bias            *autograd.Var // gamma and beta, [C]
	RunningMean, RunningVar *tensor.Tensor
	Eps                     float32
	// InputMoments asks ApplyBNAct to take the input's per-channel
	// moments while it normalises it and keep them with the input, where
	// autograd.ChannelMoments finds them (DGH measures every BN input).
	InputMoments bool
}

// NewBatchNorm2d returns the identity normalisation PyTorch starts from:
// gamma 1, beta 0, running mean 0, running variance 1, eps 1e-5.
func NewBatchNorm2d(channels int) *BatchNorm2d {
	gamma := tensor.New(channels)
	gamma.Fill(1)
	rv := tensor.New(channels)
	rv.Fill(1)
	return &BatchNorm2d{
		Weight:      autograd.NewVar(gamma, false),
		Bias:        autograd.NewVar(tensor.New(channels), false),
		RunningMean: tensor.New(channels),
		RunningVar:  rv,
		Eps:         DefaultBNEps,
	}
}

// Forward computes gamma*(x-mean)/sqrt(var+eps)+beta per channel of x [N, C, H, W].
func (b *BatchNorm2d) Forward(x *autograd.Var) *autograd.Var {
	return autograd.BatchNorm(x, b.RunningMean, b.RunningVar, b.Weight, b.Bias, b.Eps)
}

// OwnParams lists weight (gamma) and bias (beta).
func (b *BatchNorm2d) OwnParams() []NamedParam {
	return []NamedParam{{Name: "weight", Var: &b.Weight}, {Name: "bias", Var: &b.Bias}}
}

// OwnBuffers lists the running statistics.
func (b *BatchNorm2d) OwnBuffers() []NamedTensor {
	return []NamedTensor{{Name: "running_mean", Tensor: b.RunningMean}, {Name: "running_var", Tensor: b.RunningVar}}
}
