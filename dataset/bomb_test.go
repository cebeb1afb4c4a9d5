package dataset

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dghcore/dghcore/dataset/datasettest"
	"github.com/dghcore/dghcore/internal/memtest"
)

// TestImageBombsRefused: image files whose headers claim more than
// MaxImagePixels are refused from the header, within a fixed small
// memory, by Load and by Check alike; one just under the limit is not
// refused for its size.
func TestImageBombsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/png_30000.png", datasettest.PNGClaiming(t, 30000, 30000))
	write("a/jpeg_16000.jpg", datasettest.JPEGClaiming(t, readPhoto(t, "rocket.jpg"), 16000, 16000))
	write("b/ok.png", datasettest.PNGClaiming(t, 2, 2))
	f, err := OpenFolder(dir, FolderOptions{Resize: 2, Crop: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	memtest.Within(t, 64<<20, func() {
		start := time.Now()
		bad, err := f.Check(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) != 2 {
			t.Fatalf("Check found %d bad images, want the 2 bombs: %v", len(bad), bad)
		}
		for _, b := range bad {
			if !strings.Contains(b.Err.Error(), "more than the 178 million") || !strings.Contains(b.Err.Error(), filepath.Base(b.Path)) {
				t.Errorf("%s: %v", b.Path, b.Err)
			}
		}
		if _, _, err := f.Load([]int{0}); err == nil || !strings.Contains(err.Error(), "16000x16000") {
			t.Errorf("Load of the JPEG bomb: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("refusing took %v", d)
		}
	})
	// 13000 x 13000 is under PIL's limit: not refused for its size (this
	// file then fails to decode, having no such pixels).
	if _, _, err := imageSize(datasettest.PNGClaiming(t, 13000, 13000)); err != nil {
		t.Errorf("13000x13000: %v", err)
	}
}

// TestIDXBombsRefused: an IDX header claiming more than MaxIDXBytes is
// refused before any data is read, and a gzip stream of zeros under a
// header of honest-looking size is stopped by the inflation guard after a
// few megabytes; both within a fixed small memory.
func TestIDXBombsRefused(t *testing.T) {
	labels := idxBytes([]uint32{1}, []byte{0})
	norm := Normalization{Mean: []float32{0}, Std: []float32{1}}
	huge := gz(t, idxBytes([]uint32{1, 65536, 65536}, make([]byte, 1<<20)))
	// 1.5 GB claimed (under MaxIDXBytes), 64 MiB of zeros present.
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(idxBytes([]uint32{1, 38000, 38000}, nil))
	zeros := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zeros)
	}
	zw.Close()
	bomb := b.Bytes()
	t.Logf("bombs of %d and %d KiB", len(huge)>>10, len(bomb)>>10)
	memtest.Within(t, 96<<20, func() {
		if _, err := ReadIDX(bytes.NewReader(huge), bytes.NewReader(labels), norm, nil); err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("1 x 65536 x 65536: %v", err)
		}
		if dims, err := ReadIDXHeader(bytes.NewReader(huge), 3); err == nil {
			t.Errorf("header of 1 x 65536 x 65536: %v", dims)
		}
		if _, err := ReadIDX(bytes.NewReader(bomb), bytes.NewReader(labels), norm, nil); err == nil || !strings.Contains(err.Error(), "decompression bomb") {
			t.Errorf("zeros under 1 x 38000 x 38000: %v", err)
		}
	})
	dims, err := ReadIDXHeader(bytes.NewReader(bomb), 3)
	if err != nil || dims[1] != 38000 {
		t.Errorf("the bomb's header: %v, %v", dims, err)
	}
}
