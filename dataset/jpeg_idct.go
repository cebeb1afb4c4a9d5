package dataset

// The inverse DCT libjpeg uses by default (JDCT_ISLOW), so decoded samples
// agree with PIL's bit for bit (docs/DESIGN.md, "Command line"). It is the
// Loeffler-Ligtenberg-Moschytz factorisation (12 multiplies, 32 adds per
// 1-D transform) in fixed point: constants scaled by 2^13, the column
// pass keeping 2 extra fraction bits, each pass rounding half up, and the
// result wrapped to 10 bits before clamping, as libjpeg's range-limit
// table does. A float IDCT, or Go's image/jpeg one, rounds differently and
// lands a level away on some samples.

const (
	idctConstBits = 13
	idctPass1Bits = 2
)

// The LLM rotation constants, round(c * 2^13).
const (
	fix0298631336 = 2446  // 0.298631336
	fix0390180644 = 3196  // 0.390180644
	fix0541196100 = 4433  // 0.541196100
	fix0765366865 = 6270  // 0.765366865
	fix0899976223 = 7373  // 0.899976223
	fix1175875602 = 9633  // 1.175875602
	fix1501321110 = 12299 // 1.501321110
	fix1847759065 = 15137 // 1.847759065
	fix1961570560 = 16069 // 1.961570560
	fix2053119869 = 16819 // 2.053119869
	fix2562915447 = 20995 // 2.562915447
	fix3072711026 = 25172 // 3.072711026
)

// descale divides by 2^n rounding half up (an arithmetic shift, as the C
// code's right shift of a signed value is on every platform PIL runs on).
func descale(x int32, n uint) int32 {
	return (x + 1<<(n-1)) >> n
}

// idct1D is one 8-point LLM inverse transform of in[0], in[s], ..., in[7s]
// before the final descale: the outputs are out[k] = even[k] +- odd[k]
// scaled by 2^13 (plus whatever scale the inputs carry).
func idct1D(i0, i1, i2, i3, i4, i5, i6, i7 int32) (o [8]int32) {
	// Even part: inputs 0, 2, 4, 6.
	z1 := (i2 + i6) * fix0541196100
	t2 := z1 - i6*fix1847759065
	t3 := z1 + i2*fix0765366865
	t0 := (i0 + i4) << idctConstBits
	t1 := (i0 - i4) << idctConstBits
	e10, e13 := t0+t3, t0-t3
	e11, e12 := t1+t2, t1-t2

	// Odd part: inputs 7, 5, 3, 1.
	a0, a1, a2, a3 := i7, i5, i3, i1
	s1, s2, s3, s4 := a0+a3, a1+a2, a0+a2, a1+a3
	s5 := (s3 + s4) * fix1175875602
	a0 *= fix0298631336
	a1 *= fix2053119869
	a2 *= fix3072711026
	a3 *= fix1501321110
	s1 *= -fix0899976223
	s2 *= -fix2562915447
	s3 = s3*-fix1961570560 + s5
	s4 = s4*-fix0390180644 + s5
	a0 += s1 + s3
	a1 += s2 + s4
	a2 += s2 + s3
	a3 += s1 + s4

	return [8]int32{e10 + a3, e11 + a2, e12 + a1, e13 + a0, e13 - a0, e12 - a1, e11 - a2, e10 - a3}
}

// idctLimit maps a descaled IDCT output (centred on 0) to a sample:
// libjpeg keeps its low 10 bits as a signed value, adds 128 and clamps.
// Only corrupt data reaches the wrap-around.
func idctLimit(x int32) uint8 {
	x = (x&1023 ^ 512) - 512 // sign-extend the low 10 bits
	return uint8(min(max(x+128, 0), 255))
}

// idctISlow transforms one block of dequantised coefficients (natural
// order) and writes the 8x8 samples to dst with the given row stride.
func idctISlow(coef *[64]int32, dst []uint8, stride int) {
	var ws [64]int32
	// Pass 1: columns, keeping idctPass1Bits of fraction.
	for c := range 8 {
		if coef[8+c]|coef[16+c]|coef[24+c]|coef[32+c]|coef[40+c]|coef[48+c]|coef[56+c] == 0 {
			// The full transform of a DC-only column gives exactly this.
			dc := coef[c] << idctPass1Bits
			for r := range 8 {
				ws[8*r+c] = dc
			}
			continue
		}
		o := idct1D(coef[c], coef[8+c], coef[16+c], coef[24+c], coef[32+c], coef[40+c], coef[48+c], coef[56+c])
		for r := range 8 {
			ws[8*r+c] = descale(o[r], idctConstBits-idctPass1Bits)
		}
	}
	// Pass 2: rows, removing the pass-1 fraction and the factor 8 of the
	// 2-D transform's scaling.
	const shift = idctConstBits + idctPass1Bits + 3
	for r := range 8 {
		w := ws[8*r : 8*r+8]
		out := dst[r*stride : r*stride+8]
		o := idct1D(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
		for k := range 8 {
			out[k] = idctLimit(descale(o[k], shift))
		}
	}
}
