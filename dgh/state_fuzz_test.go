package dgh

import (
	"context"
	"os"
	"testing"

	"github.com/dghcore/dghcore/internal/statefile"
	"github.com/dghcore/dghcore/layers"
)

// FuzzResume feeds payloads of state files (framed with a valid checksum,
// so the fuzzer reaches the decoding and the checks behind it) to a
// resume: no payload may panic, and one that is accepted must leave a
// generator in a position it can run from. The seeds are real states saved mid-run. CI runs
// it for a few seconds; run it longer with
//
//	go test -run '^$' -fuzz FuzzResume -fuzztime 60s ./dgh/
func FuzzResume(f *testing.F) {
	model := smallModel(f)
	cfg := Config{NImages: 6, BatchSize: 4, Iterations: 3, Padding: 4, Seed: 7, SaveEvery: 1, StatePath: f.TempDir() + "/state"}
	for _, iters := range []int{1, 2} {
		ctx, cancel := context.WithCancel(context.Background())
		c := cfg
		c.Progress = func(p Progress) {
			if p.Iteration == iters {
				cancel()
			}
		}
		Generate(ctx, model, c)
		cancel()
		data, err := os.ReadFile(cfg.StatePath)
		if err != nil {
			f.Fatal(err)
		}
		payload, err := statefile.Payload(data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(payload)
	}
	s, err := cfg.resolve(model.Spec)
	if err != nil {
		f.Fatal(err)
	}
	digest := layers.Digest(model.Net)
	f.Fuzz(func(t *testing.T, payload []byte) {
		var st savedState
		if err := statefile.Decode(statefile.Frame(payload), &st); err != nil {
			return
		}
		g, err := newGenerator(model, s)
		if err != nil {
			t.Fatal(err)
		}
		defer g.close()
		g.digest = digest
		if err := g.restore(context.Background(), "fuzz", &st); err != nil {
			return
		}
		nb := s.nBatches()
		if len(g.batches) != nb || len(g.stats) != nb || g.iter > s.iterations || g.pos >= nb || (g.pos > 0 && !isPerm(g.order, nb)) {
			t.Fatalf("accepted at iteration %d batch %d of %d batches, order %v", g.iter, g.pos, len(g.batches), g.order)
		}
		if imgs := g.finalImages(); imgs.Shape[0] != s.nImages {
			t.Fatalf("%v images", imgs.Shape)
		}
	})
}
