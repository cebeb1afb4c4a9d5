package torchload

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/tensor"
)

func TestMatch(t *testing.T) {
	sd := &StateDict{
		Keys: []string{"conv.weight", "bn.weight", "fc.weight"},
		Tensors: map[string]*tensor.Tensor{
			"conv.weight": tensor.New(16, 3, 3, 3),
			"bn.weight":   tensor.New(16),
			"fc.weight":   tensor.New(10, 16),
		},
		Skipped: []SkippedTensor{{Key: "bn.num_batches_tracked", DType: "int64"}},
	}
	exact := []NamedShape{
		{"fc.weight", []int{10, 16}}, // order does not matter
		{"conv.weight", []int{16, 3, 3, 3}},
		{"bn.weight", []int{16}},
	}
	tests := []struct {
		name  string
		want  []NamedShape
		err   *MismatchError // nil: a match
		lines []string       // what the message must say
	}{
		{"exact", exact, nil, nil},
		{"missing", append(exact[:3:3], NamedShape{"fc.bias", []int{10}}), &MismatchError{
			Missing: []NamedShape{{"fc.bias", []int{10}}},
		}, []string{`missing key "fc.bias", model shape [10]`}},
		{"unexpected", exact[1:], &MismatchError{
			Unexpected: []NamedShape{{"fc.weight", []int{10, 16}}},
		}, []string{`unexpected key "fc.weight", checkpoint shape [10 16]`}},
		{"misshaped", []NamedShape{exact[0], {"conv.weight", []int{16, 1, 3, 3}}, exact[2]}, &MismatchError{
			Misshaped: []ShapeMismatch{{"conv.weight", []int{16, 3, 3, 3}, []int{16, 1, 3, 3}}},
		}, []string{`key "conv.weight": checkpoint shape [16 3 3 3], model shape [16 1 3 3]`}},
		{"skipped key wanted", append(exact[:3:3], NamedShape{"bn.num_batches_tracked", []int{}}), &MismatchError{
			Missing: []NamedShape{{"bn.num_batches_tracked", []int{}}},
			skipped: map[string]string{"bn.num_batches_tracked": "int64"},
		}, []string{`missing key "bn.num_batches_tracked"`, "stores it as int64"}},
		{"everything at once", []NamedShape{
			{"conv.weight", []int{8, 3, 3, 3}},
			{"bn.weight", []int{16}},
			{"bn.bias", []int{16}},
			{"classifier.weight", []int{10, 16}},
		}, &MismatchError{
			Missing:    []NamedShape{{"bn.bias", []int{16}}, {"classifier.weight", []int{10, 16}}},
			Unexpected: []NamedShape{{"fc.weight", []int{10, 16}}},
			Misshaped:  []ShapeMismatch{{"conv.weight", []int{16, 3, 3, 3}, []int{8, 3, 3, 3}}},
		}, []string{
			"2 missing, 1 unexpected, 1 mis-shaped",
			`missing key "bn.bias", model shape [16]`,
			`missing key "classifier.weight", model shape [10 16]`,
			`unexpected key "fc.weight", checkpoint shape [10 16]`,
			`key "conv.weight": checkpoint shape [16 3 3 3], model shape [8 3 3 3]`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := sd.Match(tc.want)
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MismatchError", err)
			}
			if !reflect.DeepEqual(me, tc.err) {
				t.Errorf("got %+v, want %+v", me, tc.err)
			}
			msg := err.Error()
			for _, l := range tc.lines {
				if !strings.Contains(msg, l) {
					t.Errorf("message %q lacks %q", msg, l)
				}
			}
			if n := strings.Count(msg, "\n"); n != len(me.Missing)+len(me.Unexpected)+len(me.Misshaped) {
				t.Errorf("message has %d item lines:\n%s", n, msg)
			}
		})
	}
}

// TestMatchLoaded matches a real checkpoint against the names and shapes
// PyTorch wrote, through the manifest's expected arrays.
func TestMatchLoaded(t *testing.T) {
	m := readManifest(t)
	sd, err := Load("testdata/zip_model_module.pt")
	if err != nil {
		t.Fatal(err)
	}
	var want []NamedShape
	for _, k := range m.Keys {
		w, err := tensor.ReadNPY("testdata/" + m.Expected[k])
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, NamedShape{k, w.Shape})
	}
	if err := sd.Match(want); err != nil {
		t.Fatal(err)
	}
	want[0].Shape = append([]int{1}, want[0].Shape...)
	if err := sd.Match(want[:len(want)-1]); err == nil ||
		!strings.Contains(err.Error(), "0 missing, 1 unexpected, 1 mis-shaped") {
		t.Fatalf("error %v, want 1 unexpected and 1 mis-shaped key", err)
	}
}
