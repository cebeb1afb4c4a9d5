package dgh

import (
	"fmt"
	"math"
	"slices"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/tensor"
)

// statsEps is the reference's variance epsilon, grown x10 while a square
// root is not finite (docs/DESIGN.md, "DGH", step 4).
const statsEps = 1e-6

// bnLayer is one BatchNorm2d of the model with its alignment targets.
type bnLayer struct {
	name       string
	bn         *layers.BatchNorm2d
	mean, std  []float32 // running mean and sqrt(running var + eps)
	meanTiled  *tensor.Tensor
	stdTiled   *tensor.Tensor
	tiledBatch int
}

// recorder holds forward hooks on every BatchNorm2d of a model and keeps
// the input each one saw in the latest forward pass. Inputs are stored by
// the layer's index in definition order, which identifies the layer itself
// rather than the order in which a forward pass happens to reach it.
type recorder struct {
	layers  []*bnLayer
	inputs  []*autograd.Var
	removes []func()
}

// newRecorder finds every BatchNorm2d below net in definition (state_dict)
// order and hooks it.
func newRecorder(net layers.Module) (*recorder, error) {
	r := &recorder{}
	for _, nm := range layers.NamedModules(net) {
		bn, ok := nm.Module.(*layers.BatchNorm2d)
		if !ok {
			continue
		}
		c := bn.RunningMean.Numel()
		if bn.RunningVar.Numel() != c {
			r.remove()
			return nil, fmt.Errorf("dgh: BatchNorm2d %q has %d running means and %d running variances", nm.Name, c, bn.RunningVar.Numel())
		}
		l := &bnLayer{name: nm.Name, bn: bn, mean: append([]float32(nil), bn.RunningMean.Data...)}
		l.std = grownSqrt(bn.RunningVar.Data)
		i := len(r.layers)
		r.layers = append(r.layers, l)
		r.removes = append(r.removes, bn.AddInputHook(func(_ layers.Module, in *autograd.Var) {
			r.inputs[i] = in
		}))
		// The losses take the moments of every BN input: the fused
		// BN pass computes them while it reads the input anyway.
		was := bn.InputMoments
		bn.InputMoments = true
		r.removes = append(r.removes, func() { bn.InputMoments = was })
	}
	if len(r.layers) == 0 {
		return nil, fmt.Errorf("dgh: the model has no BatchNorm2d layer to align")
	}
	r.inputs = make([]*autograd.Var, len(r.layers))
	return r, nil
}

// remove unhooks the model.
func (r *recorder) remove() {
	for _, f := range r.removes {
		f()
	}
	r.removes = nil
}

// forward runs net on x and returns the logits as [N, classes]; every BN
// layer must have seen an input of the batch's size.
func (r *recorder) forward(net layers.Module, x *autograd.Var) (*autograd.Var, error) {
	clear(r.inputs)
	out := layers.Apply(net, x)
	n := x.Shape()[0]
	for i, in := range r.inputs {
		l := r.layers[i]
		if in == nil {
			return nil, fmt.Errorf("dgh: BatchNorm2d %q was not reached by the forward pass", l.name)
		}
		if s := in.Shape(); len(s) != 4 || s[0] != n || s[1] != len(l.mean) {
			return nil, fmt.Errorf("dgh: BatchNorm2d %q input %v, want [%d, %d, H, W]", l.name, s, n, len(l.mean))
		}
	}
	if out == nil || len(out.Shape()) < 2 || out.Shape()[0] != n {
		return nil, fmt.Errorf("dgh: model output %v, want [%d, classes]", shapeOf(out), n)
	}
	if len(out.Shape()) > 2 {
		out = autograd.Reshape(out, n, -1)
	}
	return out, nil
}

func shapeOf(v *autograd.Var) []int {
	if v == nil {
		return nil
	}
	return v.Shape()
}

// layerInput is the activation whose statistics layer l tracks: the image
// for l = 0, the input of BN layer l-1 otherwise.
func (r *recorder) layerInput(img *autograd.Var, l int) *autograd.Var {
	if l == 0 {
		return img
	}
	return r.inputs[l-1]
}

// batchStats is, per layer (image first), the per-channel mean and mean of
// squares over (batch, H, W) of one batch.
type batchStats struct {
	mean, meanSq [][]float32
}

// momentVars computes layer l's per-channel moments as graph nodes.
func momentVars(a *autograd.Var) (mean, meanSq *autograd.Var) {
	return autograd.ChannelMoments(a)
}

// grownSqrt is sqrt(v + eps) with eps = 1e-6 grown x10 until every value
// is finite, as the reference does for slightly negative variances.
func grownSqrt(v []float32) []float32 {
	eps := growEps(v)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(math.Sqrt(float64(x + eps)))
	}
	return out
}

// growEps returns eps = 1e-6 * 10^k for the smallest k that makes every
// v + eps non-negative, so sqrt(v + eps) is not NaN; it is computed in
// float32 like the loss itself.
func growEps(v []float32) float32 {
	eps := float32(statsEps)
	for {
		ok := true
		for _, x := range v {
			if x+eps < 0 {
				ok = false
				break
			}
		}
		if ok || math.IsInf(float64(eps), 0) {
			return eps
		}
		eps *= 10
	}
}

