package kernels

// Whole-buffer passes on the worker pool: clearing or copying an
// activation-sized buffer (a gradient's first contribution, an arena's
// cleared buffer) on one goroutine left the others idle for a large
// part of a step at 16 threads (docs/DESIGN.md, "Kernels").

// Fill sets every element of dst to v, on the worker pool for large
// slices: clearing an activation-sized gradient buffer on one goroutine
// left the others idle.
func Fill(dst []float32, v float32) {
	n := len(dst)
	t := newTask(fillBlocks)
	t.s[0], t.f[0] = dst, v
	t.spread(numBlocks(n), n)
	t.release()
}

func fillBlocks(t *task, lo, hi int) {
	for k := lo; k < hi; k++ {
		i, j := blockRange(k, len(t.s[0]))
		d := t.s[0][i:j]
		if t.f[0] == 0 {
			clear(d)
			continue
		}
		for e := range d {
			d[e] = t.f[0]
		}
	}
}

// Copy copies src into dst (len(dst) elements), on the worker pool for
// large slices.
func Copy(dst, src []float32) { map2(copyInto, dst, src) }

func copyInto(dst, src []float32) { copy(dst, src) }
