package kernels

// The fixed worker pool every multi-threaded kernel shares (docs/DESIGN.md, "Kernels",
// kernels: "work is split over a fixed pool of goroutines sized by
// GOMAXPROCS").
//
// The caller of parallelFor works too and claims chunks from the same
// atomic counter as the pool, so a parallelFor nested inside another can
// never deadlock: if no worker is free, the caller simply runs every chunk
// itself. Jobs are recycled through a free list, so a call allocates
// nothing once warm.

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// parJob is one parallelFor call: n items cut into chunks of size chunk.
type parJob struct {
	fn     func(lo, hi int)
	n      int
	chunk  int
	chunks int64
	next   atomic.Int64 // next chunk to claim
	done   atomic.Int64 // chunks finished
	refs   atomic.Int32 // holders: the caller and every queued copy
	fin    chan struct{}
}

var (
	parQueue   = make(chan *parJob, 256)
	parMu      sync.Mutex
	parStarted int // pool goroutines running
	// parFree recycles jobs. Not a sync.Pool: the last holder of a job is
	// often a pool goroutine, whose per-P private slot the caller's P
	// cannot reach, so a sync.Pool would keep allocating.
	parFree = make(chan *parJob, 64)
)

func getParJob() *parJob {
	select {
	case j := <-parFree:
		return j
	default:
		return &parJob{fin: make(chan struct{}, 1)}
	}
}

// parWorkers is the number of goroutines (the caller included) a
// parallelFor may use now: GOMAXPROCS, read per call so `go test -cpu 1,2`
// measures what it says. The pool grows to match, never shrinks.
func parWorkers() int {
	w := runtime.GOMAXPROCS(0)
	if w > 1 {
		parMu.Lock()
		for parStarted < w-1 {
			parStarted++
			go parLoop()
		}
		parMu.Unlock()
	}
	return w
}

// parSpin is how long a pool goroutine with nothing to do, or a caller
// waiting for the last chunk, polls before parking. Waking a parked
// goroutine takes a futex and, on a virtual machine, often a halted vCPU:
// tens of microseconds, as long as many of the parallel sections here (a
// per-channel pass over a ResNet-20 activation), so without it the
// caller did most of their work alone. OpenMP runtimes spin likewise.
// A millisecond outlasts nearly every gap between the sections of a DGH
// step: at 100 µs, 40 of mobilenet_v2's 379 sections a step (2 threads)
// found the other worker parked, which then started 20-110 µs late; at
// 1 ms, 2 did, and the workers' busy share inside the sections rose from
// 93-94% to 97-98% (resnet18: 96% to 96-97%).
const parSpin = time.Millisecond

func parLoop() {
	for {
		j := pollJob()
		if j == nil {
			j = <-parQueue
		}
		j.run()
		j.release()
	}
}

// pollJob returns the next queued job, or nil when none came within
// parSpin.
func pollJob() (j *parJob) {
	if poll(func() bool {
		select {
		case j = <-parQueue:
			return true
		default:
			return false
		}
	}) {
		return j
	}
	return nil
}

// poll calls done until it reports true, or parSpin has passed (the
// clock read every 64 calls), and reports whether it did.
func poll(done func() bool) bool {
	start := time.Now()
	for i := 1; !done(); i++ {
		if i%64 == 0 && time.Since(start) > parSpin {
			return false
		}
	}
	return true
}

// run claims and executes chunks until none is left.
func (j *parJob) run() {
	for {
		c := j.next.Add(1) - 1
		if c >= j.chunks {
			return
		}
		lo := int(c) * j.chunk
		hi := min(lo+j.chunk, j.n)
		j.fn(lo, hi)
		if j.done.Add(1) == j.chunks {
			j.fin <- struct{}{}
		}
	}
}

// release drops one holder; the last one recycles the job, so a worker
// that dequeues a job late never sees it reused under its feet.
func (j *parJob) release() {
	if j.refs.Add(-1) == 0 {
		j.fn = nil
		select {
		case parFree <- j:
		default:
		}
	}
}

// parallelFor calls fn over disjoint ranges [lo, hi) covering [0, n), on
// up to GOMAXPROCS goroutines, and returns when all have finished. fn must
// be safe to run concurrently on disjoint ranges.
func parallelFor(n int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	w := 1
	if n > 1 {
		w = parWorkers()
	}
	if w == 1 {
		fn(0, n)
		return
	}
	// Four chunks per goroutine: whoever finishes early (a worker woken
	// late, a core the host lent elsewhere for a while) takes over
	// chunks instead of waiting for the last one.
	chunks := min(n, 4*w)
	j := getParJob()
	j.fn, j.n = fn, n
	j.chunk = (n + chunks - 1) / chunks
	j.chunks = int64((n + j.chunk - 1) / j.chunk)
	j.done.Store(0)
	j.next.Store(0)
	j.refs.Store(1)
	for i := 1; i < min(chunks, w); i++ {
		j.refs.Add(1)
		select {
		case parQueue <- j:
		default: // queue full: the caller and whoever is free do the work
			j.refs.Add(-1)
		}
	}
	j.run()
	// The other chunks are running: poll for them a while (see parSpin)
	// before parking. fin is still drained, the last chunk always sends.
	poll(func() bool { return j.done.Load() >= j.chunks })
	<-j.fin
	j.release()
}

// SpreadRows calls fn over disjoint ranges [lo, hi) covering [0, rows)
// of a rows x cols array: on the pool when there is enough work
// (parallelMinWork values) to pay for waking it, else at once on the
// calling goroutine. fn must be safe to run concurrently on disjoint
// ranges; a row's result must not depend on the others', so it does not
// depend on the worker count. For the row-wise reductions of other
// packages (autograd's Mean and Std over trailing axes).
func SpreadRows(rows, cols int, fn func(lo, hi int)) {
	switch {
	case rows <= 0:
	case rows == 1 || rows*cols < parallelMinWork:
		fn(0, rows)
	default:
		parallelFor(rows, fn)
	}
}
