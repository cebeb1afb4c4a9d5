package torchload

// A static pass over a pickle program before gopickle runs it (docs/DESIGN.md,
// "Models and checkpoints": "holds pickle globals other than the tensor-rebuild ones gets a clear
// error, never a panic"). gopickle trusts its input: it allocates whatever
// length an opcode claims, indexes the last byte of a zero-length LONG,
// pairs up an odd number of dict items and hashes bytes keys into a Go map;
// and when an opcode gets an operand of the wrong type its error message
// formats that operand with %#v, which writes out every string in a
// container: a list holding one long string a million times, handed to
// REDUCE, spells it out a million times. vetPickle walks the opcodes with an
// abstract stack (only "string with this value", "bytes" or "anything else"
// per slot, each with the size it prints at) and refuses all of that, plus
// every global outside the allowlist, so the run that follows cannot panic,
// allocates in proportion to the pickle and never sees a forbidden global.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

type slotKind uint8

const (
	slotOther slotKind = iota
	slotString
	slotBytes // a Go []byte in gopickle: unhashable, never a dict key
)

type slot struct {
	kind slotKind
	str  string // the value of a slotString
	// size is what the value adds, up to a constant factor for quoting,
	// to a container that %#v prints: the length of a string, bytes or
	// integer. Other values print as a pointer or a short number, 0.
	size int
}

// vetter mirrors gopickle's machine: a stack, the stacks saved by MARK and
// the memo, with slots in place of values.
type vetter struct {
	data  []byte
	pos   int
	stack []slot
	marks [][]slot
	memo  map[int]slot
	held  int // sum of the sizes of every value put in a container
}

// maxOpcodes bounds a pickle program. gopickle allocates a little for
// each opcode (a MARK costs it 256 bytes), so the bound caps its memory;
// a ResNet-50 state dict takes about 10k opcodes.
const maxOpcodes = 1 << 20

// maxIntLen bounds the digits of a text INT or LONG and the bytes of a
// LONG1 or LONG4: gopickle converts decimal digits in quadratic time, and
// the widest integer in a checkpoint is the 80-bit magic number of the
// legacy format.
const maxIntLen = 64

// Container elements may print at most heldFactor bytes per pickle byte
// read so far, plus heldSlack: an element reached through the memo costs a
// two-byte BINGET however long it is, and real checkpoints re-insert only
// short strings such as "storage" and "cpu" that way.
const (
	heldFactor = 4
	heldSlack  = 1 << 16
)

// vetPickle checks the pickle program at the start of data and returns the
// offset just past its STOP opcode.
func vetPickle(data []byte) (int, error) {
	v := vetter{data: data, memo: make(map[int]slot)}
	for ops := 0; ; ops++ {
		if v.pos >= len(data) {
			return 0, fmt.Errorf("pickle has no STOP opcode: %w", ErrTruncated)
		}
		if ops == maxOpcodes {
			return 0, fmt.Errorf("pickle has more than %d opcodes", maxOpcodes)
		}
		at, op := v.pos, data[v.pos]
		v.pos++
		stop, err := v.step(op)
		if err != nil {
			return 0, fmt.Errorf("pickle offset %d, opcode %s: %w", at, opName(op), err)
		}
		if stop {
			return v.pos, nil
		}
	}
}

