package zoo

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/tensor"
)

// stateDictOf is net's own state as a checkpoint would hold it (sharing
// the tensors).
func stateDictOf(net layers.Module) *torchload.StateDict {
	sd := &torchload.StateDict{Tensors: map[string]*tensor.Tensor{}}
	for _, e := range layers.StateDict(net) {
		sd.Keys = append(sd.Keys, e.Name)
		sd.Tensors[e.Name] = e.Tensor
	}
	return sd
}

// narrowStateDict is the state of a narrowed instance of name in layout,
// as a checkpoint would hold it.
func narrowStateDict(t *testing.T, name string, layout Layout, div int) *torchload.StateDict {
	t.Helper()
	m, err := NewNarrow(name, layout, 3, 10, div)
	if err != nil {
		t.Fatal(err)
	}
	return stateDictOf(m.Net)
}

// without is sd less the keys drop says to drop.
func without(sd *torchload.StateDict, drop func(key string) bool) *torchload.StateDict {
	out := &torchload.StateDict{Tensors: map[string]*tensor.Tensor{}}
	for _, k := range sd.Keys {
		if !drop(k) {
			out.Keys = append(out.Keys, k)
			out.Tensors[k] = sd.Tensors[k]
		}
	}
	return out
}

// TestRecognizeNarrow: every architecture in every layout, narrowed to a
// quarter of its widths and to the least, is recognised as itself, and
// the model built has the checkpoint's keys and shapes.
func TestRecognizeNarrow(t *testing.T) {
	for _, name := range Names() {
		for _, layout := range Layouts(name) {
			for _, div := range []int{4, 1 << 10} {
				t.Run(fmt.Sprintf("%s/%s/%d", name, layout, div), func(t *testing.T) {
					sd := narrowStateDict(t, name, layout, div)
					m, err := Recognize(sd)
					if err != nil {
						t.Fatal(err)
					}
					if m.Name != name || m.Layout != layout {
						t.Fatalf("recognised %s (%s layout)", m.Name, m.Layout)
					}
					got := stateDictOf(m.Net)
					if !slices.Equal(got.Keys, sd.Keys) {
						t.Fatal("the recognised model's keys differ from the checkpoint's")
					}
					for _, k := range sd.Keys {
						if !slices.Equal(got.Tensors[k].Shape, sd.Tensors[k].Shape) {
							t.Fatalf("%s: shape %v, checkpoint %v", k, got.Tensors[k].Shape, sd.Tensors[k].Shape)
						}
					}
				})
			}
		}
	}
}

