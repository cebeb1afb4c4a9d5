package torchload

import (
	"strings"
	"testing"
	"time"

	"github.com/dghcore/dghcore/internal/memtest"
	"github.com/dghcore/dghcore/layers/torchload/torchtest"
)

// TestZipBombRefused: a zip checkpoint whose storage record is 256 MiB of
// deflated zeros (a file of about 300 KiB) is refused from the record
// headers, within a fixed small memory, and quickly.
func TestZipBombRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("deflates 256 MiB of zeros")
	}
	bomb, err := torchtest.Zip([]torchtest.Tensor{
		{Name: "conv1.weight", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "fc.weight", Shape: []int{1 << 16, 1 << 10}, Deflate: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a %d KiB checkpoint claiming 256 MiB", len(bomb)>>10)
	memtest.Within(t, 64<<20, func() {
		start := time.Now()
		sd, err := LoadBytes(bomb)
		if err == nil || sd != nil || !strings.Contains(err.Error(), "decompression bomb") {
			t.Errorf("the bomb: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("refusing the bomb took %v", d)
		}
	})
	// The same tensor stored plainly in a small file cannot exist; one
	// that claims more bytes than its record holds is refused by size.
	short, err := torchtest.Zip([]torchtest.Tensor{{Name: "w", Shape: []int{4}, Data: []float32{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBytes(short); err == nil || !strings.Contains(err.Error(), "holds 12 bytes") {
		t.Errorf("a record shorter than its tensor: %v", err)
	}
	// A deflated record of honest size loads.
	ok, err := torchtest.Zip([]torchtest.Tensor{{Name: "w", Shape: []int{3}, Data: []float32{1, 2, 3}, Deflate: true}})
	if err != nil {
		t.Fatal(err)
	}
	if sd, err := LoadBytes(ok); err != nil || sd.Tensors["w"].Data[2] != 3 {
		t.Errorf("a small deflated checkpoint: %v", err)
	}
}
