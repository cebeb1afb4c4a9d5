package dgh

import (
	"context"
	"strings"
	"testing"
	"time"
)

// BenchmarkDGHStep times one batch step of DGH (augment, forward, BN and
// output loss, backward, RAdam, scheduler, statistics refresh) with random
// weights; tools/torchref/bench_dgh.py times the same step in PyTorch.
// With one batch the statistics refresh is never needed (see
// generator.stale); the 2batches case alternates two batches, so every
// step refreshes the other one's, the cost with many batches.
func BenchmarkDGHStep(b *testing.B) {
	for _, bc := range []struct {
		name          string
		classes       int
		size, padding int
		batches       int
	}{
		{"resnet18", 1000, 224, 32, 1},
		{"mobilenet_v2", 1000, 224, 32, 1},
		{"resnet20", 10, 32, 4, 1},
		{"resnet20/2batches", 10, 32, 4, 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const batch = 32
			m := randomModel(b, strings.TrimSuffix(bc.name, "/2batches"), 3, bc.classes, 1)
			cfg := Config{NImages: bc.batches * batch, BatchSize: batch, ImageSize: bc.size, Padding: bc.padding,
				Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}
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
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if _, err := g.step(i % bc.batches); err != nil {
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
