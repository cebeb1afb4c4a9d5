package torchload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/nlpodyssey/gopickle/types"
)

// Metadata pickles as Python 3.11 and numpy 1.24 / 2.x write them with
// protocol 2 (pickletools.optimize'd).
const (
	numpyFloat64 = "\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R" +
		"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb" +
		"c_codecs\nencode\nX\x09\x00\x00\x00\x00\x00\x00\x00\x00\xc3\xa0Q@X\x06\x00\x00\x00latin1\x86R\x86R."
	namespace = "\x80\x02cargparse\nNamespace\n)\x81}(X\x02\x00\x00\x00lrG?\xb9\x99\x99\x99\x99\x99\x9a" +
		"X\x04\x00\x00\x00archX\x01\x00\x00\x00xub."
	torchSize   = "\x80\x02ctorch\nSize\nK\x02K\x03\x86\x85R."
	torchDevice = "\x80\x02ctorch\ndevice\nX\x03\x00\x00\x00cpu\x85R."
)

// amplified is a pickle that puts one string of size bytes in a tuple
// count times (through the memo), followed by op.
func amplified(size, count int, op string) string {
	var b bytes.Buffer
	b.WriteByte('X')
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(size)))
	b.Write(bytes.Repeat([]byte("a"), size))
	b.WriteString("q\x000(")
	for range count {
		b.WriteString("h\x00")
	}
	b.WriteString("t" + op)
	return b.String()
}

