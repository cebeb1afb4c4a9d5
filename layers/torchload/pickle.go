package torchload

// Running a vetted pickle with gopickle (docs/DESIGN.md, "Models and checkpoints"): the only globals a
// checkpoint may name are the tensor-rebuild functions, the storage classes,
// collections.OrderedDict and a few data-only metadata classes (numpy
// scalars and arrays, argparse.Namespace, torch.Size, torch.device) that
// training scripts save beside the state dict; the only persistent ids are
// storages.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// GlobalError reports a pickle global outside the allowlist, e.g. os.system
// or builtins.eval in a malicious file, or a model class in a checkpoint
// that pickled a whole nn.Module instead of its state_dict. It matches
// ErrForbiddenGlobal under errors.Is.
type GlobalError struct {
	Module, Name string
}

func (e *GlobalError) Error() string {
	// Quoted: the name comes from the file and may hold any bytes.
	return fmt.Sprintf("pickle global %q is not allowed: a checkpoint may only name "+
		"torch._utils._rebuild_{tensor,tensor_v2,parameter,parameter_with_state}, "+
		"the torch.*Storage classes and collections.OrderedDict, and beside the state dict "+
		"numpy scalars, dtypes and arrays, argparse.Namespace, torch.Size and torch.device",
		e.Module+"."+e.Name)
}

func (e *GlobalError) Is(target error) bool { return target == ErrForbiddenGlobal }

// rebuilder is a tensor-rebuild function the pickle may call. It is used
// through a pointer so that gopickle can hash it like any Python object.
type rebuilder struct {
	name string
	call func(args []any) (any, error)
}

func (r *rebuilder) Call(args ...any) (any, error) {
	v, err := r.call(args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	return v, nil
}

var rebuilders = map[string]*rebuilder{
	"torch._utils._rebuild_tensor":               {"_rebuild_tensor", rebuildTensor},
	"torch._utils._rebuild_tensor_v2":            {"_rebuild_tensor_v2", rebuildTensor},
	"torch._utils._rebuild_parameter":            {"_rebuild_parameter", rebuildParameter},
	"torch._utils._rebuild_parameter_with_state": {"_rebuild_parameter_with_state", rebuildParameter},
}

// orderedDict is built into gopickle's unpickler, which resolves it before
// asking findClass.
const orderedDict = "collections.OrderedDict"

// metadataClass is a global that training scripts pickle beside the state
// dict: epoch counters and best accuracies as numpy scalars, the command
// line as an argparse.Namespace, and so on. Calling or instantiating it
// (REDUCE, NEWOBJ) gives an opaqueValue; its arguments and any BUILD state
// are dropped unread, so naming one runs no Python and no Go beyond an
// allocation. A state dict never holds one: extract refuses it like any
// other non-tensor value.
type metadataClass struct {
	what string // the value's kind with its article, for errors
}

func (c *metadataClass) Call(...any) (any, error)  { return &opaqueValue{c}, nil }
func (c *metadataClass) PyNew(...any) (any, error) { return &opaqueValue{c}, nil }

// opaqueValue stands for an instance of a metadataClass.
type opaqueValue struct{ class *metadataClass }

// PySetState drops the state of BUILD (a dtype's byte order, a
// Namespace's attributes, an array's data).
func (*opaqueValue) PySetState(any) error { return nil }

var (
	numpyScalar = &metadataClass{"a numpy scalar"}
	numpyArray  = &metadataClass{"a numpy array"}
)

// metadataClasses maps the allowed metadata globals, in the spellings of
// numpy 1 (numpy.core) and numpy 2 (numpy._core), to their class.
var metadataClasses = map[string]*metadataClass{
	"numpy.core.multiarray.scalar":        numpyScalar,
	"numpy._core.multiarray.scalar":       numpyScalar,
	"numpy.core.multiarray._reconstruct":  numpyArray,
	"numpy._core.multiarray._reconstruct": numpyArray,
	"numpy.ndarray":                       numpyArray,
	"numpy.dtype":                         {"a numpy dtype"},
	"argparse.Namespace":                  {"an argparse.Namespace"},
	"torch.Size":                          {"a torch.Size"},
	"torch.device":                        {"a torch.device"},
	// Pickle protocol 2, torch.save's default, has no bytes opcode: Python 3
	// writes a bytes object (a numpy scalar's or array's raw data) as
	// _codecs.encode(str, "latin1"); here it gives a placeholder like the rest.
	"_codecs.encode": {"a bytes"},
}

// findClass resolves an allowed global; storage classes resolve to their
// *dtype, which persistent ids carry.
func findClass(module, name string) (any, error) {
	full := module + "." + name
	if r, ok := rebuilders[full]; ok {
		return r, nil
	}
	if c, ok := metadataClasses[full]; ok {
		return c, nil
	}
	if dt, ok := storageClasses[full]; ok {
		return dt, nil
	}
	if full == orderedDict {
		return &types.OrderedDictClass{}, nil
	}
	return nil, &GlobalError{Module: module, Name: name}
}

func checkGlobal(module, name string) error {
	_, err := findClass(module, name)
	return err
}

// rebuildTensor implements torch._utils._rebuild_tensor(storage, offset,
// size, stride) and _rebuild_tensor_v2(..., requires_grad, backward_hooks
// [, metadata]); the autograd arguments do not matter for loading.
func rebuildTensor(args []any) (any, error) {
	if n := len(args); n != 4 && n != 6 && n != 7 {
		return nil, fmt.Errorf("%d arguments, want 4, 6 or 7", n)
	}
	st, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("storage argument is %s", pyType(args[0]))
	}
	offset, ok := args[1].(int)
	if !ok {
		return nil, fmt.Errorf("storage offset is %s", pyType(args[1]))
	}
	size, err := intTuple(args[2])
	if err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	stride, err := intTuple(args[3])
	if err != nil {
		return nil, fmt.Errorf("stride: %w", err)
	}
	return &rawTensor{st: st, offset: offset, size: size, stride: stride}, nil
}

