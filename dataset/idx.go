package dataset

// IDX files (docs/DESIGN.md, "Command line"): the MNIST / Fashion-MNIST layout.
// A file is a big-endian header, magic = 0x00 0x00 type ndim, then ndim
// uint32 sizes, then the values row-major. Images are type 0x08 (unsigned
// byte) with 3 dimensions N x H x W, labels type 0x08 with 1 dimension N.
// Files may be gzip-compressed, as they are shipped; the reader tells by the
// gzip magic number, not by the file name.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"github.com/dghcore/dghcore/tensor"
)

const (
	idxUnsignedByte = 0x08
	// maxIDXBytes bounds what a header may announce, so a corrupt header
	// cannot make the reader try to hold more than a real data set needs.
	maxIDXBytes = 1 << 34
)

// IDX is a grey-scale image set read from an IDX image file and its label
// file, held in memory as bytes and normalised on Load.
type IDX struct {
	n, h, w int
	pixels  []byte
	labels  []int
	classes []string
	lut     [256]float32
}

// ReadIDX reads an IDX image stream and its label stream (each gzip or
// not) and normalises pixels with norm (one channel). classes names the
// labels; when nil the names are the label numbers 0..max.
func ReadIDX(images, labels io.Reader, norm Normalization, classes []string) (*IDX, error) {
	if err := norm.check(1); err != nil {
		return nil, err
	}
	dims, pixels, err := readIDX(images, 3)
	if err != nil {
		return nil, fmt.Errorf("idx images: %w", err)
	}
	ldims, lbytes, err := readIDX(labels, 1)
	if err != nil {
		return nil, fmt.Errorf("idx labels: %w", err)
	}
	if dims[0] != ldims[0] {
		return nil, fmt.Errorf("idx: %d images but %d labels", dims[0], ldims[0])
	}
	d := &IDX{n: dims[0], h: dims[1], w: dims[2], pixels: pixels, labels: make([]int, len(lbytes))}
	top := 0
	for i, b := range lbytes {
		d.labels[i] = int(b)
		top = max(top, int(b))
	}
	if classes == nil {
		for c := 0; c <= top && len(lbytes) > 0; c++ {
			classes = append(classes, strconv.Itoa(c))
		}
	} else if top >= len(classes) {
		return nil, fmt.Errorf("idx: label %d but only %d class names", top, len(classes))
	}
	d.classes = append([]string(nil), classes...)
	d.lut = norm.table()[0]
	return d, nil
}

// OpenIDX reads an IDX image file and its label file; see ReadIDX.
func OpenIDX(imagesPath, labelsPath string, norm Normalization, classes []string) (*IDX, error) {
	fi, err := os.Open(imagesPath)
	if err != nil {
		return nil, fmt.Errorf("idx: %w", err)
	}
	defer fi.Close()
	fl, err := os.Open(labelsPath)
	if err != nil {
		return nil, fmt.Errorf("idx: %w", err)
	}
	defer fl.Close()
	d, err := ReadIDX(fi, fl, norm, classes)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", imagesPath, labelsPath, err)
	}
	return d, nil
}

// OpenIDXDir opens the test split of an MNIST-style folder: the files
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each with or without
// a .gz suffix, as the data sets are distributed.
func OpenIDXDir(dir string, norm Normalization, classes []string) (*IDX, error) {
	find := func(base string) (string, error) {
		for _, name := range []string{base + ".gz", base} {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
		return "", fmt.Errorf("idx: %s: no %s[.gz]", dir, base)
	}
	images, err := find("t10k-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	labels, err := find("t10k-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	return OpenIDX(images, labels, norm, classes)
}

// readIDX reads one unsigned-byte IDX stream with ndim dimensions.
func readIDX(r io.Reader, ndim int) ([]int, []byte, error) {
	br := bufio.NewReader(r)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		// One gzip member: IDX files are single streams, and trailing bytes
		// after it would otherwise be read as a second member.
		zr.Multistream(false)
		r = zr
	} else {
		r = br
	}
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, fmt.Errorf("header: %w", truncated(err))
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, nil, fmt.Errorf("bad magic %#x: not an IDX file", head)
	}
	if head[2] != idxUnsignedByte {
		return nil, nil, fmt.Errorf("value type %#02x: only unsigned bytes (0x08) are supported", head[2])
	}
	if int(head[3]) != ndim {
		return nil, nil, fmt.Errorf("%d dimensions, want %d", head[3], ndim)
	}
	sizes := make([]uint32, ndim)
	if err := binary.Read(r, binary.BigEndian, sizes); err != nil {
		return nil, nil, fmt.Errorf("header sizes: %w", truncated(err))
	}
	dims := make([]int, ndim)
	total := int64(1)
	for i, s := range sizes {
		dims[i] = int(s)
		total *= int64(s)
		if total > maxIDXBytes {
			return nil, nil, fmt.Errorf("header sizes %v: more than %d bytes", sizes, int64(maxIDXBytes))
		}
	}
	for _, d := range dims[1:] {
		if d == 0 {
			return nil, nil, fmt.Errorf("header sizes %v: empty sample", sizes)
		}
	}
	// Grow the buffer as bytes arrive rather than trusting the header with
	// one allocation.
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, total)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("truncated: %d of %d data bytes", got, total)
		}
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	// Reading on to the end lets gzip verify its checksum and catches files
	// longer than their header says.
	var extra [1]byte
	if n, err := io.ReadFull(r, extra[:]); n > 0 {
		return nil, nil, fmt.Errorf("more data than the header's %d bytes", total)
	} else if err != io.EOF {
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	return dims, buf.Bytes(), nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated file")
	}
	return err
}

// Len is the number of images.
func (d *IDX) Len() int { return d.n }

// SampleShape is [1, H, W].
func (d *IDX) SampleShape() [3]int { return [3]int{1, d.h, d.w} }

// Classes names the labels.
func (d *IDX) Classes() []string { return d.classes }

// Labels returns every label, in file order (not a copy).
func (d *IDX) Labels() []int { return d.labels }

// Load returns the normalised images at indices as N x 1 x H x W.
func (d *IDX) Load(indices []int) (*tensor.Tensor, []int, error) {
	hw := d.h * d.w
	out := tensor.New(len(indices), 1, d.h, d.w)
	labels := make([]int, len(indices))
	for k, i := range indices {
		if i < 0 || i >= d.n {
			return nil, nil, fmt.Errorf("idx: index %d outside [0, %d)", i, d.n)
		}
		labels[k] = d.labels[i]
	}
	// The conversion is a table lookup per byte; split big loads across
	// cores so evaluating 10000 test images does not wait on one.
	workers := min(runtime.GOMAXPROCS(0), max(1, len(indices)*hw/(1<<18)))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(indices)/workers, (w+1)*len(indices)/workers
		wg.Go(func() {
			for k := lo; k < hi; k++ {
				src := d.pixels[indices[k]*hw : (indices[k]+1)*hw]
				dst := out.Data[k*hw : (k+1)*hw]
				for j, v := range src {
					dst[j] = d.lut[v]
				}
			}
		})
	}
	wg.Wait()
	return out, labels, nil
}
