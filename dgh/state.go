package dgh

import (
	"bufio"
	"context"
	"encoding/gob"
	"fmt"
	"os"

	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/optim"
	"github.com/dghcore/dghcore/tensor"
)

// stateVersion changes whenever savedState's meaning does.
const stateVersion = 1

// savedState is everything a run needs to continue exactly (docs/DESIGN.md,
// "Packages and the flow of a run": cancellation leaves a resumable state). Batch statistics are not
// stored: between two batch steps every batch's statistics are those of
// its finalised images, so they are recomputed from the images on load.
type savedState struct {
	Version  int
	Settings string // fingerprint of everything that shapes the result
	Iter     int
	Pos      int
	Order    []int
	RNG      []byte
	Shape    []int
	Images   []float32
	Optim    []optim.RAdamState
	Sched    []optim.PlateauState
}

// fingerprint describes the settings a state belongs to, for a readable
// mismatch error on resume.
func (s *settings) fingerprint() string {
	return fmt.Sprintf("images=%d batch=%d iterations=%d size=%d padding=%d channels=%d std_factor=%g output_loss_factor=%g smoothing=%d/%g mean=%v std=%v",
		s.nImages, s.batchSize, s.iterations, s.imageSize, s.padding, s.channels(),
		s.stdFactor, s.outputLossFactor, s.smoothSize, s.smoothSigma, s.mean, s.std)
}

// save writes the state atomically: a temporary file in the same folder,
// synced, then renamed over path, so a crash never leaves half a state.
func (g *generator) save(path string) (err error) {
	rng, err := g.rng.MarshalBinary()
	if err != nil {
		return fmt.Errorf("dgh: save state: %w", err)
	}
	st := savedState{
		Version: stateVersion, Settings: g.s.fingerprint(),
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
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("dgh: resume: %w", err)
	}
	defer f.Close()
	var st savedState
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&st); err != nil {
		return fmt.Errorf("dgh: resume from %s: not a DGH state: %w", path, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("dgh: resume from %s: state version %d, want %d", path, st.Version, stateVersion)
	}
	if want := g.s.fingerprint(); st.Settings != want {
		return fmt.Errorf("dgh: resume from %s: the state was made with %s, this run has %s", path, st.Settings, want)
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
