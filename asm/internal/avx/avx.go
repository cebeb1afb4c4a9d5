// Package avx holds the avo building blocks every generator under asm/
// shares: an 8-lane loop with a masked tail, parameter broadcasts,
// constants and horizontal sums, the physical registers by number and
// the 6x16 register tile's stores (tile.go). It emits AVX2+FMA code.
package avx

import (
	"fmt"
	"go/types"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// VCMPPS predicates (ordered, quiet).
const (
	CmpLT = 0x11
	CmpLE = 0x12
	CmpGE = 0x1d
	CmpGT = 0x1e
)

// Begin starts a generator's output: kernels for package kernels, built
// on amd64 only.
func Begin() {
	Package("github.com/dghcore/dghcore/kernels")
	ConstraintExpr("amd64")
}

// Text starts a kernel: no stack frame, and arguments that do not escape
// so callers keep their slices on the stack.
func Text(name, signature string) {
	TEXT(name, NOSPLIT, signature)
	Pragma("noescape")
}

// Lanes describes one 8-float step of a loop: its byte offset from the
// loop pointers and, for the tail, the lane mask (nil for a full step).
type Lanes struct {
	Off  int
	Mask VecVirtual
}

// Load reads the step's eight floats at base; masked lanes read as zero.
func (l Lanes) Load(base GPVirtual) VecVirtual {
	r := YMM()
	m := Mem{Base: base}.Offset(l.Off)
	if l.Mask == nil {
		VMOVUPS(m, r)
	} else {
		VMASKMOVPS(m, l.Mask, r)
	}
	return r
}

// Store writes the step's lanes of r at base; masked lanes are untouched.
func (l Lanes) Store(r VecVirtual, base GPVirtual) {
	m := Mem{Base: base}.Offset(l.Off)
	if l.Mask == nil {
		VMOVUPS(r, m)
	} else {
		VMASKMOVPS(r, l.Mask, m)
	}
}

// Halves converts the step's eight floats at base to two YMM of four
// float64 each (low lanes first).
func (l Lanes) Halves(base GPVirtual) (lo, hi VecVirtual) {
	lo, hi = YMM(), YMM()
	if l.Mask == nil {
		m := Mem{Base: base}.Offset(l.Off)
		VCVTPS2PD(m, lo)
		VCVTPS2PD(m.Offset(16), hi)
		return lo, hi
	}
	return Widen(l.Load(base))
}

// Widen converts the eight floats of v to two YMM of four float64 each.
func Widen(v VecVirtual) (lo, hi VecVirtual) {
	lo, hi = YMM(), YMM()
	top := XMM()
	VCVTPS2PD(v.AsX(), lo)
	VEXTRACTF128(U8(1), v, top)
	VCVTPS2PD(top, hi)
	return lo, hi
}

// tailMask holds eight all-ones words then eight zeros; the 8 words at
// word offset 8-r select the first r lanes. Emitted on first use.
var tailMask *Mem

func mask() Mem {
	if tailMask == nil {
		m := GLOBL("tailmask", RODATA|NOPTR)
		for i := range 16 {
			v := uint32(0)
			if i < 8 {
				v = 0xffffffff
			}
			DATA(4*i, U32(v))
		}
		tailMask = &m
	}
	return *tailMask
}

// Loop runs body over n floats: unroll steps per iteration while that many
// remain, then single steps, then one masked step. body's first argument
// is the step's index within the iteration (0 outside the unrolled part).
// The pointers in ptrs advance with the loop.
func Loop(n GPVirtual, ptrs []GPVirtual, unroll int, body func(u int, l Lanes)) {
	advance := func(floats int) {
		for _, p := range ptrs {
			ADDQ(U32(4*floats), p)
		}
		SUBQ(U32(floats), n)
	}
	if unroll > 1 {
		Label("unrolled")
		CMPQ(n, U32(8*unroll))
		JB(LabelRef("single"))
		for u := range unroll {
			body(u, Lanes{Off: 32 * u})
		}
		advance(8 * unroll)
		JMP(LabelRef("unrolled"))
	}
	Label("single")
	CMPQ(n, U32(8))
	JB(LabelRef("tail"))
	body(0, Lanes{})
	advance(8)
	JMP(LabelRef("single"))

	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	idx := GP64()
	MOVQ(U32(8), idx)
	SUBQ(n, idx)
	tbl := GP64()
	LEAQ(mask(), tbl)
	m := YMM()
	VMOVUPS(Mem{Base: tbl, Index: idx, Scale: 4}, m)
	body(0, Lanes{Mask: m})
	Label("done")
}

// Broadcast loads a float32 parameter into all eight lanes.
func Broadcast(name string) VecVirtual {
	p, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	y := YMM()
	VBROADCASTSS(p.Addr, y)
	return y
}

// constants holds the constants emitted so far, by symbol name.
var constants = map[string]Mem{}

// Const32 returns a 32-byte constant of eight copies of the word w, usable
// as the memory operand of a packed instruction.
func Const32(w uint32) Mem {
	name := fmt.Sprintf("c32_%08x", w)
	m, ok := constants[name]
	if !ok {
		m = GLOBL(name, RODATA|NOPTR)
		for i := range 8 {
			DATA(4*i, U32(w))
		}
		constants[name] = m
	}
	return m
}

// Float is Const32 of a float32.
func Float(v float32) Mem { return Const32(math.Float32bits(v)) }

// Const64 returns a 32-byte constant of four copies of the quadword w.
func Const64(w uint64) Mem {
	name := fmt.Sprintf("c64_%016x", w)
	m, ok := constants[name]
	if !ok {
		m = GLOBL(name, RODATA|NOPTR)
		for i := range 4 {
			DATA(8*i, U64(w))
		}
		constants[name] = m
	}
	return m
}

// Splat loads the float32 constant v into a register.
func Splat(v float32) VecVirtual {
	y := YMM()
	VMOVUPS(Float(v), y)
	return y
}

// Base loads the data pointer of a slice parameter.
func Base(name string) GPVirtual {
	r := GP64()
	Load(Param(name).Base(), r)
	return r
}

// Len loads the length of a slice parameter.
func Len(name string) GPVirtual {
	r := GP64()
	Load(Param(name).Len(), r)
	return r
}

// Zero returns a zeroed register.
func Zero() VecVirtual {
	z := YMM()
	VXORPS(z, z, z)
	return z
}

// StoreReturn writes the low float (float32 or float64, by the return
// value's type) of x to return value i with a VEX move. avo's Store emits
// the legacy SSE MOVSS/MOVSD; SSE encodings among AVX code with dirty
// upper YMM halves risk a state transition (a legacy MOVQ into an XMM
// register inside an AVX loop cost about 170 cycles a trip on this Zen 3
// machine; these stores measured no cost), so every kernel stays VEX.
func StoreReturn(x VecVirtual, i int) {
	r, err := ReturnIndex(i).Resolve()
	if err != nil {
		panic(err)
	}
	if b, ok := r.Type.Underlying().(*types.Basic); ok && b.Kind() == types.Float32 {
		VMOVSS(x.AsX(), r.Addr)
		return
	}
	VMOVSD(x.AsX(), r.Addr)
}

// HsumPS reduces the eight float32 lanes of v into the low lane of an XMM.
func HsumPS(v VecVirtual) VecVirtual {
	hi := XMM()
	VEXTRACTF128(U8(1), v, hi)
	VADDPS(hi, v.AsX(), hi)
	VHADDPS(hi, hi, hi)
	VHADDPS(hi, hi, hi)
	return hi
}

// HsumPD reduces the four float64 lanes of v into the low lane of an XMM.
func HsumPD(v VecVirtual) VecVirtual {
	hi := XMM()
	VEXTRACTF128(U8(1), v, hi)
	VADDPD(hi, v.AsX(), hi)
	VHADDPD(hi, hi, hi)
	return hi
}
