package main

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dghcore/dghcore/layers"
	"github.com/dghcore/dghcore/layers/zoo"
	"github.com/dghcore/dghcore/tensor"
)

// randomModel is the named zoo architecture with seeded random weights
// (He-scaled convolutions, BatchNorms near the identity), so tests run
// the whole program on a model of any input channels and classes.
func randomModel(t *testing.T, name string, channels, classes int, seed uint64) *zoo.Model {
	t.Helper()
	m, err := zoo.New(name, channels, classes)
	if err != nil {
		t.Fatal(err)
	}
	rng := tensor.NewRNG(seed)
	for _, e := range layers.StateDict(m.Net) {
		d := e.Tensor
		switch {
		case strings.HasSuffix(e.Name, "running_var"):
			rng.FillUniform(d, 0.5, 1.5)
		case strings.HasSuffix(e.Name, "running_mean"), strings.HasSuffix(e.Name, "bias"):
			rng.FillUniform(d, -0.2, 0.2)
		case d.Dims() == 1: // BatchNorm weight
			rng.FillUniform(d, 0.5, 1.2)
		default:
			fanIn := d.Numel() / d.Shape[0]
			rng.FillNormal(d, 0, float32(math.Sqrt(2/float64(fanIn))))
		}
	}
	return m
}

// writeCheckpoint saves m's state dict the way torch.save does since
// torch 1.6: a zip archive with the pickled dict in archive/data.pkl
// (protocol 2, each tensor a _rebuild_tensor_v2 call on a persistent
// FloatStorage) and each storage's little-endian bytes in archive/data/<key>.
func writeCheckpoint(t *testing.T, path string, m *zoo.Model) {
	t.Helper()
	var pkl bytes.Buffer
	str := func(s string) {
		pkl.WriteByte('X') // BINUNICODE
		binary.Write(&pkl, binary.LittleEndian, uint32(len(s)))
		pkl.WriteString(s)
	}
	num := func(v int) {
		pkl.WriteByte('J') // BININT
		binary.Write(&pkl, binary.LittleEndian, int32(v))
	}
	tuple := func(vs []int) {
		pkl.WriteByte('(')
		for _, v := range vs {
			num(v)
		}
		pkl.WriteByte('t')
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	pkl.WriteString("\x80\x02}(") // PROTO 2, EMPTY_DICT, MARK
	for i, e := range layers.StateDict(m.Net) {
		key := strconv.Itoa(i)
		str(e.Name)
		pkl.WriteString("ctorch._utils\n_rebuild_tensor_v2\n(")
		pkl.WriteString("(")
		str("storage")
		pkl.WriteString("ctorch\nFloatStorage\n")
		str(key)
		str("cpu")
		num(e.Tensor.Numel())
		pkl.WriteString("tQ") // TUPLE, BINPERSID
		num(0)                // storage offset
		tuple(e.Tensor.Shape)
		tuple(e.Tensor.Strides())
		pkl.WriteString("\x89ccollections\nOrderedDict\n)R") // requires_grad False, empty hooks
		pkl.WriteString("tR")
		w, err := zw.Create("archive/data/" + key)
		if err != nil {
			t.Fatal(err)
		}
		if err := binary.Write(w, binary.LittleEndian, e.Tensor.Data); err != nil {
			t.Fatal(err)
		}
	}
	pkl.WriteString("u.") // SETITEMS, STOP
	for name, data := range map[string][]byte{"archive/data.pkl": pkl.Bytes(), "archive/version": []byte("3\n")} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWriteCheckpointLoads checks the test writer against the real
// loader: the model built from the file computes what the original does.
func TestWriteCheckpointLoads(t *testing.T) {
	m := randomModel(t, "resnet20", 3, 4, 1)
	path := t.TempDir() + "/tiny.pth"
	writeCheckpoint(t, path, m)
	got, err := zoo.Load("resnet20", path)
	if err != nil {
		t.Fatal(err)
	}
	x := tensor.NewRNG(2).Randn(2, 3, 8, 8)
	want, have := m.Logits(x), got.Logits(x)
	for i := range want.Data {
		if want.Data[i] != have.Data[i] {
			t.Fatalf("logit %d: loaded model %g, original %g", i, have.Data[i], want.Data[i])
		}
	}
}
