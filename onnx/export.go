// Package onnx writes dghcore's networks as ONNX files and reads them
// back (docs/DESIGN.md, "ONNX export").
//
// Export turns a brecq.QuantModel into the fake-quant network exactly as
// dghcore evaluates it, in ONNX's QDQ form: BatchNorm folded into the
// convolutions, every quantized weight stored as integers with its
// per-output-channel scale and zero point behind a DequantizeLinear, every
// activation quantizer in use as a QuantizeLinear/DequantizeLinear pair.
// Under brecq.Mode{} (brecq.Fold) it writes the float network instead.
//
// Compile (or ReadFile) parses the subset Export writes into a Network
// that runs on dghcore's own ops and reproduces the quantized model's
// logits bit for bit; anything else is refused with the first operator
// or field it does not know.
package onnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/dghcore/dghcore/brecq"
)

// The versions Export writes: opset 21 (IR 10) is the first with the
// 4-bit and 16-bit integer types; a file without them uses opset 13
// (IR 7), which more runtimes and compilers take.
const (
	opsetNarrow = 21
	irNarrow    = 10
	opsetWide   = 13
	irWide      = 7
)

// Graph names: the input and output values.
const (
	InputName  = "input"
	OutputName = "logits"
)

// Options is what Export needs beyond the model.
type Options struct {
	// Channels, Height and Width are the input image's shape; the batch
	// dimension is left symbolic.
	Channels, Height, Width int
	// Metadata goes into the file's metadata_props in this order.
	Metadata []Entry
	// ProducerVersion is dghcore's version.
	ProducerVersion string
}

// Summary says what Export wrote.
type Summary struct {
	Opset int64
	// WeightTypes and ActTypes count the weight tensors and activation
	// quantizers by integer type.
	WeightTypes, ActTypes map[DataType]int
	// Clipped counts the activation quantizers whose levels fill only
	// part of their type, so that a Clip before the QuantizeLinear
	// keeps them in range.
	Clipped int
	// Widened names the tensors stored in a wider type than their bit
	// width because a zero point lies outside its range.
	Widened []string
}

// ErrUnfinished marks a model whose quantization is not complete, so
// there is nothing final to export.
var ErrUnfinished = errors.New("the quantization has not finished")

// Export builds the ONNX model of q under q.Mode (docs/DESIGN.md, "ONNX
// export"). Values and nodes are named after the PyTorch modules
// (layer1.0.conv1, its .weight_quantizer and .act_quantizer).
func Export(q *brecq.QuantModel, opt Options) (*Model, Summary, error) {
	if opt.Channels < 1 || opt.Height < 1 || opt.Width < 1 {
		return nil, Summary{}, fmt.Errorf("onnx: input %dx%dx%d", opt.Channels, opt.Height, opt.Width)
	}
	b := &builder{mode: q.Mode, names: map[string]bool{InputName: true},
		sum: Summary{WeightTypes: map[DataType]int{}, ActTypes: map[DataType]int{}}}
	x, classes := InputName, 0
	steps := q.Steps()
	for i, s := range steps {
		var err error
		switch {
		case s.Pool != nil:
			x = b.pool(s.Pool, x)
		default:
			b.poolNext = nil
			if i+1 < len(steps) && steps[i+1].Pool != nil && !steps[i+1].Pool.Global {
				b.poolNext = outputQuantizer(s.Unit)
			}
			x, err = b.unit(s.Unit, x)
			if ms := s.Unit.Modules(); len(ms) > 0 {
				classes = ms[len(ms)-1].Weight.Shape[0]
			}
		}
		if err != nil {
			return nil, Summary{}, fmt.Errorf("onnx: export %s: %w", q.Name, err)
		}
	}
	if x == InputName || len(b.g.Nodes) == 0 {
		return nil, Summary{}, fmt.Errorf("onnx: export %s: the network has no layers", q.Name)
	}
	// The last value becomes the graph's output.
	b.g.Nodes[len(b.g.Nodes)-1].Outputs = []string{OutputName}
	b.g.Name = q.Name
	batch := Dim{Param: "batch"}
	b.g.Inputs = []ValueInfo{{Name: InputName, ElemType: Float, Shape: []Dim{batch,
		{Value: int64(opt.Channels)}, {Value: int64(opt.Height)}, {Value: int64(opt.Width)}}}}
	b.g.Outputs = []ValueInfo{{Name: OutputName, ElemType: Float, Shape: []Dim{batch, {Value: int64(classes)}}}}

	ir := int64(irWide)
	b.sum.Opset = opsetWide
	for dt := range b.used {
		if dt == Uint4 || dt == Int4 || dt == Uint16 || dt == Int16 {
			b.sum.Opset, ir = opsetNarrow, irNarrow
		}
	}
	m := &Model{
		IRVersion: ir, Opsets: []Opset{{Version: b.sum.Opset}},
		ProducerName: "dghcore", ProducerVersion: opt.ProducerVersion,
		DocString: describe(q),
		Graph:     b.g, Metadata: opt.Metadata,
	}
	return m, b.sum, nil
}