// TestRecognizeRefuses: a checkpoint cut short, one with a block removed,
// one with a layer of the wrong shape and one with a layer too many are
// refused with one line naming the closest architecture and the first key
// that does not fit.
func TestRecognizeRefuses(t *testing.T) {
	r18 := loadFixture(t, "resnet18.zip.pth.gz")
	seen4 := false
	cut := without(r18, func(k string) bool { // a save cut off after layer3
		seen4 = seen4 || strings.HasPrefix(k, "layer4.")
		return seen4
	})
	extra := without(r18, func(string) bool { return false })
	extra.Keys = append(extra.Keys, "layer4.2.conv1.weight")
	extra.Tensors["layer4.2.conv1.weight"] = tensor.New(512, 512, 3, 3)
	tvMobile := narrowStateDict(t, "mobilenet_v2", LayoutTorchvision, 2)
	dense := without(tvMobile, func(string) bool { return false })
	dense.Tensors = map[string]*tensor.Tensor{}
	for k, v := range tvMobile.Tensors {
		dense.Tensors[k] = v
	}
	dense.Tensors["features.2.conv.1.0.weight"] = tensor.New(48, 2, 3, 3) // a grouped conv where a depthwise one belongs

	tests := []struct {
		name    string
		sd      *torchload.StateDict
		closest string
		layout  Layout
		key     string
		want    []string // in the message
	}{
		{"resnet18 cut after layer3", cut, "resnet18", LayoutTorchvision, "layer4.0.conv1.weight",
			[]string{`has no key "layer4.0.conv1.weight" (resnet18 wants [512 256 3 3])`}},
		{"resnet50 without layer3.2", without(narrowStateDict(t, "resnet50", "", 4), func(k string) bool { return strings.HasPrefix(k, "layer3.2.") }),
			"resnet50", LayoutTorchvision, "layer3.2.conv1.weight", []string{`has no key "layer3.2.conv1.weight"`}},
		{"regnetx_600m without s3.b2", without(narrowStateDict(t, "regnetx_600m", "", 4), func(k string) bool { return strings.HasPrefix(k, "s3.b2.") }),
			"regnetx_600m", LayoutBRECQ, "s3.b2.f.a.weight", []string{`has no key "s3.b2.f.a.weight"`}},
		{"mnasnet without its last conv", without(narrowStateDict(t, "mnasnet", "", 4), func(k string) bool { return strings.HasPrefix(k, "layers.14.") }),
			"mnasnet", LayoutTorchvision, "layers.14.weight", []string{`has no key "layers.14.weight"`}},
		{"mobilenet_v2 with a grouped conv", dense, "mobilenet_v2", LayoutTorchvision, "features.2.conv.1.0.weight",
			[]string{`has key "features.2.conv.1.0.weight" as [48 2 3 3], mobilenet_v2 wants [48 1 3 3]`}},
		{"resnet18 with a layer too many", extra, "resnet18", LayoutTorchvision, "layer4.2.conv1.weight",
			[]string{`has key "layer4.2.conv1.weight" [512 512 3 3], which resnet18 lacks`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Recognize(tc.sd)
			var nr *NotRecognizedError
			if !errors.As(err, &nr) {
				t.Fatalf("Recognize: model %v, error %v; want a *NotRecognizedError", m, err)
			}
			if nr.Closest != tc.closest || nr.Layout != tc.layout || nr.Key != tc.key {
				t.Errorf("closest %s (%s), key %q; want %s (%s), %q", nr.Closest, nr.Layout, nr.Key, tc.closest, tc.layout, tc.key)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans lines: %q", msg)
			}
			for _, w := range append(tc.want, "closest is "+tc.closest+" ("+string(tc.layout)+" layout)") {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
		})
	}
	if _, err := Recognize(&torchload.StateDict{Tensors: map[string]*tensor.Tensor{}}); err == nil {
		t.Error("an empty checkpoint was recognised")
	}
}

// TestBuildTellsWidthsApart: resnet50, wide_resnet50_2 and resnext50_32x4d
// share every key name; Build refuses one's checkpoint as another with
// the keys whose shapes the design fixes, and takes the key layout of a
// name known in two from the checkpoint.
func TestBuildTellsWidthsApart(t *testing.T) {
	wide := narrowStateDict(t, "wide_resnet50_2", "", 4)
	for _, tc := range []struct {
		name string
		sd   *torchload.StateDict
		keys []string
	}{
		{"resnet50", wide, []string{"layer1.0.conv1.weight", "layer4.2.bn2.running_var"}},
		{"resnext50_32x4d", wide, []string{"layer1.0.conv2.weight", "layer4.2.conv2.weight"}},
		{"wide_resnet50_2", narrowStateDict(t, "resnext50_32x4d", "", 4), []string{"layer1.0.conv2.weight"}},
	} {
		_, err := Build(tc.name, tc.sd)
		var me *torchload.MismatchError
		if !errors.As(err, &me) {
			t.Errorf("Build(%s): %v, want a *torchload.MismatchError", tc.name, err)
			continue
		}
		for _, k := range tc.keys {
			if !strings.Contains(err.Error(), strconv.Quote(k)) {
				t.Errorf("Build(%s): error does not name %s", tc.name, k)
			}
		}
	}
	m, err := Build("mobilenet_v2", narrowStateDict(t, "mobilenet_v2", LayoutTorchvision, 4))
	if err != nil || m.Layout != LayoutTorchvision {
		t.Errorf("Build(mobilenet_v2) of torchvision's layout: %v, %v", m, err)
	}
	if _, err := NewNarrow("regnetx_600m", LayoutTorchvision, 3, 10, 1); err == nil {
		t.Error("NewNarrow made regnetx_600m in a layout it does not have")
	}
}
