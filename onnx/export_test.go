package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

// tinyResNet50 is a narrow two-stage ResNet of Bottleneck blocks behind a
// 7x7 stem and a max pooling: resnet50's structure at a size a test can
// quantize in a moment.
func tinyResNet50(seed uint64) *zoo.Model {
	conv, bn := layers.NewConv2d, layers.NewBatchNorm2d
	block := func(in, planes, stride int) *zoo.Bottleneck {
		out := 4 * planes
		b := &zoo.Bottleneck{
			Conv1: conv(in, planes, 1, 1, 0, 1, false), BN1: bn(planes),
			Conv2: conv(planes, planes, 3, stride, 1, 1, false), BN2: bn(planes),
			Conv3: conv(planes, out, 1, 1, 0, 1, false), BN3: bn(out),
		}
		if stride != 1 || in != out {
			b.Downsample = layers.NewSequential(conv(in, out, 1, stride, 0, 1, false), bn(out))
		}
		return b
	}
	net := &zoo.ResNet{
		Conv1: conv(3, 8, 7, 2, 3, 1, false), BN1: bn(8), MaxPool: layers.NewMaxPool2d(3, 2, 1),
		Layers: [][]layers.Module{{block(8, 4, 1), block(16, 4, 1)}, {block(16, 8, 2)}},
		FC:     layers.NewLinear(32, 10, true),
	}
	zootest.Randomize(net, seed, nil)
	return &zoo.Model{Name: "resnet50", Net: net, Spec: zoo.Spec{InputSize: 32}}
}

