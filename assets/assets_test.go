package assets

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"slices"
	"testing"

	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

func TestFashionMNISTTest(t *testing.T) {
	d, err := FashionMNISTTest()
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 10000 || d.SampleShape() != [3]int{1, 28, 28} {
		t.Fatalf("%d images of %v", d.Len(), d.SampleShape())
	}
	if !slices.Equal(d.Classes(), FashionMNISTClasses) {
		t.Errorf("classes %v", d.Classes())
	}
	count := make([]int, 10)
	for _, l := range d.Labels() {
		count[l]++
	}
	for c, n := range count {
		if n != 1000 {
			t.Errorf("class %d has %d images, want 1000", c, n)
		}
	}

	// The first image against the raw bytes of the file (16-byte header).
	zr, err := gzip.NewReader(bytes.NewReader(FashionMNISTTestImages()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	x, _, err := dataset.Range(d, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range raw[16 : 16+28*28] {
		want := (float64(v)/255 - FashionMNISTMean) / FashionMNISTStd
		if math.Abs(float64(x.Data[i])-want) > 1e-6 {
			t.Fatalf("pixel %d = %v, want %v", i, x.Data[i], want)
		}
	}
}

// TestCheckpointMatchesPyTorch runs the embedded model on the embedded
// test images and compares with tools/fmnist/fixtures.py's logits, within
// 1e-3 of their scale (docs/DESIGN.md, "Testing and numerics").
func TestCheckpointMatchesPyTorch(t *testing.T) {
	sd, err := torchload.LoadBytes(ResNet20Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	m, err := zoo.Build(ResNet20FashionMNISTModel, sd)
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Mean[0] != FashionMNISTMean || m.Spec.Std[0] != FashionMNISTStd {
		t.Errorf("zoo normalises with %v/%v, the model was trained with %v/%v",
			m.Spec.Mean, m.Spec.Std, FashionMNISTMean, FashionMNISTStd)
	}
	d, err := FashionMNISTTest()
	if err != nil {
		t.Fatal(err)
	}
	x, labels, err := dataset.Range(d, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tensor.ReadNPY("testdata/logits_first64.npy")
	if err != nil {
		t.Fatal(err)
	}
	got := m.Logits(x)
	if !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("logits %v, PyTorch %v", got.Shape, want.Shape)
	}
	var scale, worst float64
	for i, w := range want.Data {
		scale = max(scale, math.Abs(float64(w)))
		worst = max(worst, math.Abs(float64(got.Data[i]-w)))
	}
	if worst > 1e-3*scale {
		t.Errorf("max |logit - PyTorch| = %.3g, more than 1e-3 of the scale %.3g", worst, scale)
	}
	correct := 0
	for i, l := range labels {
		row := got.Data[i*10 : (i+1)*10]
		if slices.Index(row, slices.Max(row)) == l {
			correct++
		}
	}
	t.Logf("max |logit - PyTorch| = %.3g (scale %.3g); %d/64 correct", worst, scale, correct)
}
