package tensor

// NumPy .npy files (format versions 1.0, 2.0 and 3.0), the exchange format
// for PyTorch fixtures, generated images and labels (docs/DESIGN.md, "Packages and the flow of a run" and "Command line").

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// DType names the element type of an .npy array.
type DType string

// The element types dghcore reads. Float32 is also the only type it writes.
const (
	Float32 DType = "float32"
	Float64 DType = "float64"
	Int64   DType = "int64"
	Uint8   DType = "uint8"
)

// NPYArray is an .npy array in its stored element type. Exactly one of the
// data slices is set, the one matching DType, in row-major (C) order.
type NPYArray struct {
	Shape []int
	DType DType

	Float32 []float32
	Float64 []float64
	Int64   []int64
	Uint8   []uint8
}

// Tensor converts a to float32. Float64 values are rounded to nearest;
// int64 values beyond 2^24 in magnitude lose low bits.
func (a *NPYArray) Tensor() *Tensor {
	var data []float32
	switch a.DType {
	case Float32:
		data = a.Float32
	case Float64:
		data = make([]float32, len(a.Float64))
		for i, v := range a.Float64 {
			data[i] = float32(v)
		}
	case Int64:
		data = make([]float32, len(a.Int64))
		for i, v := range a.Int64 {
			data[i] = float32(v)
		}
	case Uint8:
		data = make([]float32, len(a.Uint8))
		for i, v := range a.Uint8 {
			data[i] = float32(v)
		}
	}
	return FromSlice(data, a.Shape...)
}

// Ints returns integer data (labels, indices) as int64. Only int64 and
// uint8 arrays qualify: a float array is an error rather than a silent
// truncation.
func (a *NPYArray) Ints() ([]int64, error) {
	switch a.DType {
	case Int64:
		return a.Int64, nil
	case Uint8:
		out := make([]int64, len(a.Uint8))
		for i, v := range a.Uint8 {
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("npy: want integer data, have %s", a.DType)
}

// ReadNPY reads an .npy file as a float32 tensor (see NPYArray.Tensor).
func ReadNPY(path string) (*Tensor, error) {
	a, err := ReadNPYArray(path)
	if err != nil {
		return nil, err
	}
	return a.Tensor(), nil
}

// ReadNPYFrom reads one .npy array from r as a float32 tensor.
func ReadNPYFrom(r io.Reader) (*Tensor, error) {
	a, err := ReadNPYArrayFrom(r)
	if err != nil {
		return nil, err
	}
	return a.Tensor(), nil
}

// ReadNPYArray reads an .npy file keeping its element type.
func ReadNPYArray(path string) (*NPYArray, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := ReadNPYArrayFrom(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// maxNPYHeader bounds the header length a file may claim, so a corrupt
// length cannot make us allocate gigabytes for it.
const maxNPYHeader = 1 << 20

// ReadNPYArrayFrom reads one .npy array from r keeping its element type.
// It reads exactly the array's bytes, so several arrays can follow each
// other in one stream.
func ReadNPYArrayFrom(r io.Reader) (*NPYArray, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: reading magic: %w", noEOF(err))
	}
	if string(pre[:6]) != npyMagic {
		return nil, errors.New("npy: not an .npy file (bad magic)")
	}
	var hlen int
	switch major := pre[6]; major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", noEOF(err))
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", noEOF(err))
		}
		n := binary.LittleEndian.Uint32(b[:])
		if n > maxNPYHeader {
			return nil, fmt.Errorf("npy: header length %d too large", n)
		}
		hlen = int(n)
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d", major, pre[7])
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, fmt.Errorf("npy: reading header: %w", noEOF(err))
	}
	descr, fortran, shape, err := parseNPYHeader(string(header))
	if err != nil {
		return nil, fmt.Errorf("npy: header %q: %w", strings.TrimSpace(string(header)), err)
	}
	if fortran {
		return nil, errors.New("npy: fortran_order arrays are not supported (save with np.ascontiguousarray)")
	}
	dtype, size, order, err := parseDescr(descr)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	n, err := checkedNumel(shape)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	if n > math.MaxInt/size {
		return nil, fmt.Errorf("npy: shape %v too large", shape)
	}
	raw, err := readBounded(r, n*size)
	if err != nil {
		return nil, fmt.Errorf("npy: reading %d values of shape %v: %w", n, shape, noEOF(err))
	}
	a := &NPYArray{Shape: shape, DType: dtype}
	switch dtype {
	case Float32:
		a.Float32 = make([]float32, n)
		for i := range a.Float32 {
			a.Float32[i] = math.Float32frombits(order.Uint32(raw[4*i:]))
		}
	case Float64:
		a.Float64 = make([]float64, n)
		for i := range a.Float64 {
			a.Float64[i] = math.Float64frombits(order.Uint64(raw[8*i:]))
		}
	case Int64:
		a.Int64 = make([]int64, n)
		for i := range a.Int64 {
			a.Int64[i] = int64(order.Uint64(raw[8*i:]))
		}
	case Uint8:
		a.Uint8 = raw
	}
	return a, nil
}

// readBounded reads exactly n bytes, growing its buffer as data arrives
// so a header that lies about the shape fails on a short stream instead
// of allocating the claimed size up front.
func readBounded(r io.Reader, n int) ([]byte, error) {
	const chunk = 1 << 22
	if n <= chunk {
		buf := make([]byte, n)
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	var buf bytes.Buffer
	got, err := buf.ReadFrom(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, err
	}
	if got != int64(n) {
		return nil, io.ErrUnexpectedEOF
	}
	return buf.Bytes(), nil
}

// noEOF turns a bare EOF inside an array into ErrUnexpectedEOF: a file
// that ends mid-array is truncated, not empty.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func checkedNumel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v too large", shape)
		}
		n *= d
	}
	return n, nil
}