// TestVetPickle feeds hand-written pickle programs to the vetting pass.
// The refused ones would make gopickle panic (zero-length LONG, odd dict,
// bytes keys, huge lengths), allocate far more than the pickle (an error
// message spelling out a tuple of a million long strings, a quadratic
// integer conversion) or name a global outside the allowlist, also those
// gopickle resolves itself (copy_reg._reconstructor) and those hidden
// inside allowed metadata.
func TestVetPickle(t *testing.T) {
	tests := []struct {
		name     string
		pickle   string
		sentinel error  // nil: no sentinel expected
		contains string // "" : the pickle must run
	}{
		{"dict", "\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u.", nil, ""},
		{"bytes value", "}X\x01\x00\x00\x00aC\x01zs.", nil, ""},
		{"protocol 4 OrderedDict", "\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93)R.", nil, ""},
		{"memoised global names", "\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94h\x00h\x01\x93)R.", nil, ""},
		{"framed", "\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x07.", nil, ""},
		{"empty LONG1", "\x80\x02\x8a\x00.", nil, "LONG of 0 bytes"},
		{"empty LONG4", "\x8b\x00\x00\x00\x00.", nil, "LONG of 0 bytes"},
		{"odd dict", "(K\x01d.", nil, "odd number"},
		{"odd setitems", "}(K\x01u.", nil, "odd number"},
		{"bytes key", "}C\x01aK\x01s.", nil, "bytes used as a dict key"},
		{"bytes key via memo", "C\x01aq\x00}h\x00K\x01s.", nil, "bytes used as a dict key"},
		{"bytes key via DUP", "}C\x01a2s.", nil, "bytes used as a dict key"},
		{"bytes in frozenset", "(C\x01a\x91.", nil, "set member"},
		{"bytes in set", "\x8f(C\x01a\x90.", nil, "set member"},
		{"huge BINUNICODE8", "\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.", ErrTruncated, "argument of"},
		{"length out of range", "\x8e\xff\xff\xff\xff\xff\xff\xff\xff.", nil, "out of range"},
		{"huge frame", "\x95\x00\x00\x00\x00\x00\x00\x01\x00K\x01.", ErrTruncated, "frame of"},
		{"huge BINUNICODE", "X\xff\xff\xff\xff.", ErrTruncated, "argument of"},
		{"negative BINSTRING", "T\xff\xff\xff\xff.", ErrTruncated, "argument of"},
		{"no STOP", "K\x01", ErrTruncated, "no STOP"},
		{"unterminated line", "I12", ErrTruncated, "unterminated"},
		{"stop on empty stack", ".", nil, "stack underflow"},
		{"pop mark without mark", "1.", nil, "no MARK"},
		{"reduce underflow", "N)R.", nil, ""},
		{"protocol 6", "\x80\x06K\x01.", nil, "pickle protocol 6"},
		{"BINFLOAT", "G?\xb9\x99\x99\x99\x99\x99\x9a.", nil, ""},
		{"short BINFLOAT", "G?\xb9\x99.", ErrTruncated, "argument of 8 bytes"},
		{"numpy float64", numpyFloat64, nil, ""},
		{"numpy 2 float64", strings.Replace(numpyFloat64, "numpy.core", "numpy._core", 1), nil, ""},
		{"argparse.Namespace", namespace, nil, ""},
		{"torch.Size", torchSize, nil, ""},
		{"torch.device", torchDevice, nil, ""},
		{"NEWOBJ of a rebuild function", "ctorch._utils\n_rebuild_tensor\n)\x81.", nil, ""},
		{"NEWOBJ_EX", "cargparse\nNamespace\n)}\x92.", nil, "opcode not allowed"},
		{"long text INT", "I" + strings.Repeat("9", 65) + "\n.", nil, "integer of 65 digits"},
		{"long text LONG", "L" + strings.Repeat("9", 80) + "L\n.", nil, "integer of 81 digits"},
		{"long LONG1", "\x8a\x41" + strings.Repeat("\x01", 65) + ".", nil, "LONG of 65 bytes"},
		{"long LONG4", "\x8b\x00\x00\x01\x00.", nil, "LONG of 65536 bytes"},
		{"string repeated for REDUCE", amplified(100000, 1000, ")R."), nil, "containers hold"},
		{"string repeated for NEWOBJ", amplified(100000, 1000, ")\x81."), nil, "containers hold"},
		{"string repeated in a list", "X\x00\x00\x01\x00" + strings.Repeat("a", 65536) +
			"q\x00]" + strings.Repeat("h\x00a", 1000) + ")R.", nil, "containers hold"},
		{"string repeated a little", amplified(1000, 50, ")R."), nil, ""},
		{"unquoted STRING", "Sabc\n.", nil, "not quoted"},
		{"os.system", "cos\nsystem\n(S'echo'\ntR.", ErrForbiddenGlobal, "os.system"},
		{"builtins.eval", "\x80\x04\x8c\x08builtins\x8c\x04eval\x93.", ErrForbiddenGlobal, "builtins.eval"},
		{"forbidden names via memo", "\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93.", ErrForbiddenGlobal, "os.system"},
		{"copy_reg reconstructor", "ccopy_reg\n_reconstructor\n.", ErrForbiddenGlobal, "copy_reg._reconstructor"},
		{"builtin object", "c__builtin__\nobject\n.", ErrForbiddenGlobal, "__builtin__.object"},
		{"system in a Namespace", strings.Replace(namespace, "X\x01\x00\x00\x00x",
			"cposix\nsystem\nX\x04\x00\x00\x00echo\x85R", 1), ErrForbiddenGlobal, "posix.system"},
		{"exec in a numpy scalar", strings.Replace(numpyFloat64, "c_codecs\nencode\n",
			"cbuiltins\nexec\n", 1), ErrForbiddenGlobal, "builtins.exec"},
		{"getattr on torch.Size", "cbuiltins\ngetattr\nctorch\nSize\nX\x03\x00\x00\x00mro\x86R.",
			ErrForbiddenGlobal, "builtins.getattr"},
		{"__import__", "\x80\x04\x8c\x08builtins\x8c\n__import__\x93.", ErrForbiddenGlobal, "builtins.__import__"},
		{"subprocess", "csubprocess\nPopen\n.", ErrForbiddenGlobal, "subprocess.Popen"},
		{"numpy.load", "cnumpy\nload\n.", ErrForbiddenGlobal, "numpy.load"},
		{"numpy frombuffer", "cnumpy.core.multiarray\nfrombuffer\n.", ErrForbiddenGlobal, "numpy.core.multiarray.frombuffer"},
		{"argparse parser", "cargparse\nArgumentParser\n.", ErrForbiddenGlobal, "argparse.ArgumentParser"},
		{"torch.load", "ctorch\nload\n.", ErrForbiddenGlobal, "torch.load"},
		{"non-literal STACK_GLOBAL", "])\x93.", nil, "not string literals"},
		{"INST", "(ios\nsystem\n.", nil, "opcode not allowed"},
		{"OBJ", "(N)o.", nil, "opcode not allowed"},
		{"text PERSID", "P0\n.", nil, "opcode not allowed"},
		{"EXT1", "\x82\x01.", nil, "opcode not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.pickle)
			pids := &storageTable{storages: make(map[string]*storage), fields: 5}
			_, n, err := runPickle(data, pids)
			if tc.contains == "" {
				// Vetted: gopickle may still refuse it, but with an error.
				if err == nil && n != len(data) {
					t.Errorf("consumed %d of %d bytes", n, len(data))
				}
				if _, verr := vetPickle(data); verr != nil {
					t.Errorf("vet refused a harmless pickle: %v", verr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("error %.300v, want one containing %q", err, tc.contains)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("error %v is not %v", err, tc.sentinel)
			}
			if n := len(err.Error()); n > 500 {
				t.Errorf("error message of %d bytes", n)
			}
		})
	}
}

// TestRunPickleValues checks that vetted programs produce the Python values.
func TestRunPickleValues(t *testing.T) {
	v, _, err := runPickle([]byte("\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02u."), nil)
	if err != nil {
		t.Fatal(err)
	}
	items, ok := dictEntries(v)
	if !ok || len(items) != 2 || items[0].key != "a" || items[0].value != 1 || items[1].key != "b" || items[1].value != 2 {
		t.Fatalf("got %#v", v)
	}
	v, _, err = runPickle([]byte("\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93)R."), nil)
	if _, ok := v.(*types.OrderedDict); err != nil || !ok {
		t.Fatalf("got %s, %v; want an OrderedDict", pyType(v), err)
	}
}

// TestMetadataPlaceholders checks that each allowed metadata global gives
// an opaque value of its kind, whatever its arguments and BUILD state.
func TestMetadataPlaceholders(t *testing.T) {
	tests := []struct {
		name, pickle, kind string
	}{
		{"numpy float64", numpyFloat64, "a numpy scalar"},
		{"numpy 2 float64", strings.Replace(numpyFloat64, "numpy.core", "numpy._core", 1), "a numpy scalar"},
		{"numpy dtype", "\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.", "a numpy dtype"},
		{"numpy array", "\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R" +
			"(K\x01K\x01\x85cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R\x89C\x04\x00\x00\x80?tb.", "a numpy array"},
		{"numpy 2 array", "\x80\x04\x8c\x16numpy._core.multiarray\x8c\x0c_reconstruct\x93\x8c\x05numpy\x8c\x07ndarray\x93K\x00\x85C\x01b\x87R.", "a numpy array"},
		{"argparse.Namespace", namespace, "an argparse.Namespace"},
		{"torch.Size", torchSize, "a torch.Size"},
		{"torch.device", torchDevice, "a torch.device"},
		{"protocol 2 bytes", "c_codecs\nencode\nX\x01\x00\x00\x00bX\x06\x00\x00\x00latin1\x86R.", "a bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _, err := runPickle([]byte(tc.pickle), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := v.(*opaqueValue); !ok || pyType(v) != tc.kind {
				t.Fatalf("got %s (%T), want %s", pyType(v), v, tc.kind)
			}
		})
	}
}

