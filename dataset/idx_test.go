package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idxBytes builds an unsigned-byte IDX file with the given sizes and data.
func idxBytes(sizes []uint32, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, idxUnsignedByte, byte(len(sizes))})
	binary.Write(&b, binary.BigEndian, sizes)
	b.Write(data)
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// sampleIDX is 3 images of 2x4 pixels with labels 2, 0, 1.
func sampleIDX() (images, labels []byte) {
	pix := make([]byte, 3*2*4)
	for i := range pix {
		pix[i] = byte(i * 11)
	}
	return idxBytes([]uint32{3, 2, 4}, pix), idxBytes([]uint32{3}, []byte{2, 0, 1})
}

func TestReadIDX(t *testing.T) {
	images, labels := sampleIDX()
	norm := Normalization{Mean: []float32{0.25}, Std: []float32{0.5}}
	for _, c := range []struct {
		name           string
		images, labels []byte
	}{
		{"raw", images, labels},
		{"gzip", gz(t, images), gz(t, labels)},
		{"mixed", gz(t, images), labels},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := ReadIDX(bytes.NewReader(c.images), bytes.NewReader(c.labels), norm, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d.Len() != 3 || d.SampleShape() != [3]int{1, 2, 4} {
				t.Fatalf("len %d shape %v", d.Len(), d.SampleShape())
			}
			if !slices.Equal(d.Classes(), []string{"0", "1", "2"}) {
				t.Errorf("classes %v", d.Classes())
			}
			x, y, err := d.Load([]int{2, 0})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(x.Shape, []int{2, 1, 2, 4}) || !slices.Equal(y, []int{1, 2}) {
				t.Fatalf("shape %v labels %v", x.Shape, y)
			}
			for k, img := range []int{2, 0} {
				for j := range 8 {
					v := float64(byte((img*8 + j) * 11))
					want := (v/255 - 0.25) / 0.5
					if got := x.Data[k*8+j]; math.Abs(float64(got)-want) > 1e-6 {
						t.Errorf("image %d pixel %d = %v, want %v", img, j, got, want)
					}
				}
			}
		})
	}
}

func TestReadIDXErrors(t *testing.T) {
	images, labels := sampleIDX()
	norm := Normalization{Mean: []float32{0.5}, Std: []float32{0.5}}
	corrupt := gz(t, images)
	corrupt[len(corrupt)-6] ^= 0xff // the CRC-32 in the gzip trailer
	cases := []struct {
		name           string
		images, labels []byte
		classes        []string
		want           string
	}{
		{"empty", nil, labels, nil, "idx images: header: truncated"},
		{"bad magic", append([]byte{1, 2}, images[2:]...), labels, nil, "bad magic"},
		{"int type", append([]byte{0, 0, 0x0c}, images[3:]...), labels, nil, "only unsigned bytes"},
		{"labels as images", labels, labels, nil, "1 dimensions, want 3"},
		{"short header", images[:9], labels, nil, "header sizes: truncated"},
		{"truncated data", images[:len(images)-1], labels, nil, "truncated: 23 of 24"},
		{"truncated gzip", gz(t, images)[:30], labels, nil, "idx images"},
		{"trailing", append(slices.Clone(images), 7), labels, nil, "more data than"},
		{"bad checksum", corrupt, labels, nil, "checksum"},
		{"count mismatch", images, idxBytes([]uint32{2}, []byte{0, 1}), nil, "3 images but 2 labels"},
		{"huge header", idxBytes([]uint32{1 << 20, 1 << 20, 1 << 20}, nil), labels, nil, "more than"},
		{"too few classes", images, labels, []string{"a", "b"}, "label 2 but only 2 class names"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadIDX(bytes.NewReader(c.images), bytes.NewReader(c.labels), norm, c.classes)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := ReadIDX(bytes.NewReader(images), bytes.NewReader(labels), Normalization{}, nil); err == nil {
		t.Error("missing normalisation accepted")
	}
}

func TestOpenIDXDir(t *testing.T) {
	images, labels := sampleIDX()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), gz(t, images), 0o644); err != nil {
		t.Fatal(err)
	}
	norm := Normalization{Mean: []float32{0.5}, Std: []float32{0.5}}
	if _, err := OpenIDXDir(dir, norm, nil); err == nil || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte") {
		t.Errorf("missing label file: error %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte"), labels, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := OpenIDXDir(dir, norm, []string{"x", "y", "z"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Labels(), []int{2, 0, 1}) || d.Classes()[2] != "z" {
		t.Errorf("labels %v classes %v", d.Labels(), d.Classes())
	}
}
