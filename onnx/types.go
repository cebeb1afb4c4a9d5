package onnx

// The integer types of the QDQ form and how a quantizer's levels are
// placed in one (docs/DESIGN.md, "ONNX export").

import (
	"encoding/binary"
	"fmt"
)

// intType is an ONNX integer element type and its range.
type intType struct {
	dt     DataType
	lo, hi int64
}

var (
	uint4T  = intType{Uint4, 0, 15}
	int4T   = intType{Int4, -8, 7}
	uint8T  = intType{Uint8, 0, 255}
	int8T   = intType{Int8, -128, 127}
	uint16T = intType{Uint16, 0, 65535}
	int16T  = intType{Int16, -32768, 32767}
	int32T  = intType{Int32, -1 << 31, 1<<31 - 1}
)

func intTypeOf(dt DataType) (intType, bool) {
	for _, t := range []intType{uint4T, int4T, uint8T, int8T, uint16T, int16T, int32T} {
		if t.dt == dt {
			return t, true
		}
	}
	return intType{}, false
}

// levels is the number of values of t.
func (t intType) levels() int64 { return t.hi - t.lo + 1 }

// weightTypes are the candidates for a weight of bits bits, in order of
// preference: the 4-bit types for 2-4 bits, the 8-bit ones for 5-8, then
// wider ones for zero points outside them. The widest is INT16, not
// INT32: ONNX Runtime 1.31 fuses an INT32 weight behind 8-bit activations
// into a QLinearConv it then rejects, while it leaves 16-bit weights alone.
func weightTypes(bits int) []intType {
	if bits <= 4 {
		return []intType{uint4T, int4T, uint8T, int8T, int16T}
	}
	return []intType{uint8T, int8T, int16T}
}

// eightBit reports whether t is one of the 8-bit types.
func (t intType) eightBit() bool { return t.dt == Uint8 || t.dt == Int8 }

// actTypes are the candidates for an activation quantizer of bits bits.
// QuantizeLinear has no 32-bit output, so 16 bits is the widest.
func actTypes(bits int) []intType {
	if bits <= 4 {
		return []intType{uint4T, int4T, uint8T, int8T, uint16T, int16T}
	}
	return []intType{uint8T, int8T, uint16T, int16T}
}

// place puts the levels lo..hi of a quantizer with zero point zp into t:
// level c is stored as c+off and the zero point as zp+off, so that
// (stored - stored zero point) is c - zp, dghcore's dequantization. The
// offset is the conventional one (0 for unsigned types, half the levels
// below zero for signed ones) when that fits; ok is false when no offset
// keeps both in t's range.
func place(t intType, lo, hi, zp int64) (off int64, ok bool) {
	from, to := max(t.lo-lo, t.lo-zp), min(t.hi-hi, t.hi-zp)
	if from > to {
		return 0, false
	}
	natural := int64(0)
	if t.lo < 0 {
		natural = -(hi - lo + 1) / 2
	}
	return min(max(natural, from), to), true
}

// placeAll is place for every channel of a weight, levels[r] being the
// lowest and highest level channel r uses: the first candidate type that
// holds all of them, and the offsets.
func placeAll(cands []intType, levels [][2]int64, zps []int64) (intType, []int64, error) {
	offs := make([]int64, len(zps))
next:
	for _, t := range cands {
		for i, z := range zps {
			off, ok := place(t, levels[i][0], levels[i][1], z)
			if !ok {
				continue next
			}
			offs[i] = off
		}
		return t, offs, nil
	}
	return intType{}, nil, fmt.Errorf("zero points %d..%d fit no ONNX integer type", minOf(zps), maxOf(zps))
}

func minOf(vs []int64) int64 {
	m := vs[0]
	for _, v := range vs {
		m = min(m, v)
	}
	return m
}

func maxOf(vs []int64) int64 {
	m := vs[0]
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}

// packInts encodes integers of type t as raw_data: little-endian, 4-bit
// types two to a byte, the first in the low nibble.
func packInts(t intType, vs []int64) []byte {
	switch t.dt {
	case Uint4, Int4:
		b := make([]byte, (len(vs)+1)/2)
		for i, v := range vs {
			b[i/2] |= byte(v&0xf) << (4 * (i % 2))
		}
		return b
	case Uint8, Int8:
		b := make([]byte, len(vs))
		for i, v := range vs {
			b[i] = byte(v)
		}
		return b
	case Uint16, Int16:
		b := make([]byte, 2*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		}
		return b
	}
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

// unpackInts decodes n integers of type t from raw_data; ok is false when
// raw has the wrong length.
func unpackInts(t intType, raw []byte, n int) ([]int64, bool) {
	vs := make([]int64, n)
	switch t.dt {
	case Uint4, Int4:
		if len(raw) != (n+1)/2 {
			return nil, false
		}
		for i := range vs {
			v := int64(raw[i/2]>>(4*(i%2))) & 0xf
			if t.dt == Int4 && v >= 8 {
				v -= 16
			}
			vs[i] = v
		}
	case Uint8:
		if len(raw) != n {
			return nil, false
		}
		for i := range vs {
			vs[i] = int64(raw[i])
		}
	case Int8:
		if len(raw) != n {
			return nil, false
		}
		for i := range vs {
			vs[i] = int64(int8(raw[i]))
		}
	case Uint16, Int16:
		if len(raw) != 2*n {
			return nil, false
		}
		for i := range vs {
			u := binary.LittleEndian.Uint16(raw[2*i:])
			if t.dt == Int16 {
				vs[i] = int64(int16(u))
			} else {
				vs[i] = int64(u)
			}
		}
	default:
		if len(raw) != 4*n {
			return nil, false
		}
		for i := range vs {
			vs[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	}
	return vs, true
}

// Range is the range of the integer type t; ok is false for other types.
func (t DataType) Range() (lo, hi int64, ok bool) {
	it, ok := intTypeOf(t)
	return it.lo, it.hi, ok
}
