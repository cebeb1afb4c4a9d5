package dataset

import (
	"bytes"
	"testing"
)

// FuzzReadIDX checks that no pair of image and label streams makes
// ReadIDX panic or return a data set that disagrees with itself, and
// that ReadIDXHeader agrees with it. CI runs it for a few seconds; run it
// longer with
//
//	go test -run '^$' -fuzz FuzzReadIDX -fuzztime 60s ./dataset/
func FuzzReadIDX(f *testing.F) {
	images, labels := sampleIDX()
	f.Add(images, labels)
	f.Add(gz(f, images), gz(f, labels))
	f.Add(images[:len(images)-1], labels)
	f.Add(idxBytes([]uint32{1, 65536, 65536}, nil), labels)
	f.Add(gz(f, idxBytes([]uint32{0, 1, 1}, nil)), idxBytes([]uint32{0}, nil))
	norm := Normalization{Mean: []float32{0.5}, Std: []float32{0.25}}
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		d, err := ReadIDX(bytes.NewReader(images), bytes.NewReader(labels), norm, nil)
		if err != nil {
			return
		}
		dims, err := ReadIDXHeader(bytes.NewReader(images), 3)
		if err != nil || dims[0] != d.Len() || [3]int{1, dims[1], dims[2]} != d.SampleShape() {
			t.Fatalf("header %v, %v; the data set has %d of %v", dims, err, d.Len(), d.SampleShape())
		}
		for _, y := range d.Labels() {
			if y < 0 || y >= len(d.Classes()) {
				t.Fatalf("label %d of %d classes", y, len(d.Classes()))
			}
		}
		if d.Len() > 0 {
			x, _, err := d.Load([]int{d.Len() - 1})
			if err != nil || x.Numel() != dims[1]*dims[2] {
				t.Fatalf("load the last image: %v, %v", x, err)
			}
		}
	})
}
