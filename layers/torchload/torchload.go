// Package torchload reads PyTorch checkpoints into float32 tensors (docs/DESIGN.md,
// "Models and checkpoints") without running any Python and without trusting the file.
//
// Both torch.save serialisations load: the zip archive (torch >= 1.6) and
// the legacy pickle stream (_use_new_zipfile_serialization=False). The
// checkpoint may be a bare state_dict or a dict wrapping one under "model"
// (BRECQ's mobilenetv2.pth.tar) or "state_dict"; a "module." key prefix
// (nn.DataParallel) is removed. Floating-point tensors of any precision
// (float32, float64, float16, bfloat16) become float32, gathered through
// their strides and storage offset; integer and bool tensors, such as
// BatchNorm's num_batches_tracked, are listed in StateDict.Skipped instead.
//
// A wrapped state dict may sit beside the metadata training scripts save
// (epoch, arch, best accuracy, optimizer and scheduler state, the command
// line); that metadata is not returned.
//
// A pickle may only name the tensor-rebuild functions, the storage classes
// and collections.OrderedDict, plus a few data-only classes that metadata
// uses (numpy scalars, dtypes and arrays, argparse.Namespace, torch.Size,
// torch.device), which load as inert placeholders and never inside the
// state dict; anything else (os.system, eval, a model class) is refused,
// wherever it appears, before a single opcode runs. A truncated, corrupt or
// foreign file gets an error wrapping ErrTruncated, ErrNotCheckpoint or
// ErrForbiddenGlobal, never a panic.
package torchload

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/dghcore/dghcore/tensor"
	"github.com/nlpodyssey/gopickle/types"
)

// Errors that Load and its variants wrap; test them with errors.Is.
var (
	// ErrNotCheckpoint: the input is not a PyTorch checkpoint (a text file,
	// a plain pickle, a zip without data.pkl, a TorchScript archive, ...).
	ErrNotCheckpoint = errors.New("not a PyTorch checkpoint")
	// ErrTruncated: the input ends before the checkpoint does.
	ErrTruncated = errors.New("checkpoint is truncated")
	// ErrForbiddenGlobal: the pickle names a global outside the allowlist;
	// errors.As to *GlobalError gives its name.
	ErrForbiddenGlobal = errors.New("forbidden pickle global")
)

// StateDict is a checkpoint's floating-point tensors by PyTorch key, in
// file order (the order of the module's state_dict()).
type StateDict struct {
	Keys    []string
	Tensors map[string]*tensor.Tensor
	// Skipped lists, in file order, the integer and bool tensors left out.
	Skipped []SkippedTensor
}

// SkippedTensor is a non-floating-point tensor of the checkpoint.
type SkippedTensor struct {
	Key   string
	DType string // torch's name: "int64", "bool", ...
	Shape []int
}

// Load reads the checkpoint file at path.
func Load(path string) (*StateDict, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("torchload: %w", err)
	}
	sd, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("torchload: %s: %w", path, err)
	}
	return sd, nil
}

// LoadReader reads a whole checkpoint from r.
func LoadReader(r io.Reader) (*StateDict, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("torchload: read: %w", err)
	}
	return LoadBytes(data)
}

// LoadBytes decodes a checkpoint held in memory (an embedded model, say).
// data is only read; the tensors do not alias it.
func LoadBytes(data []byte) (*StateDict, error) {
	sd, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("torchload: %w", err)
	}
	return sd, nil
}

func decode(data []byte) (*StateDict, error) {
	var root any
	var err error
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%w: empty input", ErrNotCheckpoint)
	case bytes.HasPrefix(data, []byte("PK")):
		root, err = decodeZip(data)
	default:
		root, err = decodeLegacy(data)
	}
	if err != nil {
		return nil, err
	}
	// A checkpoint's tensors may share storages, but together they may not
	// expand to more than a few times its size: a small file must not be
	// able to ask for gigabytes.
	return extract(root, 2*len(data)+1<<16)
}

// maxPickleBytes bounds the decompressed data.pkl of a zip checkpoint; a
// ResNet-50's is about 50 KB.
const maxPickleBytes = 64 << 20

