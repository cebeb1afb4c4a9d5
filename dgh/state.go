package dgh

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/optim"
	"github.com/dghcore/dghcore/tensor"
)

// stateVersion changes whenever savedState's meaning does.
const stateVersion = 2

// savedState is everything a run needs to continue exactly (docs/DESIGN.md,
// "Packages and the flow of a run": cancellation leaves a resumable state). Batch statistics are not
// stored: between two batch steps every batch's statistics are those of
// its finalised images, so they are recomputed from the images on load.
type savedState struct {
	Version  int
	Settings statefile.Settings // everything that shapes the result
	Iter     int
	Pos      int
	Order    []int
	RNG      []byte
	Shape    []int
	Images   []float32
	Optim    []optim.RAdamState
	Sched    []optim.PlateauState
}

// fingerprint lists every setting that changes the images, and the
// model's weights by their digest, so that a state is resumed only by a
// run that would have made it (docs/DESIGN.md, "Command line").
func (s *settings) fingerprint(model string) statefile.Settings {
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return statefile.Settings{
		{Name: "images", Value: strconv.Itoa(s.nImages)},
		{Name: "batch", Value: strconv.Itoa(s.batchSize)},
		{Name: "iterations", Value: strconv.Itoa(s.iterations)},
		{Name: "lr", Value: g(s.lr)},
		{Name: "size", Value: strconv.Itoa(s.imageSize)},
		{Name: "padding", Value: strconv.Itoa(s.padding)},
		{Name: "std_factor", Value: g(s.stdFactor)},
		{Name: "output_loss_factor", Value: g(s.outputLossFactor)},
		{Name: "smoothing", Value: fmt.Sprintf("%d/%s", s.smoothSize, g(s.smoothSigma))},
		{Name: "mean", Value: fmt.Sprint(s.mean)},
		{Name: "std", Value: fmt.Sprint(s.std)},
		{Name: "seed", Value: strconv.FormatUint(s.seed, 10)},
		{Name: "model", Value: model},
	}
}

// save writes the state atomically: a temporary file in the same folder,
// synced, then renamed over path, so a crash never leaves half a state.
func (g *generator) save(path string) (err error) {
	defer func() { g.lastSave = time.Now() }()
	rng, err := g.rng.MarshalBinary()
	if err != nil {
		return fmt.Errorf("dgh: save state: %w", err)
	}
	st := savedState{
		Version: stateVersion, Settings: g.s.fingerprint(g.digest),
		Iter: g.iter, Pos: g.pos, Order: g.order, RNG: rng,
		Shape: g.images.Shape, Images: g.images.Data,
	}
	for _, bt := range g.batches {
		st.Optim = append(st.Optim, bt.opt.State())
		st.Sched = append(st.Sched, bt.sched.State())
	}
	if err := statefile.Write(path, &st); err != nil {
		return fmt.Errorf("dgh: %w", err)
	}
	return nil
}

// load restores a state written by save and recomputes the statistics.
func (g *generator) load(ctx context.Context, path string) error {
	var st savedState
	if err := statefile.Read(path, &st); err != nil {
		return fmt.Errorf("dgh: resume: not a DGH state: %w", err)
	}
	return g.restore(ctx, path, &st)
}

// restore checks a decoded state against this run and takes it over.
func (g *generator) restore(ctx context.Context, path string, st *savedState) error {
	if st.Version != stateVersion {
		return fmt.Errorf("dgh: resume from %s: state version %d, want %d", path, st.Version, stateVersion)
	}
	if diff := st.Settings.Diff(g.s.fingerprint(g.digest)); diff != "" {
		return fmt.Errorf("dgh: resume from %s: the state was made with other settings: %s", path, diff)
	}
	h := g.s.paddedSize()
	nb := g.s.nBatches()
	shape := []int{g.s.nImages, g.s.channels(), h, h}
	switch {
	case len(st.Shape) != 4 || st.Shape[0] != shape[0] || st.Shape[1] != shape[1] || st.Shape[2] != h || st.Shape[3] != h ||
		len(st.Images) != shape[0]*shape[1]*h*h:
		return fmt.Errorf("dgh: resume from %s: images %v (%d values), want %v", path, st.Shape, len(st.Images), shape)
	case st.Iter < 0 || st.Iter > g.s.iterations || st.Pos < 0 || st.Pos >= nb:
		return fmt.Errorf("dgh: resume from %s: position iteration %d batch %d is outside %d x %d", path, st.Iter, st.Pos, g.s.iterations, nb)
	case len(st.Optim) != nb || len(st.Sched) != nb:
		return fmt.Errorf("dgh: resume from %s: %d optimizer and %d scheduler states for %d batches", path, len(st.Optim), len(st.Sched), nb)
	case st.Pos > 0 && !isPerm(st.Order, nb):
		return fmt.Errorf("dgh: resume from %s: batch order %v is not a permutation of %d batches", path, st.Order, nb)
	}
	g.rng = tensor.NewRNG(0)
	if err := g.rng.UnmarshalBinary(st.RNG); err != nil {
		return fmt.Errorf("dgh: resume from %s: %w", path, err)
	}
	g.images = tensor.FromSlice(st.Images, shape...)
	if err := g.makeBatches(); err != nil {
		return err
	}
	for b, bt := range g.batches {
		if err := bt.opt.SetState(st.Optim[b]); err != nil {
			return fmt.Errorf("dgh: resume from %s: batch %d: %w", path, b, err)
		}
		if err := bt.sched.SetState(st.Sched[b]); err != nil {
			return fmt.Errorf("dgh: resume from %s: batch %d: %w", path, b, err)
		}
	}
	g.iter, g.pos, g.order = st.Iter, st.Pos, st.Order
	return g.measureAll(ctx)
}

func isPerm(p []int, n int) bool {
	if len(p) != n {
		return false
	}
	seen := make([]bool, n)
	for _, v := range p {
		if v < 0 || v >= n || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}
