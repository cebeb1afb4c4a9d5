package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The convolutions of resnet18, mobilenet_v2 and mnasnet at 224x224, batch 8, each
// distinct shape once, in network order, all three passes (docs/DESIGN.md, "Testing and numerics": speed by go test
// -bench, side by side with PyTorch).
const benchBatch = 8

func conv2dParams(c, h, k, kernel, stride, groups int) ConvParams {
	return ConvParams{N: benchBatch, C: c, H: h, W: h, K: k, KH: kernel, KW: kernel,
		StrideH: stride, StrideW: stride, PadH: kernel / 2, PadW: kernel / 2, DilH: 1, DilW: 1, Groups: groups}
}

func resnet18Convs() []ConvParams {
	convs := []ConvParams{conv2dParams(3, 224, 64, 7, 2, 1)}
	c, h := 64, 56
	for _, k := range []int{64, 128, 256, 512} {
		s := 1
		if k != c {
			s = 2
			convs = append(convs, conv2dParams(c, h, k, 1, 2, 1)) // downsample.0
		}
		convs = append(convs, conv2dParams(c, h, k, 3, s, 1))
		c, h = k, (h-1)/s+1
		convs = append(convs, conv2dParams(k, h, k, 3, 1, 1))
	}
	return dedupConvs(convs)
}

func mobilenetV2Convs() []ConvParams {
	convs := []ConvParams{conv2dParams(3, 224, 32, 3, 2, 1)}
	c, h := 32, 112
	for _, s := range [][4]int{{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}} {
		t, out, n, stride := s[0], s[1], s[2], s[3]
		for i := range n {
			st := 1
			if i == 0 {
				st = stride
			}
			hidden := c * t
			if t != 1 {
				convs = append(convs, conv2dParams(c, h, hidden, 1, 1, 1))
			}
			convs = append(convs, conv2dParams(hidden, h, hidden, 3, st, hidden))
			h = (h-1)/st + 1
			convs = append(convs, conv2dParams(hidden, h, out, 1, 1, 1))
			c = out
		}
	}
	convs = append(convs, conv2dParams(c, h, 1280, 1, 1, 1))
	return dedupConvs(convs)
}

// mnasnetConvs are BRECQ's MNASNet (torchvision's at scale 2.0): the
// stem, then six stacks of inverted residual blocks (1x1 expansion,
// depthwise 3x3 or 5x5, 1x1 projection), the last 1x1.
func mnasnetConvs() []ConvParams {
	convs := []ConvParams{conv2dParams(3, 224, 64, 3, 2, 1), conv2dParams(64, 112, 64, 3, 1, 64), conv2dParams(64, 112, 32, 1, 1, 1)}
	c, h := 32, 112
	for _, s := range [][5]int{{48, 3, 2, 3, 3}, {80, 5, 2, 3, 3}, {160, 5, 2, 6, 3}, {192, 3, 1, 6, 2}, {384, 5, 2, 6, 4}, {640, 3, 1, 6, 1}} {
		out, kernel, stride, expand, n := s[0], s[1], s[2], s[3], s[4]
		for i := range n {
			st := 1
			if i == 0 {
				st = stride
			}
			mid := c * expand
			convs = append(convs, conv2dParams(c, h, mid, 1, 1, 1), conv2dParams(mid, h, mid, kernel, st, mid))
			h = (h-1)/st + 1
			convs = append(convs, conv2dParams(mid, h, out, 1, 1, 1))
			c = out
		}
	}
	convs = append(convs, conv2dParams(c, h, 1280, 1, 1, 1))
	return dedupConvs(convs)
}

func dedupConvs(convs []ConvParams) []ConvParams {
	seen := map[ConvParams]bool{}
	var out []ConvParams
	for _, p := range convs {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// convFlops is the multiply-adds of one forward pass, times two.
func convFlops(p ConvParams) float64 {
	return 2 * float64(p.N*p.K*p.OutH()*p.OutW()) * float64(p.C/p.Groups*p.KH*p.KW)
}

func benchName(p ConvParams) string {
	g := ""
	if p.Groups > 1 {
		g = fmt.Sprintf("_g%d", p.Groups)
	}
	return fmt.Sprintf("%dx%d_s%d_c%d_k%d_h%d%s", p.KH, p.KW, p.StrideH, p.C, p.K, p.H, g)
}

func benchConvs(b *testing.B, convs []ConvParams) {
	for _, dir := range []string{"fwd", "bwd_data", "bwd_weight"} {
		for _, p := range convs {
			b.Run(dir+"/"+benchName(p), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				x := randSlice(r, p.N*p.C*p.H*p.W, 1)
				w := randSlice(r, p.K*p.C/p.Groups*p.KH*p.KW, 1)
				y := randSlice(r, p.N*p.K*p.OutH()*p.OutW(), 1)
				run := func() { Conv2dForward(p, x, w, nil, y) }
				switch dir {
				case "bwd_data":
					run = func() { Conv2dBackwardData(p, y, w, x) }
				case "bwd_weight":
					run = func() { Conv2dBackwardWeight(p, x, y, w) }
				}
				run() // warm the scratch pools
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					run()
				}
				reportGFLOPs(b, convFlops(p))
				if p.depthwise() {
					bytes := 4 * float64(len(x)+len(y)+len(w))
					b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				}
			})
		}
	}
}