// step checks one opcode and applies its effect to the abstract machine.
// The opcode set and argument encodings follow CPython's pickletools.
func (v *vetter) step(op byte) (stop bool, err error) {
	other := slot{}
	switch op {
	case '(': // MARK
		v.marks = append(v.marks, v.stack)
		v.stack = nil
	case '.': // STOP
		_, err = v.pop()
		return err == nil, err
	case '0': // POP; gopickle pops a mark when the stack is empty
		if len(v.stack) == 0 {
			_, err = v.popMark()
		} else {
			_, err = v.pop()
		}
	case '1': // POP_MARK
		_, err = v.popMark()
	case '2': // DUP
		var s slot
		if s, err = v.top(); err == nil {
			v.push(s)
		}
	case 'F', 'I', 'L': // FLOAT, INT, LONG: decimal text lines
		var l []byte
		if l, err = v.line(); err == nil && op != 'F' && len(l) > maxIntLen {
			err = fmt.Errorf("integer of %d digits (at most %d)", len(l), maxIntLen)
		}
		v.push(slot{size: len(l)})
	case 'G': // BINFLOAT: learning rates, momenta in optimizer state
		_, err = v.take(8)
		v.push(other)
	case 'J': // BININT
		_, err = v.take(4)
		v.push(other)
	case 'K': // BININT1
		_, err = v.take(1)
		v.push(other)
	case 'M': // BININT2
		_, err = v.take(2)
		v.push(other)
	case 0x8a: // LONG1
		var n int
		if n, err = v.uint(1); err == nil {
			err = v.long(n)
		}
	case 0x8b: // LONG4
		var n int
		if n, err = v.int32(); err == nil {
			err = v.long(n)
		}
	case 'N', 0x88, 0x89, '}', ']', ')', 0x8f: // NONE, NEWTRUE, NEWFALSE, EMPTY_DICT/LIST/TUPLE/SET
		v.push(other)
	case 'Q': // BINPERSID: the id is on the stack
		if _, err = v.pop(); err == nil {
			v.push(other)
		}
	case 'R': // REDUCE
		err = v.popPush(2)
	case 0x81: // NEWOBJ: how an argparse.Namespace is pickled. gopickle
		// refuses every class but a metadataClass, the only PyNewable one
		// findClass resolves.
		err = v.popPush(2)
	case 'S': // STRING: a quoted line
		var l []byte
		if l, err = v.line(); err == nil {
			if len(l) < 2 || l[0] != l[len(l)-1] || (l[0] != '\'' && l[0] != '"') {
				return false, errors.New("STRING argument is not quoted")
			}
			v.push(slot{slotString, string(l[1 : len(l)-1]), len(l)})
		}
	case 'V': // UNICODE: a raw line
		var l []byte
		if l, err = v.line(); err == nil {
			v.push(slot{slotString, string(l), len(l)})
		}
	case 'T': // BINSTRING
		err = v.counted(v.int32, slotString)
	case 'U', 0x8c: // SHORT_BINSTRING, SHORT_BINUNICODE
		err = v.counted(func() (int, error) { return v.uint(1) }, slotString)
	case 'X': // BINUNICODE
		err = v.counted(func() (int, error) { return v.uint(4) }, slotString)
	case 0x8d: // BINUNICODE8
		err = v.counted(v.uint64, slotString)
	case 'B': // BINBYTES
		err = v.counted(func() (int, error) { return v.uint(4) }, slotBytes)
	case 'C': // SHORT_BINBYTES
		err = v.counted(func() (int, error) { return v.uint(1) }, slotBytes)
	case 0x8e: // BINBYTES8
		err = v.counted(v.uint64, slotBytes)
	case 0x96: // BYTEARRAY8: a pointer in gopickle, so hashable
		err = v.counted(v.uint64, slotOther)
	case 'a': // APPEND
		if err = v.holdTop(1); err == nil {
			err = v.popPush(2)
		}
	case 'e': // APPENDS
		var items []slot
		if items, err = v.popMark(); err == nil {
			if err = v.hold(items); err == nil {
				err = v.popPush(1)
			}
		}
	case 'b': // BUILD
		if _, err = v.pop(); err == nil {
			_, err = v.top()
		}
	case 'c': // GLOBAL: module and name lines
		var module, name []byte
		if module, err = v.line(); err == nil {
			if name, err = v.line(); err == nil {
				err = checkGlobal(string(module), string(name))
			}
		}
		v.push(other)
	case 0x93: // STACK_GLOBAL: module and name from the stack
		var module, name slot
		if name, err = v.pop(); err != nil {
			return false, err
		}
		if module, err = v.pop(); err != nil {
			return false, err
		}
		if module.kind != slotString || name.kind != slotString {
			return false, errors.New("STACK_GLOBAL operands are not string literals")
		}
		err = checkGlobal(module.str, name.str)
		v.push(other)
	case 'd': // DICT
		var items []slot
		if items, err = v.popMark(); err == nil {
			if err = checkPairs(items); err == nil {
				err = v.hold(items)
			}
		}
		v.push(other)
	case 's': // SETITEM
		var key, value slot
		if value, err = v.pop(); err != nil {
			return false, err
		}
		if key, err = v.pop(); err != nil {
			return false, err
		}
		if err = checkPairs([]slot{key, value}); err == nil {
			if err = v.hold([]slot{key, value}); err == nil {
				_, err = v.top()
			}
		}
	case 'u': // SETITEMS
		var items []slot
		if items, err = v.popMark(); err == nil {
			if err = checkPairs(items); err == nil {
				if err = v.hold(items); err == nil {
					err = v.popPush(1)
				}
			}
		}
	case 0x90: // ADDITEMS
		var items []slot
		if items, err = v.popMark(); err == nil {
			if err = checkHashable(items); err == nil {
				if err = v.hold(items); err == nil {
					err = v.popPush(1)
				}
			}
		}
	case 0x91: // FROZENSET
		var items []slot
		if items, err = v.popMark(); err == nil {
			if err = checkHashable(items); err == nil {
				err = v.hold(items)
			}
		}
		v.push(other)
	case 'l', 't': // LIST, TUPLE
		var items []slot
		if items, err = v.popMark(); err == nil {
			err = v.hold(items)
		}
		v.push(other)
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		n := int(op-0x85) + 1
		if err = v.holdTop(n); err == nil {
			err = v.popPush(n)
		}
	case 'g': // GET
		var i int
		if i, err = v.decimal(); err == nil {
			v.push(v.memo[i])
		}
	case 'h': // BINGET
		var i int
		if i, err = v.uint(1); err == nil {
			v.push(v.memo[i])
		}
	case 'j': // LONG_BINGET
		var i int
		if i, err = v.uint(4); err == nil {
			v.push(v.memo[i])
		}
	case 'p': // PUT
		var i int
		if i, err = v.decimal(); err == nil {
			if i < 0 {
				return false, errors.New("negative PUT index")
			}
			err = v.memoize(i)
		}
	case 'q': // BINPUT
		var i int
		if i, err = v.uint(1); err == nil {
			err = v.memoize(i)
		}
	case 'r': // LONG_BINPUT
		var i int
		if i, err = v.uint(4); err == nil {
			err = v.memoize(i)
		}
	case 0x94: // MEMOIZE: gopickle numbers entries by the memo's size
		err = v.memoize(len(v.memo))
	case 0x80: // PROTO
		var p int
		if p, err = v.uint(1); err == nil && p > 5 {
			err = fmt.Errorf("pickle protocol %d", p)
		}
	case 0x95: // FRAME: only its length is checked, its opcodes follow inline
		var n int
		if n, err = v.uint64(); err == nil && n > len(v.data)-v.pos {
			err = fmt.Errorf("frame of %d bytes, %d left: %w", n, len(v.data)-v.pos, ErrTruncated)
		}
	default:
		// INST, OBJ, NEWOBJ_EX, PERSID, EXT1/2/4, NEXT_BUFFER,
		// READONLY_BUFFER and unknown bytes: torch.save emits none of them
		// for a state dict.
		return false, errors.New("opcode not allowed in a checkpoint")
	}
	return false, err
}

