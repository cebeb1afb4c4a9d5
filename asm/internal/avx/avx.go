// Package avx holds the avo building blocks every generator under asm/
// shares: a loop with a masked tail, parameter broadcasts, constants,
// lane masks and horizontal sums, the physical registers by number and
// the 6x16 register tile's stores (tile.go). It emits AVX2+FMA code on
// YMM registers or, after Use(AVX512), AVX-512 code on ZMM registers
// with opmask registers for the tails and the lane predicates
// (docs/DESIGN.md, "Kernels"): a generator written against it emits both.
package avx

import (
	"fmt"
	"go/types"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// VCMPPS predicates (ordered, quiet), and not-equal (unordered).
const (
	CmpLT = 0x11
	CmpLE = 0x12
	CmpNE = 0x04
	CmpGE = 0x1d
	CmpGT = 0x1e
)

// Begin starts a generator's output: kernels for package kernels, built
// on amd64 only.
func Begin() {
	Package("github.com/dghcore/dghcore/kernels")
	ConstraintExpr("amd64")
}

// Width is one vector width the package emits.
type Width struct {
	name  string // the kernels' name suffix
	lanes int    // float32 lanes of a register
}

// The widths: 8 lanes (AVX2, YMM) and 16 (AVX-512F/DQ, ZMM).
var (
	AVX2   = Width{"AVX2", 8}
	AVX512 = Width{"AVX512", 16}
)

// w is the width in use.
var w = AVX2

// Use makes the following kernels use width v.
func Use(v Width) { w = v }

// Name is base with the width's suffix: the kernel's symbol.
func Name(base string) string { return base + w.name }

// Lanes32 is the number of float32 lanes of a register.
func Lanes32() int { return w.lanes }

func is512() bool { return w.lanes == 16 }

// VecReg allocates a vector register of the width.
func VecReg() VecVirtual {
	if is512() {
		return ZMM()
	}
	return YMM()
}

// Text starts a kernel: no stack frame, and arguments that do not escape
// so callers keep their slices on the stack.
func Text(name, signature string) {
	TEXT(name, NOSPLIT, signature)
	Pragma("noescape")
}

// Mask is a per-lane predicate: a vector of all-ones or zero lanes (AVX2)
// or an opmask register (AVX-512). The zero Mask selects every lane.
type Mask struct{ r Register }

// All reports whether m is the zero Mask, every lane.
func (m Mask) All() bool { return m.r == nil }

// Cmp returns the lanes where src1 pred src2 (Go operand order, as
// VCMPPS).
func Cmp(pred uint8, src2, src1 Op) Mask {
	if is512() {
		k := K()
		VCMPPS(U8(pred), src2, src1, k)
		return Mask{k}
	}
	m := YMM()
	VCMPPS(U8(pred), src2, src1, m)
	return Mask{m}
}

// And returns the lanes of both m and o (m if o is the zero Mask).
func (m Mask) And(o Mask) Mask {
	switch {
	case o.All():
		return m
	case m.All():
		return o
	case is512():
		k := K()
		KANDW(o.r, m.r, k)
		return Mask{k}
	}
	VANDPS(o.r, m.r, m.r)
	return m
}

// Or returns the lanes of m or o (neither the zero Mask), in a new mask.
func (m Mask) Or(o Mask) Mask {
	if is512() {
		k := K()
		KORW(o.r, m.r, k)
		return Mask{k}
	}
	r := YMM()
	VORPS(o.r, m.r, r)
	return Mask{r}
}

// AndNot returns the lanes of o that are not lanes of m (neither the zero
// Mask); on AVX2 it overwrites o.
func (m Mask) AndNot(o Mask) Mask {
	if is512() {
		k := K()
		KANDNW(o.r, m.r, k)
		return Mask{k}
	}
	VANDNPS(o.r, m.r, o.r)
	return o
}

// Keep zeroes the lanes of v outside m, in place.
func Keep(m Mask, v VecVirtual) {
	if m.All() {
		return
	}
	if is512() {
		VMOVAPS_Z(v, m.r, v)
		return
	}
	VANDPS(m.r, v, v)
}

// Select returns a new register holding a in the lanes of m (not the zero
// Mask) and zero elsewhere.
func Select(m Mask, a Op) VecVirtual {
	r := VecReg()
	if is512() {
		VMOVUPS_Z(a, m.r, r)
		return r
	}
	VANDPS(a, m.r, r)
	return r
}

// Outside returns a new register holding v outside the lanes of m (not
// the zero Mask) and zero inside.
func Outside(m Mask, v VecVirtual) VecVirtual {
	r := VecReg()
	if is512() {
		k := K()
		KNOTW(m.r, k)
		VMOVAPS_Z(v, k, r)
		return r
	}
	VANDNPS(v, m.r, r)
	return r
}

// Blend sets dst to a in the lanes of m and to b elsewhere (b a
// register, a also memory).
func Blend(m Mask, a Op, b, dst VecVirtual) {
	if is512() {
		VBLENDMPS(a, b, m.r, dst)
		return
	}
	VBLENDVPS(m.r, a, b, dst)
}

// NoLanes returns a mask of no lanes, to accumulate into with OrIn.
func NoLanes() Mask {
	if is512() {
		k := K()
		KXORW(k, k, k)
		return Mask{k}
	}
	return Mask{Zero()}
}

// OrIn adds the lanes of o (not the zero Mask) to m, in place: a mask
// carried across a loop's trips.
func (m Mask) OrIn(o Mask) {
	if is512() {
		KORW(o.r, m.r, m.r)
		return
	}
	VORPS(o.r, m.r, m.r)
}

// Bits returns a general register that is nonzero when m has any lane.
func Bits(m Mask) GPVirtual {
	r := GP32()
	if is512() {
		KMOVW(m.r, r)
	} else {
		VMOVMSKPS(m.r, r)
	}
	return r
}

// Round rounds the lanes of src into dst with VROUNDPS mode (0 to
// nearest even, 1 down): VRNDSCALEPS with the same mode on ZMM.
func Round(mode uint8, src, dst VecVirtual) {
	if is512() {
		VRNDSCALEPS(U8(mode), src, dst)
		return
	}
	VROUNDPS(U8(mode), src, dst)
}

// Lanes describes one step of a loop, a register of floats: its byte
// offset from the loop pointers and, for the tail, the lane mask (the
// zero Mask for a full step).
type Lanes struct {
	Off  int
	Mask Mask
}

// Load reads the step's floats at base; masked lanes read as zero.
func (l Lanes) Load(base GPVirtual) VecVirtual {
	r := VecReg()
	m := Mem{Base: base}.Offset(l.Off)
	switch {
	case l.Mask.All():
		VMOVUPS(m, r)
	case is512():
		VMOVUPS_Z(m, l.Mask.r, r)
	default:
		VMASKMOVPS(m, l.Mask.r, r)
	}
	return r
}

// Store writes the step's lanes of r at base; masked lanes are untouched.
func (l Lanes) Store(r VecVirtual, base GPVirtual) {
	m := Mem{Base: base}.Offset(l.Off)
	switch {
	case l.Mask.All():
		VMOVUPS(r, m)
	case is512():
		VMOVUPS(r, l.Mask.r, m)
	default:
		VMASKMOVPS(r, l.Mask.r, m)
	}
}

// Halves converts the step's floats at base to two registers of float64
// (low lanes first).
func (l Lanes) Halves(base GPVirtual) (lo, hi VecVirtual) {
	if l.Mask.All() {
		lo, hi = VecReg(), VecReg()
		m := Mem{Base: base}.Offset(l.Off)
		VCVTPS2PD(m, lo)
		VCVTPS2PD(m.Offset(2*w.lanes), hi)
		return lo, hi
	}
	return Widen(l.Load(base))
}

// Widen converts the floats of v to two registers of float64.
func Widen(v VecVirtual) (lo, hi VecVirtual) {
	if is512() {
		return halves(v, VCVTPS2PD, func(i, v, top Op) { VEXTRACTF32X8(i, v, top) })
	}
	return halves(v, VCVTPS2PD, VEXTRACTF128)
}

// WidenInt sign-extends the int32 lanes of v to two registers of int64.
func WidenInt(v VecVirtual) (lo, hi VecVirtual) {
	if is512() {
		return halves(v, VPMOVSXDQ, func(i, v, top Op) { VEXTRACTI32X8(i, v, top) })
	}
	return halves(v, VPMOVSXDQ, VEXTRACTI128)
}

// halves widens the low and the high half of v into a register each with
// widen, the high half taken out by extract.
func halves(v VecVirtual, widen func(ops ...Op), extract func(i, v, top Op)) (lo, hi VecVirtual) {
	lo, hi = VecReg(), VecReg()
	var low, top Op
	if is512() {
		low, top = v.AsY(), YMM()
	} else {
		low, top = v.AsX(), XMM()
	}
	widen(low, lo)
	extract(U8(1), v, top)
	widen(top, hi)
	return lo, hi
}

// tailMask holds, for AVX2, eight all-ones words then eight zeros (the 8
// words at word offset 8-r select the first r lanes) and, for AVX-512,
// the 16-bit masks of the first r lanes, r = 0..16. Emitted on first use.
var tailMask = map[int]Mem{}

func mask() Mem {
	m, ok := tailMask[w.lanes]
	if ok {
		return m
	}
	if is512() {
		m = GLOBL("tailmask16", RODATA|NOPTR)
		for r := range 17 {
			DATA(2*r, U16(1<<r-1))
		}
	} else {
		m = GLOBL("tailmask", RODATA|NOPTR)
		for i := range 16 {
			v := uint32(0)
			if i < 8 {
				v = 0xffffffff
			}
			DATA(4*i, U32(v))
		}
	}
	tailMask[w.lanes] = m
	return m
}

// tail returns the mask of the first n lanes, 0 < n < Lanes32().
func tail(n GPVirtual) Mask {
	if is512() {
		tbl, r := GP64(), GP32()
		LEAQ(mask(), tbl)
		MOVWLZX(Mem{Base: tbl, Index: n, Scale: 2}, r)
		k := K()
		KMOVW(r, k)
		return Mask{k}
	}
	idx := GP64()
	MOVQ(U32(8), idx)
	SUBQ(n, idx)
	tbl := GP64()
	LEAQ(mask(), tbl)
	m := YMM()
	VMOVUPS(Mem{Base: tbl, Index: idx, Scale: 4}, m)
	return Mask{m}
}

// Loop runs body over n floats: unroll steps per iteration while that many
// remain, then single steps, then one masked step. body's first argument
// is the step's index within the iteration (0 outside the unrolled part).
// The pointers in ptrs advance with the loop.
func Loop(n GPVirtual, ptrs []GPVirtual, unroll int, body func(u int, l Lanes)) {
	lanes := w.lanes
	advance := func(floats int) {
		for _, p := range ptrs {
			ADDQ(U32(4*floats), p)
		}
		SUBQ(U32(floats), n)
	}
	if unroll > 1 {
		Label("unrolled")
		CMPQ(n, U32(lanes*unroll))
		JB(LabelRef("single"))
		for u := range unroll {
			body(u, Lanes{Off: 4 * lanes * u})
		}
		advance(lanes * unroll)
		JMP(LabelRef("unrolled"))
	}
	Label("single")
	CMPQ(n, U32(lanes))
	JB(LabelRef("tail"))
	body(0, Lanes{})
	advance(lanes)
	JMP(LabelRef("single"))

	Label("tail")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	body(0, Lanes{Mask: tail(n)})
	Label("done")
}

// Broadcast loads a float32 parameter into every lane.
func Broadcast(name string) VecVirtual {
	p, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	y := VecReg()
	VBROADCASTSS(p.Addr, y)
	return y
}

// constants holds the constants emitted so far, by symbol name.
var constants = map[string]Mem{}

// constant returns a register-wide constant of copies of the word v of
// size bytes, usable as the memory operand of a packed instruction.
func constant(prefix string, size int, v uint64) Mem {
	if is512() {
		prefix = "z" + prefix
	}
	name := fmt.Sprintf("%s%d_%0*x", prefix, 8*size, 2*size, v)
	m, ok := constants[name]
	if !ok {
		m = GLOBL(name, RODATA|NOPTR)
		for i := range 4 * w.lanes / size {
			if size == 4 {
				DATA(4*i, U32(v))
			} else {
				DATA(8*i, U64(v))
			}
		}
		constants[name] = m
	}
	return m
}

// Const32 returns a register-wide constant of copies of the word v.
func Const32(v uint32) Mem { return constant("c", 4, uint64(v)) }

// Float is Const32 of a float32.
func Float(v float32) Mem { return Const32(math.Float32bits(v)) }

// Const64 returns a register-wide constant of copies of the quadword v.
func Const64(v uint64) Mem { return constant("c", 8, v) }

// Splat loads the float32 constant v into a register.
func Splat(v float32) VecVirtual {
	y := VecReg()
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
	z := VecReg()
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

// HsumPS reduces the float32 lanes of v into the low lane of an XMM.
func HsumPS(v VecVirtual) VecVirtual {
	if is512() {
		y := YMM()
		VEXTRACTF32X8(U8(1), v, y)
		VADDPS(y, v.AsY(), y)
		v = y
	}
	hi := XMM()
	VEXTRACTF128(U8(1), v, hi)
	VADDPS(hi, v.AsX(), hi)
	VHADDPS(hi, hi, hi)
	VHADDPS(hi, hi, hi)
	return hi
}

// HsumPD reduces the float64 lanes of v into the low lane of an XMM.
func HsumPD(v VecVirtual) VecVirtual {
	if is512() {
		y := YMM()
		VEXTRACTF64X4(U8(1), v, y)
		VADDPD(y, v.AsY(), y)
		v = y
	}
	hi := XMM()
	VEXTRACTF128(U8(1), v, hi)
	VADDPD(hi, v.AsX(), hi)
	VHADDPD(hi, hi, hi)
	return hi
}