// quantized runs a few BRECQ steps on random calibration images.
func quantized(t testing.TB, m *zoo.Model, inCh, size int, cfg brecq.Config) *brecq.QuantModel {
	t.Helper()
	calib := tensor.NewRNG(11).Randn(8, inCh, size, size)
	cfg.NumIterations, cfg.ItersA, cfg.BatchSize, cfg.Seed = 3, 3, 4, 5
	q, err := brecq.Quantize(context.Background(), m, calib, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// roundTrip exports q, encodes it, and reads it back.
func roundTrip(t testing.TB, q *brecq.QuantModel, inCh, size int) (*Network, Summary, []byte) {
	t.Helper()
	m, sum, err := Export(q, Options{Channels: inCh, Height: size, Width: size,
		Metadata: []Entry{{"model", q.Name}, {"weights_n_bits", "4"}}})
	if err != nil {
		t.Fatal(err)
	}
	data := m.Marshal()
	net, err := Parse(data)
	if err != nil {
		t.Fatalf("reading the export back: %v", err)
	}
	return net, sum, data
}

// firstDifference is the index of the first element whose bits differ,
// or -1.
func firstDifference(a, b *tensor.Tensor) int {
	if !slices.Equal(a.Shape, b.Shape) {
		return 0
	}
	for i := range a.Data {
		if math.Float32bits(a.Data[i]) != math.Float32bits(b.Data[i]) {
			return i
		}
	}
	return -1
}

// TestRoundTripBitExact: an exported quantized network, read back, gives
// the in-memory model's logits bit for bit, at every bit width and
// variant of the quantizer, and the file uses the types and opset the
// bit widths call for (docs/DESIGN.md, "ONNX export").
func TestRoundTripBitExact(t *testing.T) {
	for _, tc := range []struct {
		name       string
		model      func() *zoo.Model
		inCh, size int
		cfg        brecq.Config
		opset      int64
		weightType DataType // of the middle layers
		actType    DataType // 0: no activation quantizers
		// clipped counts the quantizers whose type is wider than their
		// levels: all at 3 and 6 bits but the 8-bit stem's, and the
		// stem's before a max pooling.
		clipped int
	}{
		{"resnet20/W4A4", func() *zoo.Model { return zootest.RandomModel(t, "resnet20", 1, 10, 1) }, 1, 8,
			brecq.Config{ActQuant: true}, 21, Uint4, Uint4, 0},
		{"resnet20/W2A3", func() *zoo.Model { return zootest.RandomModel(t, "resnet20", 3, 10, 2) }, 3, 8,
			brecq.Config{WeightBits: 2, ActBits: 3, ActQuant: true}, 21, Uint4, Uint4, 20},
		{"resnet20/W5A6/head_stem_8bit", func() *zoo.Model { return zootest.RandomModel(t, "resnet20", 1, 10, 3) }, 1, 8,
			brecq.Config{WeightBits: 5, ActBits: 6, ActQuant: true, HeadStem8bit: true}, 13, Uint8, Uint8, 19},
		{"resnet20/W8A8/float_output", func() *zoo.Model { return zootest.RandomModel(t, "resnet20", 1, 10, 4) }, 1, 8,
			brecq.Config{WeightBits: 8, ActBits: 8, ActQuant: true, DisableNetworkOutputQuantization: true}, 13, Uint8, Uint8, 0},
		{"resnet20/W3A4/layer_reconstruction", func() *zoo.Model { return zootest.RandomModel(t, "resnet20", 1, 10, 5) }, 1, 8,
			brecq.Config{WeightBits: 3, ActQuant: true, LayerReconstruction: true}, 21, Uint4, Uint4, 0},
		{"resnet20/W4/weights_only", func() *zoo.Model { return zootest.RandomModel(t, "resnet20", 1, 10, 6) }, 1, 8,
			brecq.Config{}, 21, Uint4, 0, 0},
		{"mobilenet_v2/W4A4", func() *zoo.Model { return zootest.RandomModel(t, "mobilenet_v2", 3, 10, 7) }, 3, 32,
			brecq.Config{ActQuant: true}, 21, Uint4, Uint4, 0},
		{"bottleneck/W4A4", func() *zoo.Model { return tinyResNet50(8) }, 3, 32,
			brecq.Config{ActQuant: true}, 21, Uint4, Uint4, 1},
		// Grouped convolutions (RegNetX's ResBottleneckBlock, ResNeXt) and
		// MNASNet's 5x5 depthwise blocks, at a sixteenth of their widths.
		{"regnetx_600m/W4A4", func() *zoo.Model { return zootest.RandomNarrow(t, "regnetx_600m", "", 3, 10, 16, 8) }, 3, 32,
			brecq.Config{ActQuant: true}, 21, Uint4, Uint4, 0},
		{"resnext50_32x4d/W4A4", func() *zoo.Model { return zootest.RandomNarrow(t, "resnext50_32x4d", "", 3, 10, 16, 9) }, 3, 32,
			brecq.Config{ActQuant: true}, 21, Uint4, Uint4, 1},
		{"mnasnet/W4A4", func() *zoo.Model { return zootest.RandomNarrow(t, "mnasnet", "", 3, 10, 16, 10) }, 3, 32,
			brecq.Config{ActQuant: true}, 21, Uint4, Uint4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := quantized(t, tc.model(), tc.inCh, tc.size, tc.cfg)
			net, sum, _ := roundTrip(t, q, tc.inCh, tc.size)
			x := tensor.NewRNG(13).Randn(5, tc.inCh, tc.size, tc.size)
			want := q.Forward(x)
			got, err := net.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			if i := firstDifference(got, want); i >= 0 {
				t.Fatalf("logit %d: read back %v, in memory %v (shapes %v, %v)", i, got.Data[i], want.Data[i], got.Shape, want.Shape)
			}
			t.Logf("opset %d, weights %v, activations %v, %d clipped, widened %v", sum.Opset, sum.WeightTypes, sum.ActTypes, sum.Clipped, sum.Widened)
			if sum.Opset != tc.opset || net.Opset != tc.opset {
				t.Errorf("opset %d (read back %d), want %d", sum.Opset, net.Opset, tc.opset)
			}
			if sum.WeightTypes[tc.weightType] == 0 {
				t.Errorf("no %v weights: %v", tc.weightType, sum.WeightTypes)
			}
			nActs := 0
			for _, n := range sum.ActTypes {
				nActs += n
			}
			if tc.actType == 0 && nActs != 0 || tc.actType != 0 && sum.ActTypes[tc.actType] == 0 {
				t.Errorf("activation quantizers %v, want %v ones", sum.ActTypes, tc.actType)
			}
			if sum.Clipped != tc.clipped {
				t.Errorf("%d clipped activation quantizers, want %d", sum.Clipped, tc.clipped)
			}
		})
	}
}

// TestZeroPointsOutsideTheLevels: a channel whose weights are all
// positive has a negative zero point, which no 4-bit type holds next to
// the levels 0..15; the weight then goes into a wider type, and an
// activation quantizer likewise, still bit for bit.
func TestZeroPointsOutsideTheLevels(t *testing.T) {
	m := zootest.RandomModel(t, "resnet20", 1, 10, 9)
	w := m.Net.(*zoo.ResNet).Conv1.Weight.Value
	for i := range w.Numel() / w.Shape[0] { // output channel 0 of the stem
		w.Data[i] = float32(math.Abs(float64(w.Data[i]))) + 0.05
	}
	q := quantized(t, m, 1, 8, brecq.Config{ActQuant: true})
	if zp := q.Modules()[0].WQ.ZP[0]; zp >= 0 {
		t.Fatalf("stem channel 0 has zero point %v, want a negative one", zp)
	}
	var aq *brecq.ActQuantizer
	for _, u := range q.Units() {
		if b, ok := u.(*brecq.Block); ok && b.Name == "layer2.1" {
			aq = b.AQ
		}
	}
	aq.Set(aq.Delta.Value.Data[0], 17)
	net, sum, _ := roundTrip(t, q, 1, 8)
	x := tensor.NewRNG(14).Randn(6, 1, 8, 8)
	got, err := net.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDifference(got, q.Forward(x)); i >= 0 {
		t.Fatalf("logit %d differs", i)
	}
	if !slices.Contains(sum.Widened, "conv1.weight") || !slices.Contains(sum.Widened, "layer2.1.act_quantizer") {
		t.Errorf("widened %v, want conv1.weight and layer2.1.act_quantizer", sum.Widened)
	}
	if sum.WeightTypes[Uint8] != 1 || sum.ActTypes[Uint8] != 1 || sum.Clipped != 1 {
		t.Errorf("weights %v, activations %v, %d clipped; want one of each in UINT8, one clipped", sum.WeightTypes, sum.ActTypes, sum.Clipped)
	}
}

// TestFloatExport: the folded float network (brecq.Fold) exports without
// any quantization node and reads back to its logits.
func TestFloatExport(t *testing.T) {
	m := tinyResNet50(15)
	q, err := brecq.Fold(m)
	if err != nil {
		t.Fatal(err)
	}
	net, sum, data := roundTrip(t, q, 3, 32)
	if strings.Contains(string(data), "QuantizeLinear") || sum.Opset != opsetWide {
		t.Errorf("float export: opset %d, quantization nodes present: %t", sum.Opset, strings.Contains(string(data), "QuantizeLinear"))
	}
	x := tensor.NewRNG(16).Randn(3, 3, 32, 32)
	got, err := net.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDifference(got, q.Forward(x)); i >= 0 {
		t.Errorf("logit %d differs from the folded network's", i)
	}
}

// TestNames: nodes, values and initializers carry the PyTorch module
// names, the weights go through DequantizeLinear on axis 0, and the
// metadata is kept.
func TestNames(t *testing.T) {
	q := quantized(t, zootest.RandomModel(t, "resnet20", 1, 10, 17), 1, 8, brecq.Config{ActQuant: true})
	m, _, err := Export(q, Options{Channels: 1, Height: 8, Width: 8, Metadata: []Entry{{"model", "resnet20"}, {"calib_data_type", "dgh"}}})
	if err != nil {
		t.Fatal(err)
	}
	m, err = Unmarshal(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range m.Graph.Nodes[:8] {
		got = append(got, n.OpType+" "+n.Name)
	}
	want := []string{
		"DequantizeLinear conv1.weight_quantizer", "Conv conv1", "Relu conv1.relu",
		"QuantizeLinear conv1.act_quantizer.quantize", "DequantizeLinear conv1.act_quantizer",
		"DequantizeLinear layer1.0.conv1.weight_quantizer", "Conv layer1.0.conv1", "Relu layer1.0.conv1.relu",
	}
	if !slices.Equal(got, want) {
		t.Errorf("first nodes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, n := range m.Graph.Nodes {
		if n.OpType == "DequantizeLinear" && strings.HasSuffix(n.Name, ".weight_quantizer") &&
			(len(n.Attrs) != 1 || n.Attrs[0].Name != "axis" || n.Attrs[0].I != 0) {
			t.Errorf("%s: attributes %+v, want axis 0", n.Name, n.Attrs)
		}
	}
	last := m.Graph.Nodes[len(m.Graph.Nodes)-1]
	if last.Name != "fc.act_quantizer" || last.Outputs[0] != OutputName {
		t.Errorf("last node %s writes %v, want fc.act_quantizer writing %s", last.Name, last.Outputs, OutputName)
	}
	if !slices.Equal(m.Metadata, []Entry{{"model", "resnet20"}, {"calib_data_type", "dgh"}}) {
		t.Errorf("metadata %v", m.Metadata)
	}
	if m.IRVersion != irNarrow || len(m.Opsets) != 1 || m.Opsets[0] != (Opset{Version: opsetNarrow}) {
		t.Errorf("IR version %d, opsets %v", m.IRVersion, m.Opsets)
	}
}

// TestExportUnfinished: a model whose quantizers are not final is not
// exported.
func TestExportUnfinished(t *testing.T) {
	fresh := func() *brecq.QuantModel {
		q, err := brecq.New(zootest.RandomModel(t, "resnet20", 1, 10, 18), 4, 4)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	noSteps := fresh()
	noSteps.Mode = brecq.Mode{Weights: true, Acts: true}
	soft := fresh()
	soft.Mode = brecq.Mode{Weights: true}
	w := soft.Modules()[3]
	w.WQ.Alpha, w.WQ.Soft = autograd.NewVar(tensor.New(w.Weight.Shape...), true), true
	folded, err := brecq.Fold(zootest.RandomModel(t, "resnet20", 1, 10, 18))
	if err != nil {
		t.Fatal(err)
	}
	folded.Mode = brecq.Mode{Weights: true}
	for name, q := range map[string]*brecq.QuantModel{"activation steps unset": noSteps, "soft rounding": soft, "no weight quantizers": folded} {
		_, _, err := Export(q, Options{Channels: 1, Height: 8, Width: 8})
		if !errors.Is(err, ErrUnfinished) {
			t.Errorf("%s: error %v, want ErrUnfinished", name, err)
		}
	}
}

// TestPlace checks where place puts a quantizer's levels in a type.
func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		t          intType
		lo, hi, zp int64
		off        int64
		ok         bool
	}{
		{uint4T, 0, 15, 0, 0, true},
		{uint4T, 0, 15, 15, 0, true},
		{uint4T, 0, 15, -1, 0, false},
		{uint4T, 0, 15, 16, 0, false},
		{uint4T, 0, 12, -3, 3, true}, // only levels 0..12 used: 3..15, zero point 0
		{int4T, 0, 15, 7, -8, true},
		{int4T, 0, 15, 16, 0, false},
		{uint4T, 0, 3, 2, 0, true},
		{uint4T, 0, 3, -2, 2, true},  // levels at 2..5, zero point 0
		{uint4T, 0, 3, 14, 0, true},  // levels at 0..3, zero point 14
		{int4T, 0, 3, 0, -2, true},   // centred: levels -2..1
		{uint8T, 0, 15, -3, 3, true}, // a channel of positive weights
		{uint8T, 0, 255, 256, 0, false},
		{int8T, 0, 255, 0, -128, true},
		{int32T, 0, 15, -1000, -8, true},
	} {
		off, ok := place(tc.t, tc.lo, tc.hi, tc.zp)
		if ok != tc.ok || ok && off != tc.off {
			t.Errorf("place(%v, %d..%d, zp %d) = %d, %t; want %d, %t", tc.t.dt, tc.lo, tc.hi, tc.zp, off, ok, tc.off, tc.ok)
			continue
		}
		if ok && (tc.lo+off < tc.t.lo || tc.hi+off > tc.t.hi || tc.zp+off < tc.t.lo || tc.zp+off > tc.t.hi) {
			t.Errorf("place(%v, %d..%d, zp %d) = %d puts levels or zero point outside the type", tc.t.dt, tc.lo, tc.hi, tc.zp, off)
		}
	}
}

// TestPackInts: every integer type survives packInts and unpackInts,
// the 4-bit ones two to a byte, low nibble first.
func TestPackInts(t *testing.T) {
	for _, it := range []intType{uint4T, int4T, uint8T, int8T, uint16T, int16T, int32T} {
		vs := []int64{it.lo, it.hi, 0, it.lo + 1, it.hi - 1}
		raw := packInts(it, vs)
		back, ok := unpackInts(it, raw, len(vs))
		if !ok || !slices.Equal(back, vs) {
			t.Errorf("%v: %v -> % x -> %v, %t", it.dt, vs, raw, back, ok)
		}
	}
	if raw := packInts(uint4T, []int64{1, 2, 3}); !slices.Equal(raw, []byte{0x21, 0x03}) {
		t.Errorf("UINT4 1, 2, 3 packed as % x, want 21 03", raw)
	}
	if raw := packInts(int4T, []int64{-1, 7}); !slices.Equal(raw, []byte{0x7f}) {
		t.Errorf("INT4 -1, 7 packed as % x, want 7f", raw)
	}
}

func ExampleExport() {
	m, _ := zoo.New("resnet20", 1, 10) // a trained model in practice: zoo.Load
	q, _ := brecq.Fold(m)              // or brecq.Quantize's result
	file, sum, _ := Export(q, Options{Channels: 1, Height: 28, Width: 28})
	fmt.Println(file.Graph.Inputs[0].Name, "->", file.Graph.Outputs[0].Name, "opset", sum.Opset)
	// Output: input -> logits opset 13
}
