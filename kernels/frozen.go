package kernels

// Frozen weights (docs/DESIGN.md, "Kernels"). A GEMM route packs a
// convolution's weights into the micro-kernel's panels on every call,
// and the backward to the input flips them first. Where the weights
// cannot change for a while, as a model's throughout DGH's thousand
// iterations, FreezeWeights lets the passes keep each packed form and
// reuse it: no packing sections, no flips, from the second step on.

import (
	"sync"
	"sync/atomic"
)

// packSite names the packing a convolution pass does.
type packSite uint8

const (
	packForward      packSite = iota // convGEMM: w as given
	packFlipped                      // convGEMM: w of the pass it undoes, flipped
	packStridedTrans                 // strided backward-data: w^T per group
)

// packKey tells apart the packed forms of one weight slice: everything
// the packed contents depend on besides the weights.
type packKey struct {
	site                 packSite
	direct               bool
	path                 Path
	c, k, kh, kw, groups int
}

type frozenEntry struct {
	n     int // the frozen slice's length
	refs  int
	packs map[packKey][]float32
}

var frozen struct {
	count atomic.Int32 // entries; none: every lookup returns at once
	mu    sync.Mutex
	m     map[*float32]*frozenEntry
}

// FreezeWeights declares the contents of each of ws unchanged until the
// returned thaw is called, so the convolutions that take one of them as
// their weights (the same slice: first element and length) pack it once
// per pass shape and kernel path and keep the packed form; thaw drops
// those forms. Changing a frozen slice's contents before thawing it is
// an error the convolutions do not see: they go on with the old
// weights. Freezing a slice twice needs two thaws. The packed forms take
// about as much memory as the weights once for each pass that packs them
// (resnet18: forward and backward to the input, about 90 MB).
func FreezeWeights(ws ...[]float32) (thaw func()) {
	type held struct {
		k *float32
		e *frozenEntry
	}
	var mine []held
	frozen.mu.Lock()
	if frozen.m == nil {
		frozen.m = map[*float32]*frozenEntry{}
	}
	for _, w := range ws {
		if len(w) == 0 {
			continue
		}
		k := &w[0]
		e := frozen.m[k]
		if e == nil || e.n != len(w) {
			if e != nil {
				// The same start with another length: a different
				// slice. The newer one wins; the older one's thaw
				// leaves it alone.
				frozen.count.Add(-1)
			}
			e = &frozenEntry{n: len(w), packs: map[packKey][]float32{}}
			frozen.m[k] = e
			frozen.count.Add(1)
		}
		e.refs++
		mine = append(mine, held{k, e})
	}
	frozen.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			frozen.mu.Lock()
			defer frozen.mu.Unlock()
			for _, h := range mine {
				if frozen.m[h.k] != h.e {
					continue // replaced by a slice of another length
				}
				if h.e.refs--; h.e.refs <= 0 {
					delete(frozen.m, h.k)
					frozen.count.Add(-1)
				}
			}
		})
	}
}

// frozenPack returns w's packed form for key when w is frozen and it was
// made before (cached), and whether w is frozen at all: then the caller
// packs into a buffer of its own and hands it to keepPack.
func frozenPack(w []float32, key packKey) (cached []float32, isFrozen bool) {
	if frozen.count.Load() == 0 || len(w) == 0 {
		return nil, false
	}
	frozen.mu.Lock()
	defer frozen.mu.Unlock()
	e := frozen.m[&w[0]]
	if e == nil || e.n != len(w) {
		return nil, false
	}
	return e.packs[key], true
}

// keepPack stores packed as w's form for key, if w is still frozen.
func keepPack(w []float32, key packKey, packed []float32) {
	frozen.mu.Lock()
	defer frozen.mu.Unlock()
	if e := frozen.m[&w[0]]; e != nil && e.n == len(w) {
		e.packs[key] = packed
	}
}

// convPacked is the packed weights one pass uses: a cached form, a new
// one to keep, or scratch to give back.
type convPacked struct {
	a       []float32
	scratch *[]float32
	fresh   bool // a must be filled
	keep    bool // and then kept (keepPack)
}

// packedFor returns the buffer of n floats for w's packed form under
// key: with fresh unset it already holds the form.
func packedFor(w []float32, key packKey, n int) convPacked {
	cached, isFrozen := frozenPack(w, key)
	switch {
	case cached != nil:
		return convPacked{a: cached}
	case isFrozen:
		return convPacked{a: make([]float32, n), fresh: true, keep: true}
	}
	s := getScratch(n)
	return convPacked{a: *s, scratch: s, fresh: true}
}

// done keeps a fresh frozen form, or gives the scratch back.
func (c *convPacked) done(w []float32, key packKey) {
	if c.keep {
		keepPack(w, key, c.a)
	}
	if c.scratch != nil {
		putScratch(c.scratch)
	}
}