// scalar makes a one-element value a [1] Var so scalars from different
// reductions add up.
func scalar(v *autograd.Var) *autograd.Var { return autograd.Reshape(v, 1) }

// bnLoss is docs/DESIGN.md, "DGH", steps 3-5: batch b's live moments replace its
// stored ones, the moments are averaged over all batches (only batch b's
// carry gradient), and the aggregated means and stds are pulled towards
// the BN targets, every layer weighted 1/(number of layers + 1).
func (g *generator) bnLoss(img *autograd.Var, b int) *autograd.Var {
	nb := len(g.stats)
	nl := len(g.rec.layers) + 1
	w := 1 / float32(nl)
	inv := 1 / float32(nb)
	var meanTerm, stdTerm *autograd.Var
	for l := range nl {
		liveMean, liveMeanSq := momentVars(g.rec.layerInput(img, l))
		c := liveMean.Value.Numel()
		others, othersSq := tensor.New(c), tensor.New(c)
		for j, st := range g.stats {
			if j == b {
				continue
			}
			for ch := range c {
				others.Data[ch] += st.mean[l][ch]
				othersSq.Data[ch] += st.meanSq[l][ch]
			}
		}
		mean := autograd.Scale(autograd.Add(liveMean, autograd.Const(others)), inv)
		meanSq := autograd.Scale(autograd.Add(liveMeanSq, autograd.Const(othersSq)), inv)
		variance := autograd.Sub(meanSq, autograd.Mul(mean, mean))
		std := autograd.Sqrt(autograd.AddScalar(variance, growEps(variance.Value.Data)))

		tMean, tStd := g.target(l)
		dm := autograd.Sub(mean, autograd.Const(tensor.FromSlice(tMean, c)))
		ds := autograd.Sub(std, autograd.Const(tensor.FromSlice(tStd, c)))
		lw := w / float32(c)
		meanTerm = addScalar(meanTerm, autograd.Scale(scalar(autograd.SumSquares(dm)), lw))
		stdTerm = addScalar(stdTerm, autograd.Scale(scalar(autograd.SumSquares(ds)), lw))
	}
	return autograd.Add(meanTerm, autograd.Scale(stdTerm, float32(g.s.stdFactor)))
}

// target is layer l's target mean and std; the image layer's are 0 and
// sqrt(1 + eps).
func (g *generator) target(l int) (mean, std []float32) {
	if l == 0 {
		return g.imageMean, g.imageStd
	}
	bl := g.rec.layers[l-1]
	return bl.mean, bl.std
}

func addScalar(acc, v *autograd.Var) *autograd.Var {
	if acc == nil {
		return v
	}
	return autograd.Add(acc, v)
}

// outputLoss is docs/DESIGN.md, "DGH", step 6: per sample, minus the logit range
// plus hinge penalties keeping the last BN layer's per-sample channel
// means and stds near its targets; averaged over the batch.
func (g *generator) outputLoss(logits *autograd.Var) *autograd.Var {
	l := g.rec.layers[g.lastBN]
	a := g.rec.inputs[g.lastBN]
	n := a.Shape()[0]
	if l.tiledBatch != n {
		l.meanTiled, l.stdTiled = tile(l.mean, n), tile(l.std, n)
		l.tiledBatch = n
	}
	m := autograd.Mean(a, 2, 3)             // [N, C]
	s := autograd.Std(a, []int{2, 3}, true) // [N, C]
	dm := autograd.Sub(m, autograd.Const(l.meanTiled))
	ds := autograd.Sub(s, autograd.Const(l.stdTiled))
	cm := autograd.MaxScalar(autograd.AddScalar(autograd.Mean(autograd.Mul(dm, dm), 1), -0.5), 0)
	cs := autograd.MaxScalar(autograd.AddScalar(autograd.Mean(autograd.Mul(ds, ds), 1), -0.5), 0)
	spread := autograd.Sub(autograd.Max(logits, 1), autograd.Min(logits, 1))
	perSample := autograd.Sub(autograd.Add(cm, cs), spread)
	return scalar(autograd.Mean(perSample, 0))
}

// tile repeats v n times as an [n, len(v)] tensor.
func tile(v []float32, n int) *tensor.Tensor {
	t := tensor.New(n, len(v))
	for i := range n {
		copy(t.Data[i*len(v):], v)
	}
	return t
}

// measure runs a no-gradient forward pass on a batch's finalised images
// and returns its statistics (docs/DESIGN.md, "DGH", step 8 and the start).
func (g *generator) measure(x *tensor.Tensor) (batchStats, error) {
	c := autograd.Const(x)
	c.SetArena(g.arena)
	defer g.arena.Reset()
	defer clear(g.rec.inputs)
	img := g.pipe.finalize(c)
	if _, err := g.rec.forward(g.net, img); err != nil {
		return batchStats{}, err
	}
	nl := len(g.rec.layers) + 1
	st := batchStats{mean: make([][]float32, nl), meanSq: make([][]float32, nl)}
	for l := range nl {
		// Copies: the moments live in the arena, which is reset on return.
		m, ms := momentVars(g.rec.layerInput(img, l))
		st.mean[l], st.meanSq[l] = slices.Clone(m.Value.Data), slices.Clone(ms.Value.Data)
	}
	return st, nil
}