// opName shows an opcode as its character when printable, as pickletools does.
func opName(op byte) string {
	if op > ' ' && op < 0x7f {
		return fmt.Sprintf("%q", op)
	}
	return fmt.Sprintf("%#02x", op)
}

func (v *vetter) push(s slot) { v.stack = append(v.stack, s) }

func (v *vetter) pop() (slot, error) {
	s, err := v.top()
	if err == nil {
		v.stack = v.stack[:len(v.stack)-1]
	}
	return s, err
}

func (v *vetter) top() (slot, error) {
	if len(v.stack) == 0 {
		return slot{}, errors.New("stack underflow")
	}
	return v.stack[len(v.stack)-1], nil
}

// popPush pops n values and pushes one result.
func (v *vetter) popPush(n int) error {
	if len(v.stack) < n {
		return errors.New("stack underflow")
	}
	v.stack = append(v.stack[:len(v.stack)-n], slot{})
	return nil
}

// hold accounts for items put in a container.
func (v *vetter) hold(items []slot) error {
	for _, s := range items {
		v.held += s.size
	}
	if v.held > heldFactor*v.pos+heldSlack {
		return fmt.Errorf("containers hold %d bytes of strings and numbers after %d bytes of pickle "+
			"(values repeated through the memo)", v.held, v.pos)
	}
	return nil
}

