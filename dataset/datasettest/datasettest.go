// Package datasettest makes hostile image files for the tests of the
// packages that decode them: small files whose headers claim far more
// pixels than they hold, the decompression bombs a reader must refuse
// from the header (docs/DESIGN.md, "Command line").
package datasettest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"testing"
)

// PNGClaiming is a valid 2x2 PNG whose header then claims w x h pixels,
// its IHDR checksum fixed up: a few dozen bytes that would decode to
// gigabytes.
func PNGClaiming(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	const ihdr = 8 // after the signature: length, "IHDR", 13 bytes, CRC
	binary.BigEndian.PutUint32(data[ihdr+8:], uint32(w))
	binary.BigEndian.PutUint32(data[ihdr+12:], uint32(h))
	binary.BigEndian.PutUint32(data[ihdr+8+13:], crc32.ChecksumIEEE(data[ihdr+4:ihdr+8+13]))
	return data
}

// JPEGClaiming is a copy of a baseline JPEG with its frame header claiming
// w x h pixels.
func JPEGClaiming(t testing.TB, jpeg []byte, w, h int) []byte {
	t.Helper()
	data := bytes.Clone(jpeg)
	sof := bytes.Index(data, []byte{0xff, 0xc0})
	if sof < 0 || sof+9 > len(data) {
		t.Fatal("datasettest: not a baseline JPEG")
	}
	binary.BigEndian.PutUint16(data[sof+5:], uint16(h))
	binary.BigEndian.PutUint16(data[sof+7:], uint16(w))
	return data
}
