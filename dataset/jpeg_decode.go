package dataset

// A baseline JPEG decoder (ITU T.81: sequential DCT, Huffman coding, 8-bit
// samples) whose component planes equal libjpeg's, so the evaluation
// preprocessing matches torchvision's on PIL (docs/DESIGN.md, "Command line").
// It differs from image/jpeg only in the arithmetic: dequantisation and
// the inverse DCT follow libjpeg's default integer IDCT (jpeg_idct.go), and
// the planes go through libjpeg's upsampling and colour conversion
// (jpeg.go). Progressive, arithmetic-coded, lossless, 12-bit, CMYK and
// RGB-coded files, and sampling layouts libjpeg would upsample by other
// factors, report errJPEGUnsupported and are left to image/jpeg.

import (
	"errors"
	"fmt"
	"image"
)

// errJPEGUnsupported marks a valid JPEG this decoder leaves to image/jpeg.
var errJPEGUnsupported = errors.New("jpeg: unsupported by the baseline decoder")

// maxJPEGPixels bounds width*height so a corrupt header cannot ask for
// gigabytes (ImageNet's largest photographs are a few tens of megapixels).
const maxJPEGPixels = 1 << 28

// zigzag maps the coded coefficient order to the natural (row-major)
// order. The 16 trailing entries send a run that overshoots coefficient 63
// of a corrupt block to 63, as libjpeg does, instead of out of range.
var zigzag = [64 + 16]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
	63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
}

// huffLookBits is the width of the fast lookup table of a Huffman decoder.
const huffLookBits = 9

// huffTable is a canonical Huffman code (T.81 Annex C) ready for decoding.
type huffTable struct {
	// fast[b] for the next huffLookBits bits b holds length<<8 | symbol,
	// or 0 when the code is longer.
	fast [1 << huffLookBits]uint16
	// maxCode[l] is the largest code of length l (-1 if none), valPtr[l]
	// the index in vals of the first code of that length minus its code.
	maxCode [17]int32
	valPtr  [17]int32
	vals    []uint8
}

// buildHuff makes a table from the DHT counts per code length and symbols.
func buildHuff(counts [16]int, vals []uint8) (*huffTable, error) {
	h := &huffTable{vals: vals}
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		// A prefix code has room for at most 2^l codes of length l,
		// fewer the more shorter codes there are.
		if code+n > 1<<l {
			return nil, fmt.Errorf("jpeg: bad Huffman table: too many codes of length %d", l)
		}
		h.valPtr[l] = k - code
		if n == 0 {
			h.maxCode[l] = -1
		} else {
			h.maxCode[l] = code + n - 1
		}
		for range n {
			if l <= huffLookBits {
				shift := huffLookBits - l
				for f := code << shift; f < (code+1)<<shift; f++ {
					h.fast[f] = uint16(l)<<8 | uint16(vals[k])
				}
			}
			code++
			k++
		}
		code <<= 1
	}
	return h, nil
}

// bitReader reads the entropy-coded bits of a scan, removing stuffed zero
// bytes. At a marker it stops consuming and supplies zero bits, as libjpeg
// does for data cut short. At the end of the file it supplies zeros too,
// counting them, so a file cut right after its last code still decodes
// while using any of those zeros is an error (overrun).
type bitReader struct {
	data   []byte
	pos    int
	acc    uint64
	n      uint // valid bits in acc, left-aligned at bit 63
	marker bool // pos is at a marker
	padded uint // zero bytes supplied past the end of the file
}

// overrun reports whether decoding has used bits past the end of the file.
func (b *bitReader) overrun() bool { return b.padded*8 > b.n }

// fill tops the accumulator up to at least 57 bits.
func (b *bitReader) fill() {
	for b.n <= 56 {
		var c byte
		switch {
		case b.marker:
			c = 0
		case b.pos >= len(b.data):
			b.padded++
		case b.data[b.pos] != 0xff:
			c = b.data[b.pos]
			b.pos++
		default:
			// 0xFF 0x00 is a stuffed 0xFF, 0xFF 0xFF fill; anything else
			// ends the segment.
			p := b.pos + 1
			for p < len(b.data) && b.data[p] == 0xff {
				p++
			}
			if p >= len(b.data) {
				b.pos = len(b.data)
				b.padded++
			} else if b.data[p] == 0 {
				c = 0xff
				b.pos = p + 1
			} else {
				b.pos = p - 1
				b.marker = true
				c = 0
			}
		}
		b.acc |= uint64(c) << (56 - b.n)
		b.n += 8
	}
}