// TestPersistentIDs covers the storage references a pickle may make.
func TestPersistentIDs(t *testing.T) {
	float := storageClasses["torch.FloatStorage"]
	half := storageClasses["torch.HalfStorage"]
	tests := []struct {
		name     string
		pid      []any
		contains string
	}{
		{"ok", []any{"storage", float, "0", "cpu", 4}, ""},
		{"same storage again", []any{"storage", float, "0", "cpu", 4}, ""},
		{"other dtype, same key", []any{"storage", half, "0", "cpu", 4}, "named as"},
		{"other size, same key", []any{"storage", float, "0", "cpu", 5}, "named as"},
		{"not a storage", []any{"module", float, "1", "cpu", 4}, `kind "module"`},
		{"short", []any{"storage", float, "1", "cpu"}, "5-tuple"},
		{"class is a string", []any{"storage", "torch.FloatStorage", "1", "cpu", 4}, "storage class is a str"},
		{"key is an int", []any{"storage", float, 1, "cpu", 4}, "storage key is an int"},
		{"location", []any{"storage", float, "1", nil, 4}, "location is None"},
		{"negative size", []any{"storage", float, "1", "cpu", -1}, "out of range"},
		{"size not int", []any{"storage", float, "1", "cpu", 1.5}, "element count is a float"},
	}
	pids := &storageTable{storages: make(map[string]*storage), fields: 5}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := pids.persistentLoad(types.NewTupleFromSlice(tc.pid))
			if tc.contains == "" {
				if st, ok := v.(*storage); err != nil || !ok || st != pids.storages["0"] {
					t.Fatalf("got %s, %v; want the storage of key 0", pyType(v), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("error %v, want one containing %q", err, tc.contains)
			}
		})
	}
}