// rebuildParameter implements _rebuild_parameter(data, requires_grad,
// backward_hooks[, state]): a Parameter loads as its data.
func rebuildParameter(args []any) (any, error) {
	if n := len(args); n != 3 && n != 4 {
		return nil, fmt.Errorf("%d arguments, want 3 or 4", n)
	}
	t, ok := args[0].(*rawTensor)
	if !ok {
		return nil, fmt.Errorf("data argument is %s", pyType(args[0]))
	}
	return t, nil
}

func intTuple(v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("%s, not a tuple", pyType(v))
	}
	if len(*t) > maxDims {
		return nil, fmt.Errorf("%d entries (at most %d)", len(*t), maxDims)
	}
	out := make([]int, len(*t))
	for i, x := range *t {
		n, ok := x.(int)
		if !ok {
			return nil, fmt.Errorf("entry %d is %s, not an int", i, pyType(x))
		}
		out[i] = n
	}
	return out, nil
}

// storageTable resolves the persistent ids of one checkpoint: every id
// with the same key is the same storage. read, when set, fetches the bytes
// of a storage the first time it is named (the zip format).
type storageTable struct {
	order    binary.ByteOrder
	storages map[string]*storage
	read     func(*storage) error
	fields   int // 5 in the zip format, 6 (with view metadata) in the legacy one
}

// persistentLoad parses ('storage', class, key, location, numel[, view]).
func (s *storageTable) persistentLoad(pid any) (any, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || len(*t) != s.fields {
		return nil, fmt.Errorf("persistent id is not a %d-tuple storage reference", s.fields)
	}
	id := *t
	if kind, _ := id[0].(string); kind != "storage" {
		return nil, fmt.Errorf("persistent id of kind %q, want \"storage\"", kind)
	}
	dt, ok := id[1].(*dtype)
	if !ok {
		return nil, fmt.Errorf("storage class is %s", pyType(id[1]))
	}
	key, ok := id[2].(string)
	if !ok {
		return nil, fmt.Errorf("storage key is %s", pyType(id[2]))
	}
	if _, ok := id[3].(string); !ok {
		return nil, fmt.Errorf("storage %q: location is %s", key, pyType(id[3]))
	}
	numel, ok := id[4].(int)
	if !ok {
		return nil, fmt.Errorf("storage %q: element count is %s", key, pyType(id[4]))
	}
	if numel < 0 || numel > math.MaxInt/8 {
		return nil, fmt.Errorf("storage %q: element count %d out of range", key, numel)
	}
	if s.fields == 6 && id[5] != nil {
		return nil, fmt.Errorf("storage %q: storage views (torch < 0.4 checkpoints) are not supported", key)
	}
	if st, ok := s.storages[key]; ok {
		if st.dtype != dt || st.numel != numel {
			return nil, fmt.Errorf("storage %q named as %d x %s and as %d x %s",
				key, st.numel, st.dtype.name, numel, dt.name)
		}
		return st, nil
	}
	st := &storage{key: key, dtype: dt, numel: numel, order: s.order}
	s.storages[key] = st
	if s.read != nil {
		if err := s.read(st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// runPickle vets one pickle program at the start of data, runs it and
// returns its value and its length. pids may be nil for pickles that hold
// no tensors.
func runPickle(data []byte, pids *storageTable) (any, int, error) {
	end, err := vetPickle(data)
	if err != nil {
		return nil, 0, err
	}
	u := pickle.NewUnpickler(bytes.NewReader(data[:end]))
	u.FindClass = findClass
	if pids != nil {
		u.PersistentLoad = pids.persistentLoad
	}
	v, err := u.Load()
	if err != nil {
		return nil, 0, fmt.Errorf("unpickle: %w", err)
	}
	return v, end, nil
}

// torchMagic is the first pickle of a legacy checkpoint.
var torchMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// pyType names the Python type of an unpickled value with its article,
// for errors; it never prints the value, which may be huge or cyclic.
func pyType(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a str"
	case []byte:
		return "a bytes"
	case *types.Tuple:
		return "a tuple"
	case *types.List:
		return "a list"
	case *types.Dict, *types.OrderedDict:
		return "a dict"
	case *rawTensor:
		return "a tensor"
	case *storage:
		return "a storage"
	case *dtype:
		return "a storage class"
	case *rebuilder:
		return "the function " + v.name
	case *opaqueValue:
		return v.class.what
	case *metadataClass:
		return "a metadata class or function"
	}
	return fmt.Sprintf("a %T", v)
}