// bits reads k <= 16 bits.
func (b *bitReader) bits(k uint) int32 {
	if k == 0 {
		return 0
	}
	if b.n < k {
		b.fill()
	}
	v := int32(b.acc >> (64 - k))
	b.acc <<= k
	b.n -= k
	return v
}

// decode reads one Huffman-coded symbol.
func (b *bitReader) decode(h *huffTable) (uint8, error) {
	if b.n < 16 {
		b.fill()
	}
	if e := h.fast[b.acc>>(64-huffLookBits)]; e != 0 {
		l := uint(e >> 8)
		b.acc <<= l
		b.n -= l
		return uint8(e), nil
	}
	for l := uint(1); l <= 16; l++ {
		code := int32(b.acc >> (64 - l))
		if code <= h.maxCode[l] {
			i := code + h.valPtr[l]
			if i < 0 || int(i) >= len(h.vals) {
				break // cannot happen for a canonical code; never index out of range
			}
			b.acc <<= l
			b.n -= l
			return h.vals[i], nil
		}
	}
	return 0, errors.New("jpeg: bad Huffman code")
}

// receiveExtend reads an s-bit magnitude and sign-extends it (T.81 F.2.2.1).
func (b *bitReader) receiveExtend(s uint8) int32 {
	v := b.bits(uint(s))
	if s > 0 && v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

// reset drops the bits left over at the end of an entropy-coded segment.
func (b *bitReader) reset() { b.acc, b.n = 0, 0 }

// jpegComponent is one image component of the frame and its samples.
type jpegComponent struct {
	id, h, v, tq int
	// w, hgt are the component's size in samples; plane holds the
	// decoded samples of whole blocks with row stride stride.
	w, hgt int
	plane  []uint8
	stride int
	done   bool
}

// jpegDecoder holds the state built up by the markers of one file.
type jpegDecoder struct {
	data      []byte
	pos       int
	quant     [4][64]int32 // natural order
	haveQuant [4]bool
	dc, ac    [4]*huffTable
	restart   int
	width     int
	height    int
	comps     []jpegComponent
	hmax      int
	vmax      int
	jfif      bool
	adobe     bool
	transform int
	maxPixels int
}

// decodeJPEG decodes a baseline JPEG to an *image.YCbCr (3 components) or
// *image.Gray (1 component) holding libjpeg's sample values.
func decodeJPEG(data []byte) (image.Image, error) {
	d := &jpegDecoder{data: data, maxPixels: maxJPEGPixels}
	return d.decode()
}

func (d *jpegDecoder) u16(p int) int { return int(d.data[p])<<8 | int(d.data[p+1]) }

// nextMarker skips to the next marker, past any garbage bytes (which
// libjpeg tolerates with a warning), and returns its code.
func (d *jpegDecoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xff {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xff {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, errors.New("jpeg: truncated file")
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 {
			return m, nil
		}
	}
}

func (d *jpegDecoder) decode() (image.Image, error) {
	if len(d.data) < 2 || d.data[0] != 0xff || d.data[1] != 0xd8 {
		return nil, errors.New("jpeg: missing SOI marker")
	}
	d.pos = 2
	err := d.readMarkers()
	if !d.complete() {
		if err == nil {
			err = errors.New("jpeg: no image data")
		}
		return nil, err
	}
	// Once every component is decoded the image is settled: like libjpeg
	// under PIL, ignore a missing EOI or junk after the last scan.
	return d.image(), nil
}

// readMarkers walks the markers up to EOI, decoding the scans.
func (d *jpegDecoder) readMarkers() error {
	for {
		m, err := d.nextMarker()
		if err != nil {
			return err
		}
		if m == 0xd9 { // EOI
			return nil
		}
		if m >= 0xd0 && m <= 0xd7 || m == 0x01 {
			continue // stray RSTn or TEM: no segment
		}
		if d.pos+2 > len(d.data) {
			return errors.New("jpeg: truncated marker segment")
		}
		n := d.u16(d.pos)
		if n < 2 || d.pos+n > len(d.data) {
			return fmt.Errorf("jpeg: marker %#x: bad segment length %d", m, n)
		}
		seg := d.data[d.pos+2 : d.pos+n]
		d.pos += n
		switch {
		case m == 0xc0 || m == 0xc1: // baseline, extended sequential Huffman
			err = d.parseSOF(seg)
		case m >= 0xc2 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc:
			err = errJPEGUnsupported // progressive, lossless, arithmetic
		case m == 0xc4:
			err = d.parseDHT(seg)
		case m == 0xdb:
			err = d.parseDQT(seg)
		case m == 0xdd:
			if len(seg) < 2 {
				err = errors.New("jpeg: bad DRI segment")
			} else {
				d.restart = int(seg[0])<<8 | int(seg[1])
			}
		case m == 0xe0:
			if len(seg) >= 5 && string(seg[:5]) == "JFIF\x00" {
				d.jfif = true
			}
		case m == 0xee:
			if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
				d.adobe, d.transform = true, int(seg[11])
			}
		case m == 0xda:
			err = d.parseSOS(seg)
		}
		if err != nil {
			return err
		}
	}
}

// complete reports whether every component has been decoded.
func (d *jpegDecoder) complete() bool {
	if len(d.comps) == 0 {
		return false
	}
	for _, c := range d.comps {
		if !c.done {
			return false
		}
	}
	return true
}

func (d *jpegDecoder) parseSOF(seg []byte) error {
	if d.comps != nil {
		return errors.New("jpeg: more than one frame")
	}
	if len(seg) < 6 {
		return errors.New("jpeg: bad SOF segment")
	}
	if seg[0] != 8 {
		return errJPEGUnsupported // 12-bit samples
	}
	d.height, d.width = int(seg[1])<<8|int(seg[2]), int(seg[3])<<8|int(seg[4])
	nc := int(seg[5])
	if d.width == 0 || d.height == 0 {
		return errJPEGUnsupported // height from a DNL marker; image/jpeg rejects it too
	}
	if d.width*d.height > d.maxPixels {
		return fmt.Errorf("jpeg: %dx%d image is too large", d.width, d.height)
	}
	if nc != 1 && nc != 3 {
		return errJPEGUnsupported // CMYK / YCCK
	}
	if len(seg) != 6+3*nc {
		return errors.New("jpeg: bad SOF segment length")
	}
	d.comps = make([]jpegComponent, nc)
	for i := range d.comps {
		c := &d.comps[i]
		c.id, c.h, c.v, c.tq = int(seg[6+3*i]), int(seg[7+3*i]>>4), int(seg[7+3*i]&15), int(seg[8+3*i])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return fmt.Errorf("jpeg: component %d: bad sampling %dx%d or table %d", i, c.h, c.v, c.tq)
		}
		for j := range i {
			if d.comps[j].id == c.id {
				return fmt.Errorf("jpeg: repeated component id %d", c.id)
			}
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
	}
	if nc == 1 {
		// A lone component is always coded one block per MCU; its
		// sampling factors change nothing.
		d.comps[0].h, d.comps[0].v = 1, 1
		d.hmax, d.vmax = 1, 1
	} else if _, ok := d.ratio(); !ok {
		return errJPEGUnsupported
	}
	mcusX := (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	mcusY := (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	for i := range d.comps {
		c := &d.comps[i]
		c.w = (d.width*c.h + d.hmax - 1) / d.hmax
		c.hgt = (d.height*c.v + d.vmax - 1) / d.vmax
		c.stride = mcusX * c.h * 8
		c.plane = make([]uint8, c.stride*mcusY*c.v*8)
	}
	return nil
}

// ratio tells the chroma subsampling of a 3-component frame, if the luma
// is full size, Cb and Cr agree, and libjpeg upsamples it the way
// fancyUpsample does. It also rejects colour spaces other than YCbCr,
// following libjpeg's reading of the JFIF and Adobe markers and the
// component ids.
func (d *jpegDecoder) ratio() (image.YCbCrSubsampleRatio, bool) {
	y, cb, cr := d.comps[0], d.comps[1], d.comps[2]
	if y.h != d.hmax || y.v != d.vmax || cb.h != cr.h || cb.v != cr.v {
		return 0, false
	}
	if d.hmax%cb.h != 0 || d.vmax%cb.v != 0 {
		return 0, false
	}
	switch [2]int{d.hmax / cb.h, d.vmax / cb.v} {
	case [2]int{1, 1}:
		return image.YCbCrSubsampleRatio444, true
	case [2]int{2, 1}:
		return image.YCbCrSubsampleRatio422, true
	case [2]int{2, 2}:
		return image.YCbCrSubsampleRatio420, true
	case [2]int{1, 2}:
		return image.YCbCrSubsampleRatio440, true
	}
	return 0, false
}

// isYCbCr follows libjpeg's guess of a 3-component file's colour space.
func (d *jpegDecoder) isYCbCr() bool {
	switch {
	case d.jfif:
		return true
	case d.adobe:
		return d.transform != 0
	}
	return !(d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B')
}

func (d *jpegDecoder) parseDQT(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&15
		if tq > 3 || pq > 1 {
			return fmt.Errorf("jpeg: bad DQT table %d precision %d", tq, pq)
		}
		size := 64 * (1 + int(pq))
		if len(seg) < 1+size {
			return errors.New("jpeg: short DQT segment")
		}
		for k := range 64 {
			v := int32(seg[1+k])
			if pq == 1 {
				v = int32(seg[1+2*k])<<8 | int32(seg[2+2*k])
			}
			d.quant[tq][zigzag[k]] = v
		}
		d.haveQuant[tq] = true
		seg = seg[1+size:]
	}
	return nil
}

func (d *jpegDecoder) parseDHT(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return errors.New("jpeg: short DHT segment")
		}
		tc, th := seg[0]>>4, seg[0]&15
		if tc > 1 || th > 3 {
			return fmt.Errorf("jpeg: bad DHT class %d id %d", tc, th)
		}
		var counts [16]int
		total := 0
		for l := range 16 {
			counts[l] = int(seg[1+l])
			total += counts[l]
		}
		if total > 256 || len(seg) < 17+total {
			return errors.New("jpeg: bad DHT segment length")
		}
		h, err := buildHuff(counts, append([]uint8(nil), seg[17:17+total]...))
		if err != nil {
			return err
		}
		if tc == 0 {
			d.dc[th] = h
		} else {
			d.ac[th] = h
		}
		seg = seg[17+total:]
	}
	return nil
}

// scanComp is a component taking part in a scan and its tables.
type scanComp struct {
	c      *jpegComponent
	dc, ac *huffTable
	q      *[64]int32
	pred   int32
}

func (d *jpegDecoder) parseSOS(seg []byte) error {
	if d.comps == nil {
		return errors.New("jpeg: SOS before SOF")
	}
	if len(d.comps) == 3 && !d.isYCbCr() {
		return errJPEGUnsupported // RGB-coded: image/jpeg converts it
	}
	if len(seg) < 1 {
		return errors.New("jpeg: bad SOS segment")
	}
	ns := int(seg[0])
	if ns < 1 || ns > len(d.comps) || len(seg) != 4+2*ns {
		return errors.New("jpeg: bad SOS segment")
	}
	if seg[1+2*ns] != 0 || seg[2+2*ns] != 63 || seg[3+2*ns] != 0 {
		return errors.New("jpeg: bad spectral selection for a sequential scan")
	}
	sc := make([]scanComp, ns)
	for i := range sc {
		id, tables := int(seg[1+2*i]), seg[2+2*i]
		for j := range d.comps {
			if d.comps[j].id == id {
				sc[i].c = &d.comps[j]
			}
		}
		if sc[i].c == nil {
			return fmt.Errorf("jpeg: scan names unknown component %d", id)
		}
		for j := range i {
			if sc[j].c == sc[i].c {
				return fmt.Errorf("jpeg: scan repeats component %d", id)
			}
		}
		td, ta := tables>>4, tables&15
		if td > 3 || ta > 3 || d.dc[td] == nil || d.ac[ta] == nil {
			return fmt.Errorf("jpeg: component %d: missing Huffman table", id)
		}
		if !d.haveQuant[sc[i].c.tq] {
			return fmt.Errorf("jpeg: component %d: missing quantisation table", id)
		}
		sc[i].dc, sc[i].ac, sc[i].q = d.dc[td], d.ac[ta], &d.quant[sc[i].c.tq]
		for _, s := range d.dc[td].vals {
			if s > 15 {
				return fmt.Errorf("jpeg: component %d: DC table has symbol %d", id, s)
			}
		}
	}
	if err := d.decodeScan(sc); err != nil {
		return err
	}
	for _, s := range sc {
		s.c.done = true
	}
	return nil
}

// decodeScan decodes the entropy-coded data after an SOS header (T.81
// Annex F, sequential Huffman) and leaves d.pos at the marker after it.
func (d *jpegDecoder) decodeScan(sc []scanComp) error {
	// An interleaved scan codes h*v blocks of each component per MCU; a
	// single-component scan codes each block of the component on its own
	// (T.81 A.2.2, A.2.3).
	var mcusX, mcusY int
	if len(sc) == 1 {
		c := sc[0].c
		mcusX, mcusY = (c.w+7)/8, (c.hgt+7)/8
	} else {
		mcusX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
		mcusY = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	}
	br := bitReader{data: d.data, pos: d.pos}
	var coef [64]int32
	rst := 0
	total := mcusX * mcusY
	for mcu := range total {
		if d.restart > 0 && mcu > 0 && mcu%d.restart == 0 {
			if err := d.restartAt(&br, rst); err != nil {
				return err
			}
			rst = (rst + 1) & 7
			for i := range sc {
				sc[i].pred = 0
			}
		}
		mx, my := mcu%mcusX, mcu/mcusX
		for i := range sc {
			s := &sc[i]
			bh, bv := s.c.h, s.c.v
			if len(sc) == 1 {
				bh, bv = 1, 1
			}
			for by := range bv {
				for bx := range bh {
					if err := s.decodeBlock(&br, &coef); err != nil {
						return err
					}
					x, y := (mx*bh+bx)*8, (my*bv+by)*8
					idctISlow(&coef, s.c.plane[y*s.c.stride+x:], s.c.stride)
				}
			}
		}
		if br.overrun() {
			return errors.New("jpeg: truncated entropy-coded data")
		}
	}
	// Skip the rest of the segment to the next marker.
	d.pos = br.pos
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xff {
			d.pos++
		}
		if d.pos+1 >= len(d.data) {
			d.pos = len(d.data)
			return nil
		}
		if m := d.data[d.pos+1]; m == 0 || m == 0xff || m >= 0xd0 && m <= 0xd7 {
			d.pos++
			continue
		}
		return nil
	}
}

