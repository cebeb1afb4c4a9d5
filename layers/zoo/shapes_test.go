package zoo

import (
	"slices"
	"testing"

	"github.com/dghcore/dghcore/layers"
)

// TestProbeShapesExtrapolates checks the shapes ProbeShapes extends from
// its small probes against a real forward pass at the size, for every
// architecture at sizes that divide its strides and sizes that do not.
func TestProbeShapesExtrapolates(t *testing.T) {
	for _, tc := range []struct {
		model string
		sizes []int
	}{
		{"resnet20", []int{129, 200, 257}},
		{"resnet18", []int{129, 225, 300}},
		{"mobilenet_v2", []int{150, 224, 231}},
		{"resnet50", []int{161}},
	} {
		m, err := New(tc.model, 3, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tc.sizes {
			got, err := layers.ProbeShapes(m.Net, 3, s)
			if err != nil {
				t.Fatalf("%s at %d: %v", tc.model, s, err)
			}
			want, err := layers.RunShapes(m.Net, 3, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s at %d: %d leaves, a real pass has %d", tc.model, s, len(got), len(want))
			}
			for i := range want {
				if !slices.Equal(got[i].In, want[i].In) || !slices.Equal(got[i].Out, want[i].Out) || got[i].Name != want[i].Name || got[i].InputFrom != want[i].InputFrom {
					t.Fatalf("%s at %d: leaf %d %s %v -> %v (from %d), a real pass gives %s %v -> %v (from %d)", tc.model, s, i,
						got[i].Name, got[i].In, got[i].Out, got[i].InputFrom, want[i].Name, want[i].In, want[i].Out, want[i].InputFrom)
				}
			}
		}
	}
}
