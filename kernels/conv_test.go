package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// convCases covers every internal route: gathered slabs and tails,
// the pointwise shortcut, the 7x7 stride-2 stem, groups, depthwise (direct
// kernels) and depthwise with a channel multiplier (grouped GEMM), stride,
// padding and dilation, one image (parallel GEMM) and several.
var convCases = []ConvParams{
	{N: 2, C: 3, H: 7, W: 7, K: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 17, H: 5, W: 3, K: 33, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 3, C: 7, H: 9, W: 8, K: 5, KH: 1, KW: 1, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 3, H: 17, W: 17, K: 8, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 4, H: 6, W: 7, K: 6, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	{N: 2, C: 5, H: 7, W: 7, K: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 5},
	{N: 2, C: 5, H: 9, W: 10, K: 5, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 5},
	{N: 1, C: 3, H: 1, W: 1, K: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 3},
	{N: 2, C: 4, H: 8, W: 5, K: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Groups: 4},
	{N: 1, C: 3, H: 6, W: 7, K: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 3},
	{N: 1, C: 2, H: 2, W: 9, K: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	{N: 2, C: 3, H: 5, W: 37, K: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 3},
	{N: 2, C: 2, H: 6, W: 41, K: 2, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 5, W: 36, K: 2, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 0, PadW: 0, DilH: 1, DilW: 1, Groups: 2},
	{N: 2, C: 5, H: 6, W: 30, K: 7, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 4, H: 5, W: 40, K: 6, KH: 3, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 1, DilH: 1, DilW: 2, Groups: 2},
	{N: 1, C: 3, H: 9, W: 12, K: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 2, DilW: 2, Groups: 3},
	{N: 1, C: 2, H: 10, W: 11, K: 2, KH: 3, KW: 3, StrideH: 3, StrideW: 3, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 3, H: 5, W: 45, K: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 2, H: 4, W: 5, K: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 3, PadW: 3, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 7, W: 9, K: 2, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 3, W: 30, K: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 3, PadW: 3, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 3, H: 11, W: 9, K: 3, KH: 5, KW: 5, StrideH: 2, StrideW: 1, PadH: 2, PadW: 4, DilH: 2, DilW: 2, Groups: 3},
	{N: 1, C: 3, H: 8, W: 8, K: 6, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 3},
	{N: 2, C: 4, H: 13, W: 11, K: 3, KH: 3, KW: 2, StrideH: 3, StrideW: 2, PadH: 0, PadW: 1, DilH: 2, DilW: 3, Groups: 1},
	{N: 1, C: 64, H: 17, W: 17, K: 7, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 3, C: 33, H: 7, W: 7, K: 17, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	// Several slabs per image and per chunk of images (strided backward
	// to the input), slabs across images with groups.
	{N: 3, C: 64, H: 20, W: 19, K: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 4, C: 32, H: 12, W: 12, K: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	// Chunks of several images for the strided backward to the input
	// (with one or two workers), whose later slabs start in a later image.
	{N: 8, C: 64, H: 10, W: 10, K: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	// Output rows of exactly 16: every group of eight gathered columns
	// is one masked load.
	{N: 2, C: 16, H: 16, W: 16, K: 8, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	// Strided 1x1 on rows wide enough for the vector subsampler, and
	// strided only down the rows.
	{N: 2, C: 20, H: 6, W: 35, K: 9, KH: 1, KW: 1, StrideH: 2, StrideW: 2, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 5, H: 7, W: 9, K: 4, KH: 1, KW: 1, StrideH: 2, StrideW: 1, DilH: 1, DilW: 1, Groups: 1},
	// Grouped 1x1 (its backward-data pass packs w transposed per group).
	{N: 2, C: 4, H: 5, W: 7, K: 6, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Groups: 2},
	// The direct path (output rows a multiple of 8, planes of 16): two
	// groups of eight in one row or in two (8 wide), a K that leaves 1
	// row for the last panel, stride-2 and -3 phases of odd and even
	// widths, a 7x7 stride-2 stem, dilated taps landing in either phase,
	// unequal strides, groups, and one image split into tile runs.
	{N: 2, C: 5, H: 8, W: 16, K: 7, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 3, H: 16, W: 16, K: 13, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 4, H: 15, W: 15, K: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 2, H: 22, W: 22, K: 3, KH: 3, KW: 3, StrideH: 3, StrideW: 3, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 3, H: 32, W: 32, K: 8, KH: 7, KW: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 2, H: 15, W: 15, K: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2, DilH: 2, DilW: 2, Groups: 1},
	{N: 1, C: 2, H: 15, W: 15, K: 5, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 3, DilH: 1, DilW: 3, Groups: 1},
	{N: 2, C: 4, H: 11, W: 16, K: 6, KH: 3, KW: 5, StrideH: 2, StrideW: 1, PadH: 1, PadW: 2, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 16, H: 32, W: 32, K: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	// The masked direct path (rows not a multiple of 8 wide): ResNet-20's
	// 28 and 14 wide planes (Fashion-MNIST), one image split into tile
	// runs, two k blocks (the masked adds), an odd number of groups (the
	// last tile has one), tiles whose first group is partial (23 wide).
	{N: 2, C: 16, H: 28, W: 28, K: 16, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 16, H: 28, W: 28, K: 32, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 3, C: 32, H: 14, W: 14, K: 32, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 3, H: 3, W: 24, K: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 4, H: 2, W: 23, K: 6, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	// The variable-height direct kernels (AVX-512): output channels cut
	// into panels of two heights (50 = 17+17+16, 47 = 24+23), forward
	// and backward to the input, whole rows and masked ones.
	{N: 1, C: 45, H: 8, W: 16, K: 50, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 2, C: 8, H: 14, W: 14, K: 47, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	// ... with dilated taps, and stride-3 phases; too many output
	// channels for it (the padded path instead).
	{N: 1, C: 3, H: 14, W: 14, K: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 2, DilW: 2, Groups: 1},
	{N: 2, C: 2, H: 42, W: 41, K: 3, KH: 3, KW: 3, StrideH: 3, StrideW: 3, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	{N: 1, C: 8, H: 6, W: 28, K: 72, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	// Strided backward to the input through the phase buffer: taps
	// dilated onto one column phase, unequal strides; small images in
	// chunks of several (the last one short).
	{N: 1, C: 2, H: 9, W: 61, K: 3, KH: 3, KW: 3, StrideH: 3, StrideW: 2, PadH: 1, PadW: 2, DilH: 1, DilW: 2, Groups: 1},
	{N: 7, C: 4, H: 9, W: 33, K: 5, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
	// The weight gradient through the phase buffer: stride 2 with
	// groups, dilated taps.
	{N: 2, C: 32, H: 9, W: 61, K: 6, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 16, H: 7, W: 60, K: 5, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 2, DilW: 2, Groups: 1},
	// Depthwise rows of whole vectors only (no masked tail), both strides.
	{N: 2, C: 3, H: 5, W: 16, K: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 3},
	{N: 2, C: 3, H: 6, W: 16, K: 3, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 3},
	// 5x5 depthwise kernels (MNASNet's): odd sizes with masked tails,
	// rows of one to three vectors (7 wide: the AVX2 kernel on the
	// avx512 path), whole vectors only, a 1x1 plane all frame, more
	// images than workers; paddings other than 2 (the backward passes'
	// complementary frame and spread offsets), unequal ones, and one past
	// k-1 (stride 1's backward to the input on the Go loops).
	{N: 2, C: 3, H: 9, W: 13, K: 3, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 3},
	{N: 2, C: 3, H: 11, W: 17, K: 3, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 3},
	{N: 1, C: 2, H: 6, W: 37, K: 2, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 7, W: 75, K: 2, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 2},
	{N: 3, C: 5, H: 7, W: 7, K: 5, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 5},
	{N: 2, C: 3, H: 4, W: 16, K: 3, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 3},
	{N: 2, C: 3, H: 5, W: 32, K: 3, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 3},
	{N: 1, C: 3, H: 1, W: 1, K: 3, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 3},
	{N: 6, C: 4, H: 14, W: 14, K: 4, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 4},
	{N: 5, C: 4, H: 28, W: 28, K: 4, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadH: 2, PadW: 2, DilH: 1, DilW: 1, Groups: 4},
	{N: 1, C: 2, H: 8, W: 12, K: 2, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 1, PadW: 0, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 9, W: 12, K: 2, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadH: 0, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 6, W: 10, K: 2, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 4, PadW: 3, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 6, W: 11, K: 2, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadH: 4, PadW: 3, DilH: 1, DilW: 1, Groups: 2},
	{N: 1, C: 2, H: 5, W: 9, K: 2, KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 5, PadW: 2, DilH: 1, DilW: 1, Groups: 2},
}

func convName(p ConvParams) string {
	return fmt.Sprintf("N%dC%dH%dW%dK%d_k%dx%d_s%dx%d_p%dx%d_d%dx%d_g%d", p.N, p.C, p.H, p.W, p.K,
		p.KH, p.KW, p.StrideH, p.StrideW, p.PadH, p.PadW, p.DilH, p.DilW, p.Groups)
}

// convRef visits every (output, input, weight) index triple of the
// convolution in float64: the naive definition all three passes check
// against.
func convRef(p ConvParams, visit func(yi, xi, wi int)) {
	oh0, ow0 := p.OutH(), p.OutW()
	cg, kg := p.C/p.Groups, p.K/p.Groups
	for n := range p.N {
		for k := range p.K {
			g := k / kg
			for oh := range oh0 {
				for ow := range ow0 {
					yi := ((n*p.K+k)*oh0+oh)*ow0 + ow
					for c := range cg {
						for kh := range p.KH {
							ih := oh*p.StrideH - p.PadH + kh*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							for kw := range p.KW {
								iw := ow*p.StrideW - p.PadW + kw*p.DilW
								if iw < 0 || iw >= p.W {
									continue
								}
								xi := ((n*p.C+g*cg+c)*p.H+ih)*p.W + iw
								wi := ((k*cg+c)*p.KH+kh)*p.KW + kw
								visit(yi, xi, wi)
							}
						}
					}
				}
			}
		}
	}
}

// checkAccum compares got against base + sum (float64), with the rounding
// bound of a terms-long float32 sum.
func checkAccum(t *testing.T, what string, got, base []float32, sum, abs []float64, terms int) {
	t.Helper()
	for i := range got {
		want := sum[i]
		a := abs[i]
		if base != nil {
			want += float64(base[i])
			a += math.Abs(float64(base[i]))
		}
		if !closeTo(got[i], want, a, terms) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want)
		}
	}
}

func TestConv2d(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		for ci, p := range convCases {
			if err := p.Validate(); err != nil {
				t.Fatalf("case %d: %v", ci, err)
			}
			t.Run(convName(p), func(t *testing.T) { checkConv(t, p) })
		}
	})
}

func checkConv(t *testing.T, p ConvParams) {
	r := rand.New(rand.NewPCG(uint64(p.C), uint64(p.K*p.H)))
	nx, ny := p.N*p.C*p.H*p.W, p.N*p.K*p.OutH()*p.OutW()
	nw := p.K * (p.C / p.Groups) * p.KH * p.KW
	x, w, dy := randSlice(r, nx, 1), randSlice(r, nw, 1), randSlice(r, ny, 1)
	bias := randSlice(r, p.K, 1)
	// Terms per output of each pass (an upper bound is enough).
	fwdTerms := (p.C/p.Groups)*p.KH*p.KW + 1
	bwdTerms := p.K * p.KH * p.KW
	wTerms := p.N * p.OutH() * p.OutW()

	ys, ya := make([]float64, ny), make([]float64, ny)
	dxs, dxa := make([]float64, nx), make([]float64, nx)
	dws, dwa := make([]float64, nw), make([]float64, nw)
	convRef(p, func(yi, xi, wi int) {
		v := float64(x[xi]) * float64(w[wi])
		ys[yi] += v
		ya[yi] += math.Abs(v)
		v = float64(dy[yi]) * float64(w[wi])
		dxs[xi] += v
		dxa[xi] += math.Abs(v)
		v = float64(dy[yi]) * float64(x[xi])
		dws[wi] += v
		dwa[wi] += math.Abs(v)
	})

	y := randSlice(r, ny, 1) // overwritten
	Conv2dForward(p, x, w, nil, y)
	checkAccum(t, "y", y, nil, ys, ya, fwdTerms)

	ohw := p.OutH() * p.OutW()
	for i := range ys {
		b := float64(bias[i/ohw%p.K])
		ys[i] += b
		ya[i] += math.Abs(b)
	}
	Conv2dForward(p, x, w, bias, y)
	checkAccum(t, "y+bias", y, nil, ys, ya, fwdTerms)

	// The fused epilogue is bit for bit the two calls.
	scale, shift := randSlice(r, p.K, 1), randSlice(r, p.K, 1)
	for _, act := range []Activation{ActNone, ActReLU6} {
		for _, b := range [][]float32{nil, bias} {
			want := make([]float32, ny)
			Conv2dForward(p, x, w, b, want)
			ScaleShift(p.N, p.K, ohw, want, scale, shift, want, act)
			got := randSlice(r, ny, 1)
			Conv2dForwardScaleShift(p, x, w, b, scale, shift, got, act)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("Conv2dForwardScaleShift (%v, bias %v)[%d] = %g, want %g", act, b != nil, i, got[i], want[i])
				}
			}
		}
	}

	dx0 := randSlice(r, nx, 1)
	dx := append([]float32(nil), dx0...)
	Conv2dBackwardData(p, dy, w, dx)
	checkAccum(t, "dx", dx, dx0, dxs, dxa, bwdTerms)
	// The overwriting variant must not read dx: NaN garbage in, the
	// gradient alone out.
	for i := range dx {
		dx[i] = float32(math.NaN())
	}
	Conv2dBackwardDataSet(p, dy, w, dx)
	checkAccum(t, "dx (set)", dx, nil, dxs, dxa, bwdTerms)

	dw0 := randSlice(r, nw, 1)
	dw := append([]float32(nil), dw0...)
	Conv2dBackwardWeight(p, x, dy, dw)
	checkAccum(t, "dw", dw, dw0, dws, dwa, wTerms)

	db0 := randSlice(r, p.K, 1)
	db := append([]float32(nil), db0...)
	dbs, dba := make([]float64, p.K), make([]float64, p.K)
	for i, v := range dy {
		dbs[i/ohw%p.K] += float64(v)
		dba[i/ohw%p.K] += math.Abs(float64(v))
	}
	Conv2dBackwardBias(p, dy, db)
	checkAccum(t, "db", db, db0, dbs, dba, wTerms)
}

// TestConv2dForwardMoments checks the training step's convolution and
// batch norm in one call bit for bit against Conv2dForward then
// ScaleShiftMoments (ScaleShiftAddMoments with a residual) on every case
// of convCases and a few of the models' shapes, with and without bias,
// with each activation, at several worker counts (the plan's tasks, and
// so whether it runs the planes in each task or after the convolution,
// depend on them), and that both ways ran on every route that has them.
func TestConv2dForwardMoments(t *testing.T) {
	cases := append(slices.Clip(convCases),
		// MobileNetV2-like layers at a small batch: pointwise, padded
		// and depthwise planes of 28x28 and 14x14.
		ConvParams{N: 4, C: 24, H: 28, W: 28, K: 40, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Groups: 1},
		ConvParams{N: 4, C: 16, H: 14, W: 14, K: 24, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
		ConvParams{N: 4, C: 48, H: 28, W: 28, K: 48, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 48})
	fused, after := map[convRoute]bool{}, map[convRoute]bool{}
	direct := false
	acrossPaths(t, func(t *testing.T) {
		k := kernelsOf(Active())
		whole, masked := directKernels(&k)
		direct = direct || whole && masked
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		for _, procs := range []int{1, 2, 3, 8} {
			runtime.GOMAXPROCS(procs)
			for _, p := range cases {
				pl := p.plan(passForward)
				route := pl.gemm.route
				if pl.route == routeDepthwise {
					route = routeDepthwise
				}
				if pl.wholePlanes() {
					fused[route] = true
				} else {
					after[route] = true
				}
				checkConvMoments(t, p, procs)
			}
		}
	})
	want := map[string][2]map[convRoute]bool{
		"in each task": {fused, {routeDepthwise: true, routePadded: true, routePointwise: true}},
		"after":        {after, {routeGathered: true, routeIm2col: true}},
	}
	if direct {
		want["in each task"][1][routeDirect], want["in each task"][1][routeDirectMasked] = true, true
		want["after"][1][routeDirect], want["after"][1][routeDirectMasked] = true, true // tile runs
	}
	for how, w := range want {
		for r := range w[1] {
			if !w[0][r] {
				t.Errorf("no case ran the %s route with the planes %s", r, how)
			}
		}
	}
}

func checkConvMoments(t *testing.T, p ConvParams, procs int) {
	r := rand.New(rand.NewPCG(uint64(p.C), uint64(p.K*p.H)))
	nx, ny := p.N*p.C*p.H*p.W, p.N*p.K*p.OutH()*p.OutW()
	x, w := randSlice(r, nx, 1), randSlice(r, p.K*(p.C/p.Groups)*p.KH*p.KW, 1)
	bias, res := randSlice(r, p.K, 1), randSlice(r, ny, 1)
	scale, shift := randSlice(r, p.K, 1), randSlice(r, p.K, 1)
	ohw := p.OutH() * p.OutW()
	same := func(name string, got, want []float32) { t.Helper(); sameConvBits(t, p, procs, name, got, want) }
	for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
		for _, b := range [][]float32{nil, bias} {
			for _, rr := range [][]float32{nil, res} {
				c, y := make([]float32, ny), make([]float32, ny)
				m := make([]float32, 2*p.K)
				Conv2dForward(p, x, w, b, c)
				if rr != nil {
					ScaleShiftAddMoments(p.N, p.K, ohw, c, scale, shift, rr, y, act, m[:p.K], m[p.K:])
				} else {
					ScaleShiftMoments(p.N, p.K, ohw, c, scale, shift, y, act, m[:p.K], m[p.K:])
				}
				// NaN garbage in: every output must be written.
				gc, gy, gm := nanSlice(ny), nanSlice(ny), nanSlice(2*p.K)
				Conv2dForwardMoments(p, x, w, b, gc, scale, shift, rr, gy, act, gm[:p.K], gm[p.K:])
				name := fmt.Sprintf(" (%v, bias %v, residual %v)", act, b != nil, rr != nil)
				same("c"+name, gc, c)
				same("y"+name, gy, y)
				same("moments"+name, gm, m)
			}
		}
	}
}

// nanSlice returns n NaNs.
func nanSlice(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

func TestConvParamsValidate(t *testing.T) {
	ok := ConvParams{N: 1, C: 4, H: 5, W: 5, K: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1, Groups: 2}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid params: %v", err)
	}
	bad := map[string]func(p *ConvParams){
		"zero N":                func(p *ConvParams) { p.N = 0 },
		"zero stride":           func(p *ConvParams) { p.StrideW = 0 },
		"zero dilation":         func(p *ConvParams) { p.DilH = 0 },
		"negative pad":          func(p *ConvParams) { p.PadH = -1 },
		"groups not dividing C": func(p *ConvParams) { p.Groups = 3 },
		"kernel too large":      func(p *ConvParams) { p.KH = 7 },
	}
	for name, f := range bad {
		p := ok
		f(&p)
		if p.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, p)
		}
	}
}

// TestConvDirectMicro checks every direct micro-kernel (each tail row
// count, storing and adding, zero to two full panels and zero to two
// tail panels, whole tiles and masked ones) against its definition,
// convDirectGeneric, on k lengths with every unroll tail and offsets
// scattered over the input. A masked kernel must leave the lanes outside
// its masks untouched.
func TestConvDirectMicro(t *testing.T) {
	acrossPaths(t, func(t *testing.T) {
		kern := &active.conv
		if kern.direct[0][0] == nil || kern.directMasked[0][0] == nil {
			t.Skip("no direct micro-kernel on this path")
		}
		r := rand.New(rand.NewPCG(7, 7))
		for _, kc := range []int{1, 3, 4, 7, 17, 33} {
			for panels := range 3 {
				for tail := range directMR {
					for tails := range 3 {
						if tail == 0 && tails > 0 {
							continue
						}
						for set := range 2 {
							for _, masked := range []bool{false, true} {
								a := randSlice(r, (panels+tails)*directMR*kc, 1)
								x := randSlice(r, 300, 1)
								d := r.IntN(100)
								off := make([]int32, kc)
								for p := range off {
									off[p] = int32(r.IntN(len(x) - d - 8))
								}
								const ldc = 23
								e, mask := 8, []int32(nil)
								if masked {
									// The second group e floats on, its lanes
									// clear of the first group's.
									n1 := r.IntN(9)
									e = max(n1, 1) + r.IntN(8)
									mask = directMasks[n1][r.IntN(9)][:]
								}
								c0 := randSlice(r, (panels*directMR+tails*tail)*ldc+e+8, 1)
								got, want := slices.Clone(c0), slices.Clone(c0)
								if masked {
									kern.directMasked[set][tail](kc, panels, tails, a, x, off, d, got, ldc, e, mask)
								} else {
									kern.direct[set][tail](kc, panels, tails, a, x, off, d, got, ldc)
								}
								convDirectGeneric(set == 1, kc, panels, tails, tail, a, x, off, d, want, ldc, e, mask)
								// The magnitude each output's roundings scale with:
								// the same sums over absolute values.
								abs := func(v []float32) []float32 {
									out := make([]float32, len(v))
									for i, e := range v {
										out[i] = float32(math.Abs(float64(e)))
									}
									return out
								}
								mag := abs(c0)
								if set == 1 {
									clear(mag)
								}
								convDirectGeneric(false, kc, panels, tails, tail, abs(a), abs(x), off, d, mag, ldc, e, mask)
								for i := range got {
									what := fmt.Sprintf("kc=%d panels=%d tails=%dx%d set=%d e=%d mask=%v: c", kc, panels, tails, tail, set, e, mask)
									checkClose(t, what, i, float64(got[i]), float64(want[i]), float64(mag[i]), float64(kc+2)*u32)
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestDirectSplit checks that the panel split covers every channel once
// and uses tails of 5 where it can.
func TestDirectSplit(t *testing.T) {
	for kg := 1; kg <= 200; kg++ {
		full, tails, tail := directSplit(kg)
		if full*directMR+tails*tail != kg || (tails > 0) != (tail > 0) || tail >= directMR {
			t.Fatalf("kg=%d: %d x 6 + %d x %d", kg, full, tails, tail)
		}
		if kg >= 25 && tails > 0 && tail != 5 {
			t.Errorf("kg=%d: tails of %d, want 5", kg, tail)
		}
	}
	for kg, want := range map[int][3]int{16: {1, 2, 5}, 32: {2, 4, 5}, 64: {9, 2, 5}, 12: {2, 0, 0}, 4: {0, 1, 4}} {
		if f, n, h := directSplit(kg); [3]int{f, n, h} != want {
			t.Errorf("directSplit(%d) = %d, %d, %d, want %v", kg, f, n, h, want)
		}
	}
}

// TestConvNoAllocs: once the scratch pools are warm, every convolution
// path allocates nothing per call (a packing buffer that escaped to the
// heap cost the weight gradient thousands of allocations a call).
func TestConvNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	shapes := []ConvParams{
		conv2dParams(16, 32, 16, 3, 1, 1), // direct forward, phase-buffer weight gradient
		conv2dParams(16, 32, 32, 3, 2, 1), // strided: phase-buffer backward to the input
		conv2dParams(64, 14, 64, 3, 1, 1), // masked direct forward, dw^T weight gradient
		conv2dParams(16, 26, 16, 3, 1, 1), // padded forward
		conv2dParams(64, 8, 64, 3, 2, 1),  // gathered slabs, tap-table backward
		conv2dParams(16, 32, 32, 1, 2, 1), // 1x1 strided: subsample and upsample
		conv2dParams(3, 32, 16, 3, 1, 1),  // few channels: im2col
	}
	for _, p := range shapes {
		p.N = 2 // small: this runs under qemu too
		r := rand.New(rand.NewPCG(7, 8))
		x := randSlice(r, p.N*p.C*p.H*p.W, 1)
		w := randSlice(r, p.K*p.C/p.Groups*p.KH*p.KW, 1)
		y := randSlice(r, p.N*p.K*p.OutH()*p.OutW(), 1)
		for name, run := range map[string]func(){
			"forward":       func() { Conv2dForward(p, x, w, nil, y) },
			"backward data": func() { Conv2dBackwardDataSet(p, y, w, x) },
			"weight grad":   func() { Conv2dBackwardWeight(p, x, y, w) },
		} {
			run()
			run()
			// A pool miss now and then (the collector empties pools) is
			// not a per-call allocation.
			if a := testing.AllocsPerRun(5, run); a > 1 {
				t.Errorf("%s %s: %v allocations a call", benchName(p), name, a)
			}
		}
	}
}

// TestUseDirect pins which planes the direct routes take: whole groups
// of 8, or, with at most directMaskedMaxK output channels, partial ones
// that leave at most an eighth of the lanes idle.
func TestUseDirect(t *testing.T) {
	for _, path := range Available() {
		k := kernelsOf(path)
		for _, c := range []struct {
			h, w int
			want bool
		}{
			{56, 56, true}, {32, 32, true}, {8, 8, true}, {28, 28, true}, {14, 14, true},
			{3, 24, true}, {2, 23, true}, {8, 7, true}, {7, 7, false}, {17, 17, false}, {12, 12, false}, {20, 20, false},
		} {
			for _, kc := range []int{8, directMaskedMaxK, directMaskedMaxK + 1} {
				p := ConvParams{N: 1, C: 8, H: c.h, W: c.w, K: kc, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1}
				whole := c.w%8 == 0 && c.h*c.w%16 == 0
				want := convRoute(0)
				if has, _ := directKernels(&k); c.want && has && (whole || kc <= directMaskedMaxK) {
					want = routeDirect
					if !whole {
						want = routeDirectMasked
					}
				}
				if got := directRoute(&p, &k); got != want {
					t.Errorf("%s: directRoute(%dx%d, K=%d) = %v, want %v", path, c.h, c.w, kc, got, want)
				}
			}
		}
	}
}

// TestConv2dBackwardDataMomentsBackward checks a depthwise convolution's
// backward pass to its input fused with the batch norm's backward before
// it bit for bit against Conv2dBackwardDataSet then
// ScaleShiftMomentsBackward: depthwise 3x3 and 5x5 at strides 1 and 2,
// the Go loops (dilation, a frame past k-1) and convolutions of other
// routes (the two calls in turn), with each activation, dx set and
// added to, at several worker counts, on every path.
func TestConv2dBackwardDataMomentsBackward(t *testing.T) {
	dw := func(n, c, h, w, k, s, pad, dil int) ConvParams {
		return ConvParams{N: n, C: c, H: h, W: w, K: c, KH: k, KW: k, StrideH: s, StrideW: s, PadH: pad, PadW: pad,
			DilH: dil, DilW: dil, Groups: c}
	}
	cases := []ConvParams{
		dw(2, 8, 14, 14, 3, 1, 1, 1),
		dw(3, 5, 13, 11, 3, 2, 1, 1),
		dw(2, 6, 17, 9, 5, 1, 2, 1),
		dw(2, 4, 15, 16, 5, 2, 2, 1),
		dw(1, 3, 7, 7, 3, 1, 1, 2),    // dilation: the Go loops
		dw(2, 3, 9, 8, 3, 1, 3, 1),    // a frame past k-1: the Go loops
		dw(4, 48, 28, 28, 3, 2, 1, 1), // MobileNetV2-like
		dw(1, 2, 3, 3, 3, 1, 1, 1),
		// Not depthwise: the two calls in turn.
		{N: 2, C: 6, H: 9, W: 9, K: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 1},
		{N: 2, C: 8, H: 10, W: 10, K: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, DilH: 1, DilW: 1, Groups: 2},
	}
	fused, after := 0, 0
	acrossPaths(t, func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		for _, procs := range []int{1, 2, 3, 8} {
			runtime.GOMAXPROCS(procs)
			for _, p := range cases {
				if p.plan(passBackwardData).route == routeDepthwise {
					fused++
				} else {
					after++
				}
				checkBackwardDataMoments(t, p, procs)
			}
		}
	})
	if fused == 0 || after == 0 {
		t.Errorf("%d cases fused and %d ran the calls in turn, want some of both", fused, after)
	}
}

func checkBackwardDataMoments(t *testing.T, p ConvParams, procs int) {
	r := rand.New(rand.NewPCG(uint64(p.C), uint64(p.K*p.H+p.StrideH)))
	nx, ny, hw := p.N*p.C*p.H*p.W, p.N*p.K*p.OutH()*p.OutW(), p.H*p.W
	x, w, dy := randSlice(r, nx, 2), randSlice(r, p.K*(p.C/p.Groups)*p.KH*p.KW, 1), randSlice(r, ny, 1)
	scale, shift, dm := randSlice(r, p.C, 1), randSlice(r, p.C, 1), randSlice(r, 2*p.C, 1)
	base := randSlice(r, nx, 1)
	same := func(name string, got, want []float32) { t.Helper(); sameConvBits(t, p, procs, name, got, want) }
	for _, act := range []Activation{ActNone, ActReLU, ActReLU6} {
		y := make([]float32, nx)
		ScaleShift(p.N, p.C, hw, x, scale, shift, y, act)
		for _, set := range []bool{false, true} {
			dc, dx := make([]float32, nx), slices.Clone(base)
			// NaN garbage in: every output must be written, and a
			// stored dx never read.
			gc, gx := nanSlice(nx), slices.Clone(base)
			if set {
				dx, gx = nanSlice(nx), nanSlice(nx)
			}
			Conv2dBackwardDataSet(p, dy, w, dc)
			ScaleShiftMomentsBackward(p.N, p.C, hw, x, scale, shift, y, dc, dx, dm, act, set)
			Conv2dBackwardDataMomentsBackward(p, dy, w, gc, x, scale, shift, y, gx, dm, act, set)
			name := fmt.Sprintf(" (%v, set %v)", act, set)
			same("dc"+name, gc, dc)
			same("dx"+name, gx, dx)
		}
	}
}

// sameConvBits fails t unless got is want bit for bit (the fused passes
// of convolution p at procs workers against the calls they fuse).
func sameConvBits(t *testing.T, p ConvParams, procs int, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s, %d workers: %s[%d] = %g, want %g", convName(p), procs, name, i, got[i], want[i])
		}
	}
}
