// Package torchtest writes PyTorch checkpoints for the tests of the
// packages that read them: the zip serialisation torch.save uses since
// torch 1.6, built from Go values, including the malformed and malicious
// variants a loader must refuse.
package torchtest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"math"
	"strconv"
)

// Tensor is one state-dict entry, a contiguous float32 tensor.
type Tensor struct {
	Name  string
	Shape []int
	// Data holds the values; nil writes as many zeros as Shape asks for,
	// streamed, so a test can claim gigabytes without holding them.
	Data []float32
	// Deflate compresses the storage record (torch stores records
	// uncompressed; a zip bomb does not).
	Deflate bool
}

// Zip returns the zip checkpoint of a state dict holding tensors in
// order: archive/data.pkl (pickle protocol 2, each tensor a
// _rebuild_tensor_v2 call on a persistent FloatStorage) and each storage's
// little-endian bytes in archive/data/<index>.
func Zip(tensors []Tensor) ([]byte, error) {
	var pkl bytes.Buffer
	str := func(s string) {
		pkl.WriteByte('X') // BINUNICODE
		binary.Write(&pkl, binary.LittleEndian, uint32(len(s)))
		pkl.WriteString(s)
	}
	num := func(v int) {
		pkl.WriteByte('J') // BININT
		binary.Write(&pkl, binary.LittleEndian, int32(v))
	}
	tuple := func(vs []int) {
		pkl.WriteByte('(')
		for _, v := range vs {
			num(v)
		}
		pkl.WriteByte('t')
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	// A bomb of zeros compresses as well at the fastest level as at the
	// best, and much sooner.
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestSpeed)
	})
	pkl.WriteString("\x80\x02}(") // PROTO 2, EMPTY_DICT, MARK
	for i, t := range tensors {
		key := strconv.Itoa(i)
		numel, strides := 1, make([]int, len(t.Shape))
		for d := len(t.Shape) - 1; d >= 0; d-- {
			strides[d] = numel
			numel *= t.Shape[d]
		}
		str(t.Name)
		pkl.WriteString("ctorch._utils\n_rebuild_tensor_v2\n(")
		pkl.WriteString("(")
		str("storage")
		pkl.WriteString("ctorch\nFloatStorage\n")
		str(key)
		str("cpu")
		num(numel)
		pkl.WriteString("tQ") // TUPLE, BINPERSID
		num(0)                // storage offset
		tuple(t.Shape)
		tuple(strides)
		pkl.WriteString("\x89ccollections\nOrderedDict\n)R") // requires_grad False, empty hooks
		pkl.WriteString("tR")
		method := zip.Store
		if t.Deflate {
			method = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/data/" + key, Method: method})
		if err != nil {
			return nil, err
		}
		if err := writeValues(w, t.Data, numel); err != nil {
			return nil, err
		}
	}
	pkl.WriteString("u.") // SETITEMS, STOP
	for _, r := range []struct {
		name string
		data []byte
	}{{"archive/data.pkl", pkl.Bytes()}, {"archive/version", []byte("3\n")}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: r.name, Method: zip.Store})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(r.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeValues writes data, or numel zeros when data is nil, as
// little-endian float32 in chunks.
func writeValues(w io.Writer, data []float32, numel int) error {
	chunk := make([]byte, min(4*numel, 1<<20))
	if data == nil {
		for left := 4 * numel; left > 0 && len(chunk) > 0; left -= len(chunk) {
			if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
				return err
			}
		}
		return nil
	}
	if len(data) > 0 && len(chunk) < 4 {
		chunk = make([]byte, 4*len(data))
	}
	for lo := 0; lo < len(data); lo += len(chunk) / 4 {
		part := data[lo:min(lo+len(chunk)/4, len(data))]
		for i, v := range part {
			binary.LittleEndian.PutUint32(chunk[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(chunk[:4*len(part)]); err != nil {
			return err
		}
	}
	return nil
}
