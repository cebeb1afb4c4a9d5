package onnx

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/assets"
	"github.com/dghcore/dghcore/brecq"
	"github.com/dghcore/dghcore/dataset"
	"github.com/dghcore/dghcore/dgh"
	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/torchload"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/layers/zoo/zootest"
	"github.com/dghcore/dghcore/tensor"
)

// TestEmbeddedRoundTrip is the round trip: the embedded default
// quantized to W4A4 (DGH images, both BRECQ phases, a short schedule),
// exported and read back, gives the in-memory model's logits bit for bit
// on the whole embedded test set, batch by batch as the command line
// evaluates.
func TestEmbeddedRoundTrip(t *testing.T) {
	sd, err := torchload.LoadBytes(assets.ResNet20Checkpoint())
	if err != nil {
		t.Fatal(err)
	}
	m, err := zoo.Build(assets.ResNet20FashionMNISTModel, sd)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calib, err := dgh.Generate(ctx, m, dgh.Config{NImages: 32, BatchSize: 32, Iterations: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	q, err := brecq.Quantize(ctx, m, calib, brecq.Config{NumIterations: 10, ItersA: 10, ActQuant: true, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	net, sum, _ := roundTrip(t, q, 1, 28)
	t.Logf("opset %d, weights %v, activations %v, widened %v", sum.Opset, sum.WeightTypes, sum.ActTypes, sum.Widened)
	test, err := dataset.ReadIDX(bytes.NewReader(assets.FashionMNISTTestImages()), bytes.NewReader(assets.FashionMNISTTestLabels()),
		assets.FashionMNISTNormalization(), assets.FashionMNISTClasses)
	if err != nil {
		t.Fatal(err)
	}
	n := test.Len()
	if testing.Short() {
		n = 2000
	}
	const batch = 32
	for lo := 0; lo < n; lo += batch {
		x, _, err := dataset.Range(test, lo, min(lo+batch, n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := net.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		want := q.Forward(x)
		if i := firstDifference(got, want); i >= 0 {
			t.Fatalf("image %d, logit %d: read back %v, in memory %v", lo+i/10, i%10, got.Data[i], want.Data[i])
		}
	}
	t.Logf("%d test images: identical logits", n)
}

// TestFloatExportsMatchPyTorch: the float export of every zoo fixture
// (tools/torchref/zoo.py), read back, gives PyTorch's logits within 1e-4
// of their scale, the bound the issue sets for ONNX Runtime.
func TestFloatExportsMatchPyTorch(t *testing.T) {
	for _, tc := range []struct{ fixture, arch string }{
		{"resnet20_fmnist", "resnet20"}, {"resnet20_cifar", "resnet20"},
		{"mobilenet_v2", "mobilenet_v2"}, {"resnet18", "resnet18"}, {"resnet50", "resnet50"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			dir := filepath.Join("..", "layers", "zoo", "testdata")
			sd, err := torchload.LoadBytes(zootest.Gunzip(t, filepath.Join(dir, tc.fixture+".zip.pth.gz")))
			if err != nil {
				t.Fatal(err)
			}
			m, err := zoo.Build(tc.arch, sd)
			if err != nil {
				t.Fatal(err)
			}
			x, err := tensor.ReadNPYFrom(bytes.NewReader(zootest.Gunzip(t, filepath.Join(dir, tc.fixture+"_x.npy.gz"))))
			if err != nil {
				t.Fatal(err)
			}
			want, err := tensor.ReadNPY(filepath.Join(dir, tc.fixture+"_logits.npy"))
			if err != nil {
				t.Fatal(err)
			}
			q, err := brecq.Fold(m)
			if err != nil {
				t.Fatal(err)
			}
			net, _, _ := roundTrip(t, q, x.Shape[1], x.Shape[2])
			got, err := net.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			var scale, worst float64
			for i, w := range want.Data {
				scale = max(scale, math.Abs(float64(w)))
				worst = max(worst, math.Abs(float64(got.Data[i]-w)))
			}
			t.Logf("max |logit - PyTorch| = %.3g, %.3g of the scale", worst, worst/scale)
			if !(worst <= 1e-4*scale) {
				t.Errorf("max |logit - PyTorch| = %.3g, more than 1e-4 of the scale %.3g", worst, scale)
			}
		})
	}
}

// tinyResNet is a resnet20-style network with one residual block of two
// channels: a valid export small enough to seed the fuzzer.
func tinyResNet(seed uint64) *zoo.Model {
	conv, bn := layers.NewConv2d, layers.NewBatchNorm2d
	net := &zoo.ResNet{
		Conv1: conv(1, 2, 3, 1, 1, 1, false), BN1: bn(2),
		Layers: [][]layers.Module{{&zoo.BasicBlock{
			Conv1: conv(2, 2, 3, 1, 1, 1, false), BN1: bn(2), Conv2: conv(2, 2, 3, 1, 1, 1, false), BN2: bn(2),
		}}},
		FC: layers.NewLinear(2, 3, true),
	}
	zootest.Randomize(net, seed, nil)
	return &zoo.Model{Name: "resnet20", Net: net, Spec: zoo.Spec{InputSize: 4}}
}

// tinyExport is tinyResNet quantized to W4A4 and exported.
func tinyExport(t testing.TB) *Model {
	t.Helper()
	q := quantized(t, tinyResNet(19), 1, 4, brecq.Config{ActQuant: true})
	m, _, err := Export(q, Options{Channels: 1, Height: 4, Width: 4, Metadata: []Entry{{"model", "tiny"}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReadRefusals: truncated and foreign files, and files outside the
// subset dghcore writes, are refused with one line that says why, the
// operator named first where one is the reason.
func TestReadRefusals(t *testing.T) {
	good := tinyExport(t)
	data := good.Marshal()
	if _, err := Parse(data); err != nil {
		t.Fatalf("the export itself: %v", err)
	}
	edit := func(f func(m *Model)) []byte {
		m, err := Unmarshal(data)
		if err != nil {
			t.Fatal(err)
		}
		f(m)
		return m.Marshal()
	}
	node := func(m *Model, op string) *Node {
		for i := range m.Graph.Nodes {
			if m.Graph.Nodes[i].OpType == op {
				return &m.Graph.Nodes[i]
			}
		}
		t.Fatalf("no %s node", op)
		return nil
	}
	cases := []struct {
		name string
		data []byte
		want []string
	}{
		{"empty", nil, []string{"not an ONNX model"}},
		{"text", []byte("hello, world\n"), []string{"not an ONNX model"}},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), []string{"not an ONNX model"}},
		{"zip", []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00"), []string{"not an ONNX model"}},
		{"truncated", data[:len(data)/2], []string{"not an ONNX model", "truncated"}},
		{"truncated by one byte", data[:len(data)-1], []string{"not an ONNX model", "truncated"}},
		{"unknown operator", edit(func(m *Model) { node(m, "Relu").OpType = "BatchNormalization" }),
			[]string{`operator BatchNormalization (node "conv1.relu") is not supported`, "Conv, Gemm"}},
		{"other domain", edit(func(m *Model) { node(m, "Relu").Domain = "com.microsoft" }),
			[]string{`operator com.microsoft.Relu (node "conv1.relu") is not supported`}},
		{"lone QuantizeLinear", edit(func(m *Model) { node(m, "Add").Inputs[1] = node(m, "QuantizeLinear").Outputs[0] }),
			[]string{"QuantizeLinear", "exactly one DequantizeLinear"}},
		{"asymmetric pads", edit(func(m *Model) {
			c := node(m, "Conv")
			for i := range c.Attrs {
				if c.Attrs[i].Name == "pads" {
					c.Attrs[i].Ints = []int64{1, 1, 0, 0}
				}
			}
		}), []string{`node "conv1" (Conv)`, "not symmetric"}},
		{"unknown attribute", edit(func(m *Model) {
			c := node(m, "Conv")
			c.Attrs = append(c.Attrs, Attribute{Name: "fancy", Type: AttrInt, I: 1})
		}), []string{`attribute "fancy" is not supported`}},
		{"dynamic height", edit(func(m *Model) { m.Graph.Inputs[0].Shape[2] = Dim{Param: "h"} }),
			[]string{"dimension 2", `"h"`, "fixed size"}},
		{"opset 11", edit(func(m *Model) { m.Opsets[0].Version = 11 }), []string{"opset 11", "13 to 21"}},
		{"no opset", edit(func(m *Model) { m.Opsets = nil }), []string{"no default-domain opset"}},
		{"no IR version", edit(func(m *Model) { m.IRVersion = 0 }), []string{"no IR version"}},
		{"two outputs", edit(func(m *Model) {
			m.Graph.Outputs = append(m.Graph.Outputs, ValueInfo{Name: "conv1", ElemType: Float})
		}), []string{"2 graph outputs"}},
		{"nodes out of order", edit(func(m *Model) {
			ns := m.Graph.Nodes
			ns[1], ns[2] = ns[2], ns[1]
		}), []string{"not defined before the node", "topological order"}},
		{"short weight data", edit(func(m *Model) {
			w := &m.Graph.Initializers[0]
			w.Raw = w.Raw[:len(w.Raw)-1]
		}), []string{"initializer", "bytes of data"}},
		{"external data", edit(func(m *Model) { m.Graph.Initializers[0].External = true }), []string{"external data"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
	// Every prefix of the file is refused, none panics.
	for n := range len(data) {
		if _, err := Parse(data[:n]); err == nil {
			t.Fatalf("the first %d of %d bytes were accepted", n, len(data))
		}
	}
}

// TestForwardChecksInput: an image of the wrong shape is an error, not a
// panic.
func TestForwardChecksInput(t *testing.T) {
	net, err := Compile(tinyExport(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, shape := range [][]int{{1, 1, 5, 4}, {2, 2, 4, 4}, {1, 16}, {0, 1, 4, 4}} {
		if _, err := net.Forward(tensor.New(shape...)); err == nil || !strings.Contains(err.Error(), "want N x 1 x 4 x 4") {
			t.Errorf("input %v: error %v", shape, err)
		}
	}
	if y, err := net.Forward(tensor.New(3, 1, 4, 4)); err != nil || !slices.Equal(y.Shape, []int{3, 3}) {
		t.Errorf("a batch of three: %v, %v", y, err)
	}
}

// FuzzParse: no input makes the reader panic or run away, and a network
// it accepts runs on an input of its declared shape.
func FuzzParse(f *testing.F) {
	data := tinyExport(f).Marshal()
	f.Add(data)
	f.Add(data[:len(data)/3])
	f.Add([]byte("\x08\x07\x12\x07dghcore"))
	f.Fuzz(func(t *testing.T, data []byte) {
		net, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		if tensor.Numel(net.Input) > 1<<12 {
			return
		}
		budget := 0
		for _, o := range net.ops {
			budget += tensor.Numel(net.shapes[o.out])
		}
		if budget > 1<<20 {
			return
		}
		if _, err := net.Forward(tensor.New(append([]int{1}, net.Input...)...)); err != nil {
			t.Errorf("accepted network fails on its own input shape: %v", err)
		}
	})
}