// describe is the model's doc_string.
func describe(q *brecq.QuantModel) string {
	switch {
	case q.Mode.Weights && q.Mode.Acts:
		return q.Name + " quantized by dghcore (BRECQ), weights and activations, in QDQ form"
	case q.Mode.Weights:
		return q.Name + " quantized by dghcore (BRECQ), weights only, in QDQ form"
	case q.Mode.Acts:
		return q.Name + " with dghcore's activation quantizers only, in QDQ form"
	}
	return q.Name + " in float, BatchNorm folded, written by dghcore"
}

// WriteFile writes m to path through a temporary file in the same folder,
// so a failed write leaves no partial file behind.
func WriteFile(path string, m *Model) (n int, err error) {
	data := m.Marshal()
	f, err := os.CreateTemp(filepath.Dir(path), ".dghcore-export-*.onnx")
	if err != nil {
		return 0, fmt.Errorf("onnx: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return 0, fmt.Errorf("onnx: write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return 0, fmt.Errorf("onnx: %w", err)
	}
	if err = f.Close(); err != nil {
		return 0, fmt.Errorf("onnx: write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return 0, fmt.Errorf("onnx: %w", err)
	}
	return len(data), nil
}

// CheckWritable reports whether a file can be created at path, without
// leaving one behind: the check a long run makes before its work.
func CheckWritable(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a folder", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".dghcore-export-*.onnx")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("cannot write to %s: %w", filepath.Dir(path), pe.Err)
		}
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// builder accumulates the graph.
type builder struct {
	g     Graph
	mode  brecq.Mode
	names map[string]bool   // node and value names taken
	used  map[DataType]bool // integer types written
	sum   Summary
	relu6 [2]string // the shared Clip bounds of ReLU6, once written
	// poolNext is the output quantizer of a unit that a max pooling
	// follows.
	poolNext *brecq.ActQuantizer
}

// unique returns name, or name with a numeric suffix when it is taken.
func (b *builder) unique(name string) string {
	n := name
	for i := 2; b.names[n]; i++ {
		n = fmt.Sprintf("%s_%d", name, i)
	}
	b.names[n] = true
	return n
}

// node appends a node with one output named like the node.
func (b *builder) node(op, name string, inputs []string, attrs ...Attribute) string {
	name = b.unique(name)
	b.g.Nodes = append(b.g.Nodes, Node{Name: name, OpType: op, Inputs: inputs, Outputs: []string{name}, Attrs: attrs})
	return name
}

func (b *builder) initializer(t Tensor) string {
	t.Name = b.unique(t.Name)
	b.g.Initializers = append(b.g.Initializers, t)
	return t.Name
}

func (b *builder) floats(name string, shape []int, v []float32) string {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		putFloat(raw[4*i:], f)
	}
	return b.initializer(Tensor{Name: name, Dims: dims64(shape), DataType: Float, Raw: raw})
}

// use records that the file holds values of type t.
func (b *builder) use(t intType) {
	if b.used == nil {
		b.used = map[DataType]bool{}
	}
	b.used[t.dt] = true
}

func (b *builder) ints(name string, t intType, shape []int, v []int64) string {
	b.use(t)
	return b.initializer(Tensor{Name: name, Dims: dims64(shape), DataType: t.dt, Raw: packInts(t, v)})
}

func dims64(shape []int) []int64 {
	d := make([]int64, len(shape))
	for i, s := range shape {
		d[i] = int64(s)
	}
	return d
}

func intsAttr(name string, v ...int64) Attribute {
	return Attribute{Name: name, Type: AttrInts, Ints: v}
}

func intAttr(name string, v int64) Attribute { return Attribute{Name: name, Type: AttrInt, I: v} }

// outputQuantizer is the activation quantizer of a unit's output, if any.
func outputQuantizer(u brecq.Unit) *brecq.ActQuantizer {
	switch u := u.(type) {
	case *brecq.QuantModule:
		return u.AQ
	case *brecq.Block:
		return u.AQ
	}
	return nil
}

func (b *builder) unit(u brecq.Unit, x string) (string, error) {
	switch u := u.(type) {
	case *brecq.QuantModule:
		return b.module(u, x)
	case *brecq.Block:
		return b.block(u, x)
	}
	return "", fmt.Errorf("unit %s of type %T", u.UnitName(), u)
}

func (b *builder) pool(p *brecq.Pool, x string) string {
	if p.Global {
		x = b.node("GlobalAveragePool", "avgpool", []string{x})
		return b.node("Flatten", "flatten", []string{x}, intAttr("axis", 1))
	}
	return b.node("MaxPool", "maxpool", []string{x},
		intsAttr("kernel_shape", int64(p.Kernel[0]), int64(p.Kernel[1])),
		intsAttr("strides", int64(p.Stride[0]), int64(p.Stride[1])),
		intsAttr("pads", int64(p.Padding[0]), int64(p.Padding[1]), int64(p.Padding[0]), int64(p.Padding[1])))
}

// block writes a residual block: the main chain, the shortcut and the
// add, the block's activation and its quantizer.
func (b *builder) block(blk *brecq.Block, x string) (string, error) {
	y := x
	for _, m := range blk.Main {
		var err error
		if y, err = b.module(m, y); err != nil {
			return "", err
		}
	}
	if blk.Residual {
		s := x
		if blk.Downsample != nil {
			var err error
			if s, err = b.module(blk.Downsample, x); err != nil {
				return "", err
			}
		}
		y = b.node("Add", blk.Name+".add", []string{y, s})
	}
	y = b.activation(blk.Name, blk.Act, y)
	if b.mode.Acts && blk.AQ != nil {
		return b.actQuant(blk.Name+".act_quantizer", blk.AQ, y)
	}
	return y, nil
}

// module writes a conv or linear layer with its weight (dequantized from
// integers when weights are quantized), bias, activation and output
// quantizer.
func (b *builder) module(m *brecq.QuantModule, x string) (string, error) {
	w, err := b.weight(m)
	if err != nil {
		return "", err
	}
	in := []string{x, w}
	if m.Bias != nil {
		in = append(in, b.floats(m.Name+".bias", m.Bias.Shape, m.Bias.Data))
	}
	var y string
	if m.Linear {
		y = b.node("Gemm", m.Name, in, intAttr("transB", 1))
	} else {
		ws := m.Weight.Shape
		y = b.node("Conv", m.Name, in,
			intsAttr("kernel_shape", int64(ws[2]), int64(ws[3])),
			intsAttr("strides", int64(m.Stride[0]), int64(m.Stride[1])),
			intsAttr("pads", int64(m.Padding[0]), int64(m.Padding[1]), int64(m.Padding[0]), int64(m.Padding[1])),
			intsAttr("dilations", int64(m.Dilation[0]), int64(m.Dilation[1])),
			intAttr("group", int64(m.Groups)))
	}
	y = b.activation(m.Name, m.Act, y)
	if b.mode.Acts && m.AQ != nil {
		return b.actQuant(m.Name+".act_quantizer", m.AQ, y)
	}
	return y, nil
}

// activation writes ReLU as Relu and ReLU6 as Clip(0, 6).
func (b *builder) activation(owner string, a brecq.Activation, x string) string {
	switch a {
	case brecq.ActReLU:
		return b.node("Relu", owner+".relu", []string{x})
	case brecq.ActReLU6:
		if b.relu6[0] == "" {
			b.relu6 = [2]string{b.floats("relu6.min", nil, []float32{0}), b.floats("relu6.max", nil, []float32{6})}
		}
		return b.node("Clip", owner+".relu6", []string{x, b.relu6[0], b.relu6[1]})
	}
	return x
}

// weight writes m's weight and returns the value that holds it.
//
// A quantized weight is dghcore's (c - zp)*delta per output channel, c an
// integer in 0..2^bits-1. The file stores c+off with the zero point
// zp+off (place) and the scale delta, so DequantizeLinear's
// (stored - zero point)*scale is the same product, rounded once, as the
// weight dghcore computes; every value is checked against it.
func (b *builder) weight(m *brecq.QuantModule) (string, error) {
	if !b.mode.Weights {
		return b.floats(m.Name+".weight", m.Weight.Shape, m.Weight.Data), nil
	}
	wq, ok := m.QuantizedWeight()
	if !ok {
		return "", fmt.Errorf("%s: %w: its weights are not rounded yet", m.Name, ErrUnfinished)
	}
	rows := wq.Shape[0]
	cols := wq.Numel() / rows
	qmax := int64(1)<<m.WQ.Bits - 1
	zps := make([]int64, rows)
	levels := make([]int64, wq.Numel())
	used := make([][2]int64, rows) // the lowest and highest level of each channel
	for r := range rows {
		d, z := m.WQ.Delta[r], m.WQ.ZP[r]
		zi, err := integral(z)
		if err != nil || !(d > 0) || math.IsInf(float64(d), 0) {
			return "", fmt.Errorf("%s: output channel %d has step %v and zero point %v", m.Name, r, d, z)
		}
		zps[r] = zi
		for i := r * cols; i < (r+1)*cols; i++ {
			c := int64(math.RoundToEven(float64(wq.Data[i]/d))) + zi
			if c < 0 || c > qmax || math.Float32bits(float32(c-zi)*d) != math.Float32bits(wq.Data[i]) {
				return "", fmt.Errorf("%s: weight %d (%v) is not a level of its channel's quantizer (step %v, zero point %v)",
					m.Name, i, wq.Data[i], d, z)
			}
			levels[i] = c
		}
		used[r] = [2]int64{slices.Min(levels[r*cols : (r+1)*cols]), slices.Max(levels[r*cols : (r+1)*cols])}
	}
	t, offs, err := placeAll(weightTypes(m.WQ.Bits), used, zps)
	if err != nil {
		return "", fmt.Errorf("%s: %w", m.Name, err)
	}
	for r := range rows {
		zps[r] += offs[r]
		for i := r * cols; i < (r+1)*cols; i++ {
			levels[i] += offs[r]
		}
	}
	b.sum.WeightTypes[t.dt]++
	if t.levels() > weightTypes(m.WQ.Bits)[0].levels() {
		b.sum.Widened = append(b.sum.Widened, m.Name+".weight")
	}
	wname := b.ints(m.Name+".weight", t, wq.Shape, levels)
	scale := b.floats(m.Name+".weight_quantizer.scale", []int{rows}, m.WQ.Delta)
	zp := b.ints(m.Name+".weight_quantizer.zero_point", t, []int{rows}, zps)
	return b.node("DequantizeLinear", m.Name+".weight_quantizer", []string{wname, scale, zp}, intAttr("axis", 0)), nil
}

// actQuant writes an activation quantizer, dghcore's
// q(x) = (clamp(round(x/delta) + zp, 0, 2^bits-1) - zp) * delta with
// round half to even, as QuantizeLinear/DequantizeLinear, whose
// saturate(round(x/scale) + zero point) rounds the same way. With the
// scale delta the two agree wherever the type's range is the
// quantizer's; otherwise (2, 3, 5-7 bits, or a zero point outside the
// levels) a Clip to the first and last level's values, lo = -zp*delta
// and hi = (2^bits-1-zp)*delta, does the clamping first: x/delta is
// monotone in x and lo/delta and hi/delta round back to -zp and
// 2^bits-1-zp, so the clipped x rounds to exactly the clamped level.
//
// Behind a Clip (that one, or ReLU6's) a 4- or 16-bit QuantizeLinear
// gets no zero point input, its type named by output_dtype instead, and
// the levels are placed so that its zero point is the default 0: ONNX
// Runtime 1.31's ClipQuantFusion reads the zero point of a
// QuantizeLinear behind a Clip and fails on every type but the 8-bit
// ones, and it skips a QuantizeLinear without one. A quantizer that a
// max pooling reads gets an 8-bit type: ONNX Runtime moves such a pair
// around the MaxPool, which has kernels for 8-bit integers but not 4-bit.
func (b *builder) actQuant(name string, aq *brecq.ActQuantizer, x string) (string, error) {
	if !aq.Ready() {
		return "", fmt.Errorf("%s: %w: it has no step size yet", name, ErrUnfinished)
	}
	d := aq.Delta.Value.Data[0]
	zp, err := integral(aq.ZP)
	if err != nil || !(d > 0) || math.IsInf(float64(d), 0) {
		return "", fmt.Errorf("%s: step %v and zero point %v", name, d, aq.ZP)
	}
	qmax := int64(1)<<aq.Bits - 1
	last := b.g.Nodes[len(b.g.Nodes)-1]
	afterClip := last.OpType == "Clip" && last.Outputs[0] == x
	var t intType
	var off int64
	found, noZP := false, false
	for _, c := range actTypes(aq.Bits) {
		if aq == b.poolNext && !c.eightBit() {
			continue
		}
		clip := c.levels() != qmax+1
		if (clip || afterClip) && !c.eightBit() {
			off, found = -zp, c.lo <= -zp && qmax-zp <= c.hi
			noZP = true
		} else {
			off, found = place(c, 0, qmax, zp)
			noZP = false
		}
		if found {
			t = c
			break
		}
	}
	if !found {
		return "", fmt.Errorf("%s: zero point %d fits no ONNX integer type", name, zp)
	}
	b.sum.ActTypes[t.dt]++
	if t.levels() > actTypes(aq.Bits)[0].levels() && aq != b.poolNext {
		b.sum.Widened = append(b.sum.Widened, name)
	}
	if t.levels() != qmax+1 {
		b.sum.Clipped++
		lo := float32(-zp) * d
		hi := float32(qmax-zp) * d
		x = b.node("Clip", name+".clip", []string{x,
			b.floats(name+".clip_min", nil, []float32{lo}), b.floats(name+".clip_max", nil, []float32{hi})})
	}
	scale := b.floats(name+".scale", nil, []float32{d})
	if noZP {
		b.use(t)
		q := b.node("QuantizeLinear", name+".quantize", []string{x, scale}, intAttr("output_dtype", int64(t.dt)))
		return b.node("DequantizeLinear", name, []string{q, scale}), nil
	}
	zpt := b.ints(name+".zero_point", t, nil, []int64{zp + off})
	q := b.node("QuantizeLinear", name+".quantize", []string{x, scale, zpt})
	return b.node("DequantizeLinear", name, []string{q, scale, zpt}), nil
}

// integral converts a zero point held as a float to an integer.
func integral(v float32) (int64, error) {
	if v != float32(math.Round(float64(v))) || math.Abs(float64(v)) > 1<<24 {
		return 0, fmt.Errorf("zero point %v is not an integer", v)
	}
	return int64(v), nil
}
