package torchload

import (
	"errors"
	"strings"
	"testing"

	"github.com/nlpodyssey/gopickle/types"
)

// TestVetPickle feeds hand-written pickle programs to the vetting pass.
// The refused ones would make gopickle panic (zero-length LONG, odd dict,
// bytes keys, huge lengths) or name a global outside the allowlist, also
// those gopickle resolves itself (copy_reg._reconstructor).
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
		{"unquoted STRING", "Sabc\n.", nil, "not quoted"},
		{"os.system", "cos\nsystem\n(S'echo'\ntR.", ErrForbiddenGlobal, "os.system"},
		{"builtins.eval", "\x80\x04\x8c\x08builtins\x8c\x04eval\x93.", ErrForbiddenGlobal, "builtins.eval"},
		{"forbidden names via memo", "\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93.", ErrForbiddenGlobal, "os.system"},
		{"copy_reg reconstructor", "ccopy_reg\n_reconstructor\n.", ErrForbiddenGlobal, "copy_reg._reconstructor"},
		{"builtin object", "c__builtin__\nobject\n.", ErrForbiddenGlobal, "__builtin__.object"},
		{"non-literal STACK_GLOBAL", "])\x93.", nil, "not string literals"},
		{"INST", "(ios\nsystem\n.", nil, "opcode not allowed"},
		{"OBJ", "(N)o.", nil, "opcode not allowed"},
		{"NEWOBJ", "N)\x81.", nil, "opcode not allowed"},
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
				t.Fatalf("error %v, want one containing %q", err, tc.contains)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("error %v is not %v", err, tc.sentinel)
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
