package torchload

// Storages and strided tensor views as torch.save writes them (docs/DESIGN.md,
// "Models and checkpoints"): a storage is a flat typed buffer; a tensor is (storage, offset, sizes,
// strides) into it. Only floating-point storages are converted to float32.

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/dghcore/dghcore/tensor"
)

// dtype is one torch storage element type.
type dtype struct {
	name  string // torch's name, for errors and StateDict.Skipped
	size  int    // bytes per element
	float bool   // converted to float32; other dtypes are skipped
}

// storageClasses maps the pickle global of each storage class (what the
// persistent id names) to its element type.
var storageClasses = map[string]*dtype{
	"torch.FloatStorage":    {"float32", 4, true},
	"torch.DoubleStorage":   {"float64", 8, true},
	"torch.HalfStorage":     {"float16", 2, true},
	"torch.BFloat16Storage": {"bfloat16", 2, true},
	"torch.LongStorage":     {"int64", 8, false},
	"torch.IntStorage":      {"int32", 4, false},
	"torch.ShortStorage":    {"int16", 2, false},
	"torch.CharStorage":     {"int8", 1, false},
	"torch.ByteStorage":     {"uint8", 1, false},
	"torch.BoolStorage":     {"bool", 1, false},
}

// storage is one serialised storage. data is nil until its bytes are read:
// the zip format reads them when the pickle names the storage, the legacy
// format only after the whole pickle.
type storage struct {
	key   string
	dtype *dtype
	numel int
	order binary.ByteOrder
	data  []byte
}

// rawTensor is what a tensor-rebuild call in the pickle returns: a strided
// view into a storage, materialised once the storage bytes are known.
type rawTensor struct {
	st     *storage
	offset int
	size   []int
	stride []int
}

// maxDims bounds a tensor's rank; real checkpoints stay far below it.
const maxDims = 32

// checkedNumel returns the element count of t, refusing a view that reaches
// past its storage or holds more elements than it (an expanded tensor).
// Every product is bounded before it is formed, so nothing overflows.
func (t *rawTensor) checkedNumel() (numel int, err error) {
	if len(t.size) != len(t.stride) {
		return 0, fmt.Errorf("%d sizes but %d strides", len(t.size), len(t.stride))
	}
	if len(t.size) > maxDims {
		return 0, fmt.Errorf("%d dimensions (at most %d)", len(t.size), maxDims)
	}
	if t.offset < 0 {
		return 0, fmt.Errorf("negative storage offset %d", t.offset)
	}
	numel = 1
	for i, d := range t.size {
		if d < 0 || t.stride[i] < 0 {
			return 0, fmt.Errorf("size %v, stride %v: negative entry", t.size, t.stride)
		}
		if d == 0 {
			numel = 0
		}
	}
	if numel == 0 {
		return 0, nil
	}
	// With every size >= 1 the running product only grows, so bounding it
	// by the storage size at each step keeps it in range.
	for _, d := range t.size {
		if d > t.st.numel || numel > t.st.numel/d {
			return 0, fmt.Errorf("shape %v has more elements than its storage (%d)", t.size, t.st.numel)
		}
		numel *= d
	}
	// The last element sits at offset + sum (size-1)*stride; each term is
	// bounded by the room left before it is added.
	last := t.offset
	if last >= t.st.numel {
		return 0, fmt.Errorf("storage offset %d past its storage (%d elements)", t.offset, t.st.numel)
	}
	for i, d := range t.size {
		s := t.stride[i]
		if d == 1 || s == 0 {
			continue
		}
		if s > (t.st.numel-1-last)/(d-1) {
			return 0, fmt.Errorf("offset %d, shape %v, stride %v reach past its storage (%d elements)",
				t.offset, t.size, t.stride, t.st.numel)
		}
		last += (d - 1) * s
	}
	return numel, nil
}

// materialize gathers the view into a contiguous float32 tensor. The caller
// has checked that the storage is floating point and its bytes are loaded.
func (t *rawTensor) materialize(numel int) *tensor.Tensor {
	out := tensor.New(t.size...)
	if numel == 0 {
		return out
	}
	decode := decoder(t.st.dtype.name, t.st.order)
	size := t.st.dtype.size
	data := t.st.data
	if t.contiguous() {
		src := data[t.offset*size : (t.offset+numel)*size]
		for i := range out.Data {
			out.Data[i] = decode(src[i*size : i*size+size])
		}
		return out
	}
	// Odometer over the index space in row-major order; pos follows the
	// storage position of the current index.
	idx := make([]int, len(t.size))
	pos := t.offset
	for i := range out.Data {
		out.Data[i] = decode(data[pos*size : pos*size+size])
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			pos += t.stride[d]
			if idx[d] < t.size[d] {
				break
			}
			pos -= idx[d] * t.stride[d]
			idx[d] = 0
		}
	}
	return out
}

// contiguous reports whether the view is row-major without gaps, the
// layout of nearly every saved parameter. Size-1 axes may carry any stride.
func (t *rawTensor) contiguous() bool {
	want := 1
	for i := len(t.size) - 1; i >= 0; i-- {
		if t.size[i] != 1 && t.stride[i] != want {
			return false
		}
		want *= t.size[i]
	}
	return true
}

// decoder returns the float32 conversion of one element of a floating-point
// dtype. Float64 rounds to nearest even, as torch's .float() does.
func decoder(name string, order binary.ByteOrder) func([]byte) float32 {
	switch name {
	case "float64":
		return func(b []byte) float32 { return float32(math.Float64frombits(order.Uint64(b))) }
	case "float16":
		return func(b []byte) float32 { return halfToFloat32(order.Uint16(b)) }
	case "bfloat16":
		return func(b []byte) float32 { return math.Float32frombits(uint32(order.Uint16(b)) << 16) }
	default:
		return func(b []byte) float32 { return math.Float32frombits(order.Uint32(b)) }
	}
}

// halfToFloat32 widens an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f: // inf and NaN keep their payload
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		// Zero or subnormal: mant * 2^-24, exact in float32.
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}