// holdTop accounts for the top n stack slots put in a container.
func (v *vetter) holdTop(n int) error {
	if len(v.stack) < n {
		return errors.New("stack underflow")
	}
	return v.hold(v.stack[len(v.stack)-n:])
}

func (v *vetter) popMark() ([]slot, error) {
	if len(v.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	items := v.stack
	v.stack = v.marks[len(v.marks)-1]
	v.marks = v.marks[:len(v.marks)-1]
	return items, nil
}

func (v *vetter) memoize(i int) error {
	s, err := v.top()
	if err == nil {
		v.memo[i] = s
	}
	return err
}

// take consumes n argument bytes.
func (v *vetter) take(n int) ([]byte, error) {
	if n < 0 || n > len(v.data)-v.pos {
		return nil, fmt.Errorf("argument of %d bytes, %d left: %w", n, len(v.data)-v.pos, ErrTruncated)
	}
	b := v.data[v.pos : v.pos+n]
	v.pos += n
	return b, nil
}

// line consumes a newline-terminated argument and returns it without the newline.
func (v *vetter) line() ([]byte, error) {
	i := bytes.IndexByte(v.data[v.pos:], '\n')
	if i < 0 {
		return nil, fmt.Errorf("unterminated text argument: %w", ErrTruncated)
	}
	l := v.data[v.pos : v.pos+i]
	v.pos += i + 1
	return l, nil
}

// decimal reads a memo index written as a text line, as gopickle parses it.
func (v *vetter) decimal() (int, error) {
	l, err := v.line()
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(l))
}

// uint reads an n-byte little-endian unsigned integer (n is 1 or 4 here).
func (v *vetter) uint(n int) (int, error) {
	b, err := v.take(n)
	if err != nil {
		return 0, err
	}
	x := 0
	for i := n - 1; i >= 0; i-- {
		x = x<<8 | int(b[i])
	}
	return x, nil
}

func (v *vetter) int32() (int, error) {
	b, err := v.take(4)
	if err != nil {
		return 0, err
	}
	return int(int32(binary.LittleEndian.Uint32(b))), nil
}

func (v *vetter) uint64() (int, error) {
	b, err := v.take(8)
	if err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint64(b)
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("length %d out of range", n)
	}
	return int(n), nil
}

// counted consumes a length-prefixed argument and pushes a slot of kind k.
func (v *vetter) counted(length func() (int, error), k slotKind) error {
	n, err := length()
	if err != nil {
		return err
	}
	b, err := v.take(n)
	if err != nil {
		return err
	}
	s := slot{kind: k, size: n}
	if k == slotString {
		s.str = string(b)
	}
	v.push(s)
	return nil
}

// long consumes the n bytes of a LONG1/LONG4 integer; gopickle reads the
// last byte of the encoding, so an empty one is refused.
func (v *vetter) long(n int) error {
	if n <= 0 || n > maxIntLen {
		return fmt.Errorf("LONG of %d bytes (want 1 to %d)", n, maxIntLen)
	}
	_, err := v.take(n)
	// A byte holds up to 2.41 decimal digits.
	v.push(slot{size: 3 * n})
	return err
}

// checkPairs refuses an odd item count (gopickle would index past the end)
// and bytes keys (gopickle's OrderedDict would hash them and panic).
func checkPairs(items []slot) error {
	if len(items)%2 != 0 {
		return fmt.Errorf("odd number (%d) of dict items", len(items))
	}
	for i := 0; i < len(items); i += 2 {
		if items[i].kind == slotBytes {
			return errors.New("bytes used as a dict key")
		}
	}
	return nil
}

// checkHashable refuses bytes set members, which gopickle hashes.
func checkHashable(items []slot) error {
	for _, s := range items {
		if s.kind == slotBytes {
			return errors.New("bytes used as a set member")
		}
	}
	return nil
}
