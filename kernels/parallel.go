package kernels

// The fixed worker pool every multi-threaded kernel shares (SPEC section 1,
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

func parLoop() {
	for j := range parQueue {
		j.run()
		j.release()
	}
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
	chunks := min(n, w)
	j := getParJob()
	j.fn, j.n = fn, n
	j.chunk = (n + chunks - 1) / chunks
	j.chunks = int64((n + j.chunk - 1) / j.chunk)
	j.done.Store(0)
	j.next.Store(0)
	j.refs.Store(1)
	for i := 1; i < chunks; i++ {
		j.refs.Add(1)
		select {
		case parQueue <- j:
		default: // queue full: the caller and whoever is free do the work
			j.refs.Add(-1)
		}
	}
	j.run()
	<-j.fin
	j.release()
}