// restartAt consumes the RSTn marker expected after a restart interval.
func (d *jpegDecoder) restartAt(br *bitReader, n int) error {
	br.reset()
	p := br.pos
	for p < len(d.data) && d.data[p] == 0xff {
		p++
	}
	if p >= len(d.data) {
		return errors.New("jpeg: truncated before a restart marker")
	}
	if want := byte(0xd0 + n); d.data[p] != want || p == br.pos {
		return fmt.Errorf("jpeg: missing restart marker RST%d", n)
	}
	br.pos, br.marker = p+1, false
	return nil
}

// decodeBlock reads one block's coefficients and dequantises them.
func (s *scanComp) decodeBlock(br *bitReader, coef *[64]int32) error {
	*coef = [64]int32{}
	t, err := br.decode(s.dc)
	if err != nil {
		return err
	}
	s.pred += br.receiveExtend(t)
	// libjpeg keeps coefficients in 16 bits; only corrupt data notices.
	coef[0] = int32(int16(s.pred)) * s.q[0]
	for k := 1; k < 64; k++ {
		rs, err := br.decode(s.ac)
		if err != nil {
			return err
		}
		r, sz := int(rs>>4), rs&15
		if sz == 0 {
			if r != 15 {
				break // end of block
			}
			k += 15
			continue
		}
		k += r
		z := zigzag[k]
		coef[z] = int32(int16(br.receiveExtend(sz))) * s.q[z]
	}
	return nil
}

// image wraps the planes for the colour conversion in jpeg.go.
func (d *jpegDecoder) image() image.Image {
	r := image.Rect(0, 0, d.width, d.height)
	if len(d.comps) == 1 {
		c := d.comps[0]
		return &image.Gray{Pix: c.plane, Stride: c.stride, Rect: r}
	}
	ratio, _ := d.ratio()
	return &image.YCbCr{
		Y: d.comps[0].plane, Cb: d.comps[1].plane, Cr: d.comps[2].plane,
		YStride: d.comps[0].stride, CStride: d.comps[1].stride,
		SubsampleRatio: ratio, Rect: r,
	}
}
