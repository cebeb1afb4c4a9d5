// Package memtest checks that code stays within a fixed memory budget,
// for the tests that feed decoders hostile input (decompression bombs,
// lying headers): refusing such input must cost a small, fixed amount of
// memory, not what the input claims (docs/DESIGN.md, "Command line").
package memtest

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// Within runs f under a Go memory limit of budget bytes and fails t when
// f allocated more than budget bytes in all. Allocation in all bounds the
// peak heap from above, so the check holds however the collector runs;
// the limit makes the collector hold the heap down meanwhile. Tests that
// use it must not run in parallel with others.
func Within(t testing.TB, budget int64, f func()) {
	t.Helper()
	old := debug.SetMemoryLimit(budget)
	defer debug.SetMemoryLimit(old)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if used := int64(after.TotalAlloc - before.TotalAlloc); used > budget {
		t.Errorf("allocated %d MiB, the budget is %d MiB", used>>20, budget>>20)
	}
}