// resnet20Convs are the convolutions of ResNet-20 on inCh x size x size
// images, batch 32: at 32x32 (CIFAR) the shapes of BenchmarkDGHStep/resnet20
// in package dgh, at 1x28x28 those of the embedded Fashion-MNIST model the
// default run quantizes (28, 14 and 7 wide). Few channels make packing
// and memory passes weigh as much as the FMAs.
func resnet20Convs(inCh, size int) []ConvParams {
	convs := []ConvParams{conv2dParams(inCh, size, 16, 3, 1, 1), conv2dParams(16, size, 16, 3, 1, 1)}
	for _, s := range [][3]int{{16, size, 32}, {32, (size + 1) / 2, 64}} {
		c, h, k := s[0], s[1], s[2]
		convs = append(convs, conv2dParams(c, h, k, 1, 2, 1), conv2dParams(c, h, k, 3, 2, 1), conv2dParams(k, (h+1)/2, k, 3, 1, 1))
	}
	for i := range convs {
		convs[i].N = 32
	}
	return convs
}

func BenchmarkConvResNet18(b *testing.B)       { benchConvs(b, resnet18Convs()) }
func BenchmarkConvResNet20(b *testing.B)       { benchConvs(b, resnet20Convs(3, 32)) }
func BenchmarkConvResNet20FMNIST(b *testing.B) { benchConvs(b, resnet20Convs(1, 28)) }
func BenchmarkConvMobileNetV2(b *testing.B)    { benchConvs(b, mobilenetV2Convs()) }
func BenchmarkConvMNASNet(b *testing.B)        { benchConvs(b, mnasnetConvs()) }

// BenchmarkConvDepthwiseHot times 3x3 depthwise planes that stay in L1
// (one image, 16 channels): the per-plane cost that dominates the small
// late-network layers, without the memory traffic of the big ones.
func BenchmarkConvDepthwiseHot(b *testing.B) {
	var convs []ConvParams
	for _, h := range []int{7, 14, 28, 56} {
		for _, s := range []int{1, 2} {
			p := conv2dParams(16, h, 16, 3, s, 16)
			p.N = 1
			convs = append(convs, p)
		}
	}
	benchConvs(b, convs)
}

// BenchmarkConv2dBackwardDataMomentsBackward times mobilenet_v2's
// depthwise convolutions' backward pass to the input and the batch
// norm's before them at DGH's batch of 32: the two calls in turn, and
// fused (each plane of dc read back from cache).
func BenchmarkConv2dBackwardDataMomentsBackward(b *testing.B) {
	var convs []ConvParams
	for _, p := range mobilenetV2Convs() {
		if p.depthwise() {
			p.N = 32
			convs = append(convs, p)
		}
	}
	type operands struct{ dy, w, dc, x, scale, shift, y, dx, dm []float32 }
	r := rand.New(rand.NewPCG(1, 2))
	ops := make([]operands, len(convs))
	for i, p := range convs {
		nx := p.N * p.C * p.H * p.W
		o := operands{dy: randSlice(r, p.yLen(), 1), w: randSlice(r, p.wLen(), 1), dc: make([]float32, nx),
			x: randSlice(r, nx, 1), scale: randSlice(r, p.C, 1), shift: randSlice(r, p.C, 1), y: make([]float32, nx),
			dx: make([]float32, nx), dm: randSlice(r, 2*p.C, 1)}
		ScaleShift(p.N, p.C, p.H*p.W, o.x, o.scale, o.shift, o.y, ActReLU6)
		ops[i] = o
	}
	for _, fused := range []bool{false, true} {
		name := "separate"
		if fused {
			name = "fused"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				for i, p := range convs {
					o := &ops[i]
					if fused {
						Conv2dBackwardDataMomentsBackward(p, o.dy, o.w, o.dc, o.x, o.scale, o.shift, o.y, o.dx, o.dm, ActReLU6, true)
						continue
					}
					Conv2dBackwardDataSet(p, o.dy, o.w, o.dc)
					ScaleShiftMomentsBackward(p.N, p.C, p.H*p.W, o.x, o.scale, o.shift, o.y, o.dc, o.dx, o.dm, ActReLU6, true)
				}
			}
		})
	}
}