// decodeZip reads the zip serialisation: <name>/data.pkl is the pickle,
// <name>/data/<key> the raw bytes of each storage, <name>/byteorder (newer
// torch) their byte order.
func decodeZip(data []byte) (any, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		if zipCut(data) {
			return nil, fmt.Errorf("%w: zip archive without its end record (%v)", ErrTruncated, err)
		}
		return nil, fmt.Errorf("corrupt zip archive: %w", err)
	}
	prefix := ""
	for _, f := range zr.File {
		dir, base, ok := strings.Cut(f.Name, "/")
		if !ok || base != "data.pkl" {
			continue
		}
		if prefix != "" && prefix != dir+"/" {
			return nil, fmt.Errorf("%w: zip archive holds two pickles, %q and %q", ErrNotCheckpoint, prefix+"data.pkl", f.Name)
		}
		prefix = dir + "/"
	}
	if prefix == "" {
		return nil, fmt.Errorf("%w: zip archive without a data.pkl record", ErrNotCheckpoint)
	}
	records := make(map[string]*zip.File)
	for _, f := range zr.File {
		if name, ok := strings.CutPrefix(f.Name, prefix); ok {
			records[name] = f
		}
	}
	if _, ok := records["constants.pkl"]; ok {
		return nil, fmt.Errorf("%w: a TorchScript archive (torch.jit.save), not a torch.save checkpoint", ErrNotCheckpoint)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if f, ok := records["byteorder"]; ok {
		b, err := readRecord(f, 16)
		if err != nil {
			return nil, fmt.Errorf("byteorder record: %w", err)
		}
		switch string(b) {
		case "little":
		case "big":
			order = binary.BigEndian
		default:
			return nil, fmt.Errorf("byteorder record %q", b)
		}
	}
	pkl, err := readRecord(records["data.pkl"], maxPickleBytes)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", prefix+"data.pkl", err)
	}
	pids := &storageTable{
		order:    order,
		storages: make(map[string]*storage),
		fields:   5,
		read: func(st *storage) error {
			f, ok := records["data/"+st.key]
			if !ok {
				return fmt.Errorf("storage %q: no record %q", st.key, prefix+"data/"+st.key)
			}
			want := st.numel * st.dtype.size
			b, err := readRecord(f, want)
			if err != nil {
				return fmt.Errorf("storage %q: %w", st.key, err)
			}
			if len(b) != want {
				return fmt.Errorf("storage %q: %d bytes for %d x %s: %w", st.key, len(b), st.numel, st.dtype.name, ErrTruncated)
			}
			st.data = b
			return nil
		},
	}
	root, _, err := runPickle(pkl, pids)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", prefix+"data.pkl", err)
	}
	return root, nil
}

// zipCut reports whether a zip archive lacks a complete end-of-central-
// directory record, which sits at the very end: the file was cut short.
func zipCut(data []byte) bool {
	const fixed = 22 // the record without its trailing comment
	i := bytes.LastIndex(data, []byte("PK\x05\x06"))
	if i < 0 || len(data)-i < fixed {
		return true
	}
	comment := int(binary.LittleEndian.Uint16(data[i+20:]))
	return len(data)-i < fixed+comment
}

// readRecord reads a zip record of at most limit bytes. Memory grows with
// the bytes actually read, never with a size the archive claims.
func readRecord(f *zip.File, limit int) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("record %q longer than %d bytes", f.Name, limit)
	}
	return b, nil
}

// legacyProtocol is the protocol version pickle of the legacy format.
const legacyProtocol = 1001

// decodeLegacy reads the legacy serialisation: five pickles (magic number,
// protocol version, system info, the object, the sorted storage keys)
// followed, per key, by an int64 element count and the raw elements.
func decodeLegacy(data []byte) (any, error) {
	magic, n, err := runPickle(data, nil)
	if err != nil {
		switch {
		case errors.Is(err, ErrForbiddenGlobal):
			return nil, err
		case errors.Is(err, ErrTruncated) && data[0] == 0x80:
			// Starts with a PROTO opcode and ends inside the first pickle.
			return nil, err
		case len(data) > 262 && string(data[257:262]) == "ustar":
			return nil, fmt.Errorf("%w: a tar archive (the pre-0.4 torch format is not supported)", ErrNotCheckpoint)
		}
		return nil, fmt.Errorf("%w: neither a zip archive nor a torch pickle (%v)", ErrNotCheckpoint, err)
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(torchMagic) != 0 {
		return nil, fmt.Errorf("%w: a pickle without the torch magic number", ErrNotCheckpoint)
	}
	pos := n
	next := func(what string, pids *storageTable) (any, error) {
		v, n, err := runPickle(data[pos:], pids)
		if err != nil {
			return nil, fmt.Errorf("legacy %s pickle at byte %d: %w", what, pos, err)
		}
		pos += n
		return v, nil
	}
	version, err := next("protocol version", nil)
	if err != nil {
		return nil, err
	}
	switch v, ok := version.(int); {
	case !ok:
		return nil, fmt.Errorf("legacy protocol version is %s, want the int %d", pyType(version), legacyProtocol)
	case v != legacyProtocol:
		return nil, fmt.Errorf("legacy protocol version %d, want %d", v, legacyProtocol)
	}
	info, err := next("system info", nil)
	if err != nil {
		return nil, err
	}
	if little, ok := dictGet(info, "little_endian"); ok && little != true {
		return nil, errors.New("big-endian legacy checkpoints are not supported")
	}
	pids := &storageTable{order: binary.LittleEndian, storages: make(map[string]*storage), fields: 6}
	root, err := next("object", pids)
	if err != nil {
		return nil, err
	}
	keysValue, err := next("storage keys", nil)
	if err != nil {
		return nil, err
	}
	keys, ok := keysValue.(*types.List)
	if !ok {
		return nil, fmt.Errorf("legacy storage keys are %s, not a list", pyType(keysValue))
	}
	for _, k := range *keys {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("legacy storage key is %s", pyType(k))
		}
		st, ok := pids.storages[key]
		if !ok {
			return nil, fmt.Errorf("legacy storage %q listed but never used", key)
		}
		if st.data != nil {
			return nil, fmt.Errorf("legacy storage %q listed twice", key)
		}
		if len(data)-pos < 8 {
			return nil, fmt.Errorf("legacy storage %q: size header: %w", key, ErrTruncated)
		}
		count := binary.LittleEndian.Uint64(data[pos:])
		pos += 8
		if count != uint64(st.numel) {
			return nil, fmt.Errorf("legacy storage %q holds %d elements, its tensors say %d", key, count, st.numel)
		}
		size := st.numel * st.dtype.size
		if len(data)-pos < size {
			return nil, fmt.Errorf("legacy storage %q: %d of %d bytes: %w", key, len(data)-pos, size, ErrTruncated)
		}
		st.data = data[pos : pos+size : pos+size]
		pos += size
	}
	return root, nil
}

