package kernels

import (
	"sync/atomic"
	"testing"
)

// TestParallelFor checks that the ranges cover [0, n) exactly once, also
// when calls nest (the caller works too, so nesting cannot deadlock).
func TestParallelFor(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 64, 1000} {
		hits := make([]atomic.Int32, n)
		parallelFor(n, func(lo, hi int) {
			if lo < 0 || hi > n || lo >= hi {
				t.Errorf("n=%d: bad range [%d, %d)", n, lo, hi)
				return
			}
			for i := lo; i < hi; i++ {
				// Nested calls over a small inner range.
				parallelFor(3, func(a, b int) {
					for range b - a {
						hits[i].Add(1)
					}
				})
			}
		})
		for i := range hits {
			if got := hits[i].Load(); got != 3 {
				t.Fatalf("n=%d: item %d visited %d times, want 3", n, i, got)
			}
		}
	}
}
