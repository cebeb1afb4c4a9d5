package dataset

import (
	"bytes"
	"slices"
	"testing"
)

// counting is an IDX set whose image i has every pixel equal to i, so a
// loaded batch tells which samples it holds.
func counting(t *testing.T, n int) *IDX {
	t.Helper()
	pix := make([]byte, n*4)
	lab := make([]byte, n)
	for i := range n {
		for j := range 4 {
			pix[4*i+j] = byte(i)
		}
		lab[i] = byte(i % 3)
	}
	d, err := ReadIDX(bytes.NewReader(idxBytes([]uint32{uint32(n), 2, 2}, pix)),
		bytes.NewReader(idxBytes([]uint32{uint32(n)}, lab)),
		Normalization{Mean: []float32{0}, Std: []float32{1.0 / 255}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ids recovers the sample numbers of a loaded batch of counting images.
func ids(data []float32) []int {
	var out []int
	for i := 0; i < len(data); i += 4 {
		out = append(out, int(data[i]+0.5))
	}
	return out
}

func TestBatches(t *testing.T) {
	d := counting(t, 7)
	for _, c := range []struct {
		size   int
		starts []int
	}{{3, []int{0, 3, 6}}, {7, []int{0}}, {10, []int{0}}, {1, []int{0, 1, 2, 3, 4, 5, 6}}} {
		var starts, all []int
		for b, err := range Batches(d, c.size) {
			if err != nil {
				t.Fatal(err)
			}
			starts = append(starts, b.Start)
			got := ids(b.Images.Data)
			if len(got) != len(b.Labels) || b.Images.Shape[0] != len(got) {
				t.Fatalf("batch at %d: %d images, %d labels", b.Start, len(got), len(b.Labels))
			}
			for k, i := range got {
				if b.Labels[k] != i%3 {
					t.Errorf("sample %d label %d", i, b.Labels[k])
				}
			}
			all = append(all, got...)
		}
		if !slices.Equal(starts, c.starts) || !slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6}) {
			t.Errorf("size %d: starts %v samples %v", c.size, starts, all)
		}
	}
	for _, err := range Batches(d, 0) {
		if err == nil {
			t.Error("batch size 0 accepted")
		}
	}
	// Breaking out stops the walk.
	n := 0
	for range Batches(d, 2) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("%d batches after break", n)
	}
}

func TestSubsetAndSample(t *testing.T) {
	d := counting(t, 20)
	s, err := Subset(d, []int{5, 1, 19})
	if err != nil {
		t.Fatal(err)
	}
	x, _, err := Range(s, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(x.Data); !slices.Equal(got, []int{5, 1, 19}) {
		t.Errorf("subset loads %v", got)
	}
	if _, err := Subset(d, []int{20}); err == nil {
		t.Error("subset index out of range accepted")
	}
	if _, _, err := Range(s, 2, 4); err == nil {
		t.Error("range past the end accepted")
	}

	a, err := Sample(d, 8, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Sample(d, 8, 42)
	c, _ := Sample(d, 8, 43)
	xa, _, _ := Range(a, 0, 8)
	xb, _, _ := Range(b, 0, 8)
	xc, _, _ := Range(c, 0, 8)
	got := ids(xa.Data)
	if !slices.Equal(got, ids(xb.Data)) {
		t.Error("same seed, different samples")
	}
	if slices.Equal(got, ids(xc.Data)) {
		t.Error("different seeds, same samples")
	}
	slices.Sort(got)
	if len(slices.Compact(got)) != 8 {
		t.Errorf("samples repeat: %v", got)
	}
	for _, n := range []int{0, 21} {
		if _, err := Sample(d, n, 1); err == nil {
			t.Errorf("sample of %d accepted", n)
		}
	}
}