// entry is one key/value pair of an unpickled dict, in insertion order.
type entry struct{ key, value any }

// dictEntries returns the items of a dict or OrderedDict in order.
func dictEntries(v any) ([]entry, bool) {
	switch d := v.(type) {
	case *types.OrderedDict:
		out := make([]entry, 0, d.Len())
		for e := d.List.Front(); e != nil; e = e.Next() {
			if item, ok := e.Value.(*types.OrderedDictEntry); ok {
				out = append(out, entry{item.Key, item.Value})
			}
		}
		return out, true
	case *types.Dict:
		out := make([]entry, len(*d))
		for i, e := range *d {
			out[i] = entry{e.Key, e.Value}
		}
		return out, true
	}
	return nil, false
}

// dictGet looks up a string key in a dict value.
func dictGet(v any, key string) (any, bool) {
	items, _ := dictEntries(v)
	for _, e := range items {
		if k, ok := e.key.(string); ok && k == key {
			return e.value, true
		}
	}
	return nil, false
}

// wrapperKeys are the keys under which training scripts store the
// state_dict next to epoch counters and optimizer state.
var wrapperKeys = []string{"model", "state_dict"}

// extract turns the unpickled root into a StateDict, materialising at most
// budget elements.
func extract(root any, budget int) (*StateDict, error) {
	items, ok := dictEntries(root)
	if !ok {
		return nil, fmt.Errorf("checkpoint holds %s, not a state dict", pyType(root))
	}
	var wrapper string
	for _, name := range wrapperKeys {
		inner, ok := dictGet(root, name)
		if !ok {
			continue
		}
		if innerItems, ok := dictEntries(inner); ok {
			if wrapper != "" {
				return nil, fmt.Errorf("checkpoint has both %q and %q dicts; which is the state dict is ambiguous", wrapper, name)
			}
			wrapper, items = name, innerItems
		}
	}
	sd := &StateDict{Tensors: make(map[string]*tensor.Tensor, len(items))}
	seen := make(map[string]bool, len(items))
	for _, e := range items {
		raw, ok := e.key.(string)
		if !ok {
			return nil, fmt.Errorf("state dict key is %s, not a str", pyType(e.key))
		}
		key := strings.TrimPrefix(raw, "module.")
		t, ok := e.value.(*rawTensor)
		if !ok {
			hint := ""
			if wrapper == "" {
				hint = " (want a state_dict, or a dict holding one under \"model\" or \"state_dict\")"
			}
			return nil, fmt.Errorf("key %q holds %s, not a tensor%s", raw, pyType(e.value), hint)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice (after removing the \"module.\" prefix)", key)
		}
		seen[key] = true
		numel, err := t.checkedNumel()
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", raw, err)
		}
		if !t.st.dtype.float {
			sd.Skipped = append(sd.Skipped, SkippedTensor{Key: key, DType: t.st.dtype.name, Shape: t.size})
			continue
		}
		if len(t.st.data) != t.st.numel*t.st.dtype.size {
			return nil, fmt.Errorf("key %q: storage %q has no data", raw, t.st.key)
		}
		if budget -= numel; budget < 0 {
			return nil, fmt.Errorf("key %q: the tensors view more elements than the checkpoint could hold", raw)
		}
		sd.Keys = append(sd.Keys, key)
		sd.Tensors[key] = t.materialize(numel)
	}
	return sd, nil
}
