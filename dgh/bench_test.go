package dgh

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDGHStep times one batch step of DGH (augment, forward, BN and
// output loss, backward, RAdam, scheduler, statistics refresh) with random
// weights; tools/torchref/bench_dgh.py times the same step in PyTorch.
// Two batches alternate, so every step also refreshes the other batch's
// statistics (a lone batch never needs it, see generator.stale): the
// cost of a step in a real run, and the work the PyTorch script times.
func BenchmarkDGHStep(b *testing.B) {
	imageNet := [2][]float32{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}}
	for _, bc := range []struct {
		name, model   string
		classes       int
		size, padding int
		norm          [2][]float32 // per-channel mean and std
	}{
		{"resnet18", "resnet18", 1000, 224, 32, imageNet},
		{"mobilenet_v2", "mobilenet_v2", 1000, 224, 32, imageNet},
		{"regnetx_600m", "regnetx_600m", 1000, 224, 32, imageNet},
		{"mnasnet", "mnasnet", 1000, 224, 32, imageNet}, // BRECQ's, scale 2.0
		{"resnet20", "resnet20", 10, 32, 4, imageNet},
		// The default run's shapes: one channel, 28 + 4 padding.
		{"resnet20_fmnist", "resnet20", 10, 28, 4, [2][]float32{{0.2860}, {0.3530}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const batch = 32
			const batches = 2
			m := randomModel(b, bc.model, len(bc.norm[0]), bc.classes, 1)
			cfg := Config{NImages: batches * batch, BatchSize: batch, ImageSize: bc.size, Padding: bc.padding,
				Mean: bc.norm[0], Std: bc.norm[1]}
			s, err := cfg.resolve(m.Spec)
			if err != nil {
				b.Fatal(err)
			}
			g, err := newGenerator(m, s)
			if err != nil {
				b.Fatal(err)
			}
			defer g.close()
			if err := g.start(context.Background()); err != nil {
				b.Fatal(err)
			}
			// One untimed step per batch: a batch's first step makes its
			// optimizer's moments (50 MB of fresh pages at resnet18's
			// size), which a long run pays once, not every other step,
			// and PyTorch's side (bench_dgh.py) warms up likewise. Each
			// leaves its batch stale, so every timed step refreshes the
			// other one.
			for bt := range batches {
				if _, err := g.step(bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if _, err := g.step(i % batches); err != nil {
					b.Fatal(err)
				}
			}
			per := time.Since(start).Seconds() / float64(b.N)
			b.ReportMetric(per*1e3, "ms/step")
			b.ReportMetric(batch/per, "images/s")
			if est, err := EstimateMemory(m, cfg); err == nil {
				b.ReportMetric(float64(est)/1e6, "MB-estimated")
			}
		})
	}
}