// parseDescr maps a NumPy type string such as "<f4" to a DType, its byte
// size and byte order.
func parseDescr(descr string) (DType, int, binary.ByteOrder, error) {
	if len(descr) < 2 {
		return "", 0, nil, fmt.Errorf("bad dtype %q", descr)
	}
	var order binary.ByteOrder
	switch descr[0] {
	case '<', '|', '=':
		// '=' is native order; every platform NumPy writes it on is
		// little-endian in practice, and NumPy itself writes '<'.
		order = binary.LittleEndian
	case '>':
		order = binary.BigEndian
	default:
		return "", 0, nil, fmt.Errorf("bad dtype %q", descr)
	}
	switch descr[1:] {
	case "f4":
		return Float32, 4, order, nil
	case "f8":
		return Float64, 8, order, nil
	case "i8":
		return Int64, 8, order, nil
	case "u1":
		return Uint8, 1, order, nil
	}
	return "", 0, nil, fmt.Errorf("dtype %q not supported (want float32, float64, int64 or uint8)", descr)
}

// parseNPYHeader reads the Python dict literal of an .npy header:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
func parseNPYHeader(h string) (descr string, fortran bool, shape []int, err error) {
	p := &pyLit{s: h}
	if !p.eat('{') {
		return "", false, nil, errors.New("want a dict")
	}
	var haveDescr, haveFortran, haveShape bool
	for !p.eat('}') {
		key, err := p.str()
		if err != nil {
			return "", false, nil, err
		}
		if !p.eat(':') {
			return "", false, nil, fmt.Errorf("want ':' after %q", key)
		}
		switch key {
		case "descr":
			descr, err = p.str()
			haveDescr = true
		case "fortran_order":
			fortran, err = p.boolean()
			haveFortran = true
		case "shape":
			shape, err = p.intTuple()
			haveShape = true
		default:
			return "", false, nil, fmt.Errorf("unexpected key %q", key)
		}
		if err != nil {
			return "", false, nil, fmt.Errorf("key %q: %w", key, err)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return "", false, nil, errors.New("want ',' or '}'")
			}
			break
		}
	}
	if !haveDescr || !haveFortran || !haveShape {
		return "", false, nil, errors.New("want keys descr, fortran_order and shape")
	}
	return descr, fortran, shape, nil
}

// pyLit scans the few Python literals an .npy header uses.
type pyLit struct {
	s string
	i int
}

func (p *pyLit) skipSpace() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

// eat consumes c (after spaces) and reports whether it was there.
func (p *pyLit) eat(c byte) bool {
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *pyLit) str() (string, error) {
	p.skipSpace()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

func (p *pyLit) boolean() (bool, error) {
	p.skipSpace()
	switch {
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += 5
		return false, nil
	}
	return false, errors.New("want True or False")
}

// intTuple reads (), (n,) or (a, b, ...).
func (p *pyLit) intTuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("want a tuple")
	}
	shape := []int{}
	for !p.eat(')') {
		p.skipSpace()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		// NumPy on some platforms wrote Python 2 longs such as 3L.
		d, err := strconv.Atoi(p.s[p.i:j])
		if err != nil {
			return nil, fmt.Errorf("want a dimension at %q", p.s[p.i:])
		}
		p.i = j
		if p.i < len(p.s) && p.s[p.i] == 'L' {
			p.i++
		}
		shape = append(shape, d)
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, errors.New("want ',' or ')' in shape")
			}
			break
		}
	}
	return shape, nil
}

// WriteNPY writes t to path as a little-endian float32 .npy file.
func WriteNPY(path string, t *Tensor) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	err = WriteNPYTo(w, t)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteNPYTo writes t to w as a little-endian float32 .npy array, format
// 1.0 (2.0 if the header would not fit), header padded to 64 bytes as
// NumPy does so the data is aligned when the file is mapped.
func WriteNPYTo(w io.Writer, t *Tensor) error {
	if n := Numel(t.Shape); n != len(t.Data) {
		return fmt.Errorf("npy: tensor shape %v holds %d values, data has %d", t.Shape, n, len(t.Data))
	}
	var dims strings.Builder
	for i, d := range t.Shape {
		if i > 0 {
			dims.WriteString(", ")
		}
		dims.WriteString(strconv.Itoa(d))
	}
	if len(t.Shape) == 1 {
		dims.WriteString(",")
	}
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims.String())

	major, lenBytes := byte(1), 2
	if len(dict)+64 > math.MaxUint16 {
		major, lenBytes = 2, 4
	}
	prefix := len(npyMagic) + 2 + lenBytes
	pad := (64 - (prefix+len(dict)+1)%64) % 64
	header := dict + strings.Repeat(" ", pad) + "\n"

	buf := make([]byte, 0, prefix+len(header))
	buf = append(buf, npyMagic...)
	buf = append(buf, major, 0)
	if lenBytes == 2 {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(len(header)))
	} else {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(header)))
	}
	buf = append(buf, header...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	// Write the data in bounded chunks so a large tensor does not need a
	// second full-size copy.
	const chunk = 1 << 14
	raw := make([]byte, 4*min(chunk, len(t.Data)))
	for lo := 0; lo < len(t.Data); lo += chunk {
		part := t.Data[lo:min(lo+chunk, len(t.Data))]
		for i, v := range part {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(raw[:4*len(part)]); err != nil {
			return err
		}
	}
	return nil
}
