package kernels

import "fmt"

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

// CopyWindows moves an h x w window between the planes of two batches
// of planes, on the worker pool for large ones: for each plane p < planes
// and row i < h, the w floats at src[p*srcPlane + srcOff + i*srcW] are
// copied to (add: added to) dst[p*dstPlane + dstOff + i*dstW]. A crop
// takes the window out of bigger planes, a pad puts it into them, and
// their gradients go the other way; on one goroutine such a pass over a
// batch of images was the largest part of a 16-thread DGH step that ran
// serially. Adding is dst + src to the bit, as Axpy(1, src, dst).
func CopyWindows(planes, h, w int, dst []float32, dstPlane, dstOff, dstW int,
	src []float32, srcPlane, srcOff, srcW int, add bool) {
	if planes <= 0 || h <= 0 || w <= 0 {
		return
	}
	last := func(plane, off, stride int) int { return (planes-1)*plane + off + (h-1)*stride + w }
	if len(dst) < last(dstPlane, dstOff, dstW) || len(src) < last(srcPlane, srcOff, srcW) {
		panic(fmt.Sprintf("kernels.CopyWindows: %d planes of %dx%d windows overrun dst (%d) or src (%d)",
			planes, h, w, len(dst), len(src)))
	}
	t := newTask(copyWindowsRange)
	t.s[0], t.s[1] = dst, src
	t.n = [3]int{h, w, 0}
	t.win = [6]int{dstPlane, dstOff, dstW, srcPlane, srcOff, srcW}
	t.flag = add
	t.spread(planes, planes*h*w)
	t.release()
}

func copyWindowsRange(t *task, lo, hi int) {
	h, w := t.n[0], t.n[1]
	dp, do, dw, sp, so, sw := t.win[0], t.win[1], t.win[2], t.win[3], t.win[4], t.win[5]
	for p := lo; p < hi; p++ {
		for i := range h {
			d := t.s[0][p*dp+do+i*dw:][:w]
			s := t.s[1][p*sp+so+i*sw:][:w]
			if t.flag {
				active.elementwise.add(d, d, s)
			} else {
				copy(d, s)
			}
		}
	}
}

// FlipRows writes (add: adds) every length-w row of src reversed into
// dst (len(src) floats, a whole number of rows), on the worker pool for
// large slices: the random horizontal flip of DGH's augmentation and its
// gradient.
func FlipRows(dst, src []float32, w int, add bool) {
	if w <= 0 || len(src)%w != 0 || len(dst) < len(src) {
		panic(fmt.Sprintf("kernels.FlipRows: %d floats in rows of %d into %d", len(src), w, len(dst)))
	}
	t := newTask(flipRowsRange)
	t.s[0], t.s[1] = dst, src
	t.n[0], t.flag = w, add
	t.spread(len(src)/w, len(src))
	t.release()
}

func flipRowsRange(t *task, lo, hi int) {
	w := t.n[0]
	for r := lo; r < hi; r++ {
		s, d := t.s[1][r*w:(r+1)*w], t.s[0][r*w:(r+1)*w]
		if t.flag {
			for j, v := range s {
				d[w-1-j] += v
			}
			continue
		}
		for j, v := range s {
			d[w-1-j] = v
		}
	}
}
