package onnx

// Reading ONNX files back: the subset Export writes, compiled into a
// sequence of dghcore's autograd ops (docs/DESIGN.md, "ONNX export").

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/kernels"
	"github.com/dghcore/dghcore/tensor"
)

// The default-domain opsets whose operators in this subset mean what
// Export's do.
const (
	minOpset = 13
	maxOpset = 21
)

// maxValue bounds the values of one image a network may declare, so that
// a hostile file cannot make shape arithmetic overflow.
const maxValue = 1 << 31

// supportedOps lists what Compile reads, for its refusal message.
var supportedOps = []string{"Conv", "Gemm", "Relu", "Clip", "Add", "MaxPool", "GlobalAveragePool", "Flatten",
	"QuantizeLinear (followed by its DequantizeLinear)", "DequantizeLinear (of a weight)"}

// Network is an ONNX model compiled for dghcore's ops.
type Network struct {
	Name     string
	Metadata []Entry
	Opset    int64
	// Input is one image's shape [C, H, W]; Output one image's output
	// shape, [classes] for a classifier.
	Input, Output []int

	ops     []op
	names   []string // value name of each slot; slot 0 is the input
	shapes  [][]int  // one image's shape of each slot
	outSlot int
}

// op is one compiled node (or a QuantizeLinear/DequantizeLinear pair).
type op struct {
	node string
	in   []int
	out  int
	free []int // slots whose last use this op is
	run  func(in []*autograd.Var) *autograd.Var
}

// Meta returns the metadata value of key, or "".
func (n *Network) Meta(key string) string {
	for _, e := range n.Metadata {
		if e.Key == key {
			return e.Value
		}
	}
	return ""
}

// ReadFile reads and compiles an ONNX file.
func ReadFile(path string) (*Network, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return Parse(data)
}

// Parse decodes and compiles an ONNX file's bytes.
func Parse(data []byte) (*Network, error) {
	m, err := Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: not an ONNX model: %w", err)
	}
	return Compile(m)
}

// Forward runs the network on x [N, C, H, W].
func (n *Network) Forward(x *tensor.Tensor) (*tensor.Tensor, error) { return n.Trace(x, nil) }

// Trace is Forward that also shows every value it computes to fn, by
// name, in order (fn may be nil).
func (n *Network) Trace(x *tensor.Tensor, fn func(name string, v *tensor.Tensor)) (*tensor.Tensor, error) {
	if x.Dims() != 4 || x.Shape[0] < 1 || !slices.Equal(x.Shape[1:], n.Input) {
		return nil, fmt.Errorf("onnx: input %v, want N x %d x %d x %d", x.Shape, n.Input[0], n.Input[1], n.Input[2])
	}
	vals := make([]*autograd.Var, len(n.names))
	vals[0] = autograd.Const(x)
	var in []*autograd.Var
	for _, o := range n.ops {
		in = in[:0]
		for _, s := range o.in {
			in = append(in, vals[s])
		}
		vals[o.out] = o.run(in)
		if fn != nil {
			fn(n.names[o.out], vals[o.out].Value)
		}
		for _, s := range o.free {
			vals[s] = nil
		}
	}
	return vals[n.outSlot].Value, nil
}

// constant is an initializer, or a DequantizeLinear of one, decoded.
type constant struct {
	dt   DataType
	dims []int
	f    []float32 // Float data
	i    []int64   // integer data
}

func (c *constant) scalar() bool { return len(c.dims) == 0 || (len(c.dims) == 1 && c.dims[0] == 1) }

// compiler is the state of one Compile.
type compiler struct {
	net    *Network
	consts map[string]*constant
	slots  map[string]int // runtime values
	shapes [][]int        // per slot, one image's shape
	uses   map[string][]int
	nodes  []Node
	fused  []bool // nodes compiled together with an earlier one
}

// Compile checks that m is in the subset dghcore writes and builds its
// Network. The first thing outside the subset is the error.
func Compile(m *Model) (*Network, error) {
	if m.IRVersion < 3 {
		return nil, errors.New("onnx: not an ONNX model: no IR version")
	}
	c := &compiler{net: &Network{Name: m.Graph.Name, Metadata: m.Metadata},
		consts: map[string]*constant{}, slots: map[string]int{}, uses: map[string][]int{}, nodes: m.Graph.Nodes}
	if err := c.opset(m.Opsets); err != nil {
		return nil, err
	}
	g := &m.Graph
	if g.Sparse > 0 {
		return nil, errors.New("onnx: sparse initializers are not supported")
	}
	for i := range g.Initializers {
		t := &g.Initializers[i]
		if _, dup := c.consts[t.Name]; dup || t.Name == "" {
			return nil, fmt.Errorf("onnx: initializer %q is unnamed or defined twice", t.Name)
		}
		k, err := decodeTensor(t)
		if err != nil {
			return nil, fmt.Errorf("onnx: initializer %q: %w", t.Name, err)
		}
		c.consts[t.Name] = k
	}
	if err := c.input(g.Inputs); err != nil {
		return nil, err
	}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != "" {
				c.uses[in] = append(c.uses[in], i)
			}
		}
	}
	if len(g.Outputs) != 1 {
		return nil, fmt.Errorf("onnx: %d graph outputs, want one", len(g.Outputs))
	}
	out := g.Outputs[0].Name
	c.uses[out] = append(c.uses[out], len(g.Nodes)) // the output counts as a use past every node
	c.fused = make([]bool, len(g.Nodes))
	for i := range g.Nodes {
		if c.fused[i] {
			continue
		}
		if err := c.node(i); err != nil {
			return nil, err
		}
	}
	s, ok := c.slots[out]
	if !ok {
		return nil, fmt.Errorf("onnx: graph output %q is not computed by any node", out)
	}
	c.net.outSlot, c.net.Output, c.net.shapes = s, c.shapes[s], c.shapes
	c.lastUses()
	return c.net, nil
}

func (c *compiler) opset(sets []Opset) error {
	for _, o := range sets {
		if o.Domain != "" && o.Domain != "ai.onnx" {
			continue // nodes of other domains are refused by name
		}
		if o.Version < minOpset || o.Version > maxOpset {
			return fmt.Errorf("onnx: opset %d; dghcore reads opsets %d to %d", o.Version, minOpset, maxOpset)
		}
		c.net.Opset = o.Version
		return nil
	}
	return errors.New("onnx: not an ONNX model: no default-domain opset")
}

// input finds the one graph input that is not an initializer.
func (c *compiler) input(vs []ValueInfo) error {
	var in *ValueInfo
	for i := range vs {
		if _, ok := c.consts[vs[i].Name]; ok {
			continue
		}
		if in != nil {
			return fmt.Errorf("onnx: graph inputs %q and %q; dghcore runs networks of one image input", in.Name, vs[i].Name)
		}
		in = &vs[i]
	}
	switch {
	case in == nil:
		return errors.New("onnx: the graph has no input")
	case in.ElemType != Float:
		return fmt.Errorf("onnx: input %q is %v, want FLOAT", in.Name, in.ElemType)
	case len(in.Shape) != 4:
		return fmt.Errorf("onnx: input %q has %d dimensions, want N x C x H x W", in.Name, len(in.Shape))
	}
	shape := make([]int, 3)
	numel := int64(1)
	for i, d := range in.Shape[1:] {
		if d.Param != "" || d.Value < 1 || d.Value > maxValue {
			return fmt.Errorf("onnx: input %q: dimension %d is %s, want a fixed size", in.Name, i+1, dimString(d))
		}
		numel *= d.Value
		if numel > maxValue {
			return fmt.Errorf("onnx: input %q is too large", in.Name)
		}
		shape[i] = int(d.Value)
	}
	c.net.Input = shape
	c.define(in.Name, shape)
	return nil
}

func dimString(d Dim) string {
	if d.Param != "" {
		return fmt.Sprintf("%q", d.Param)
	}
	return fmt.Sprint(d.Value)
}

// define makes name a runtime value of one image's shape and returns its
// slot.
func (c *compiler) define(name string, shape []int) int {
	s := len(c.net.names)
	c.net.names = append(c.net.names, name)
	c.shapes = append(c.shapes, shape)
	c.slots[name] = s
	return s
}

// lastUses tells each op which values it is the last to read.
func (c *compiler) lastUses() {
	last := make([]int, len(c.net.names))
	for i := range last {
		last[i] = -1
	}
	for i, o := range c.net.ops {
		for _, s := range o.in {
			last[s] = i
		}
	}
	for s, i := range last {
		if i >= 0 && s != c.net.outSlot {
			c.net.ops[i].free = append(c.net.ops[i].free, s)
		}
	}
}

// nodeError prefixes a node's errors with its name and operator.
func nodeError(n *Node, format string, args ...any) error {
	return fmt.Errorf("onnx: node %q (%s): %s", n.Name, n.OpType, fmt.Sprintf(format, args...))
}

// node compiles node i.
func (c *compiler) node(i int) error {
	n := &c.nodes[i]
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return c.unsupported(n)
	}
	if err := c.checkOutput(n); err != nil {
		return err
	}
	if n.OpType == "QuantizeLinear" {
		return c.quantize(i)
	}
	if compile, ok := operators[n.OpType]; ok {
		return compile(c, n)
	}
	return c.unsupported(n)
}

// operators compile the nodes of the subset, QuantizeLinear aside.
var operators = map[string]func(*compiler, *Node) error{
	"DequantizeLinear":  (*compiler).dequantizeWeight,
	"Conv":              (*compiler).conv,
	"Gemm":              (*compiler).gemm,
	"Relu":              (*compiler).relu,
	"Clip":              (*compiler).clip,
	"Add":               (*compiler).add,
	"MaxPool":           (*compiler).maxPool,
	"GlobalAveragePool": (*compiler).globalAvgPool,
	"Flatten":           (*compiler).flatten,
}

// checkOutput checks that a node has one output of a new name.
func (c *compiler) checkOutput(n *Node) error {
	if len(n.Outputs) != 1 || n.Outputs[0] == "" {
		return nodeError(n, "%d outputs, want one", len(n.Outputs))
	}
	if _, dup := c.slots[n.Outputs[0]]; dup {
		return nodeError(n, "output %q is defined twice", n.Outputs[0])
	}
	if _, dup := c.consts[n.Outputs[0]]; dup {
		return nodeError(n, "output %q is also an initializer", n.Outputs[0])
	}
	return nil
}

func (c *compiler) unsupported(n *Node) error {
	op := n.OpType
	if n.Domain != "" && n.Domain != "ai.onnx" {
		op = n.Domain + "." + op
	}
	return fmt.Errorf("onnx: operator %s (node %q) is not supported; dghcore reads the QDQ subset it writes: %s",
		op, n.Name, strings.Join(supportedOps, ", "))
}

// runtimeInput returns the slot of node input k, which must be computed
// at run time and defined before the node.
func (c *compiler) runtimeInput(n *Node, k int) (int, error) {
	if k >= len(n.Inputs) || n.Inputs[k] == "" {
		return 0, nodeError(n, "input %d is missing", k)
	}
	s, ok := c.slots[n.Inputs[k]]
	if !ok {
		if _, isConst := c.consts[n.Inputs[k]]; isConst {
			return 0, nodeError(n, "input %d (%q) is a constant; dghcore runs this operator on computed values only", k, n.Inputs[k])
		}
		return 0, nodeError(n, "input %q is not defined before the node (nodes must be in topological order)", n.Inputs[k])
	}
	return s, nil
}

// constInput returns node input k as a constant; optional inputs may be
// absent (nil).
func (c *compiler) constInput(n *Node, k int, optional bool) (*constant, error) {
	if k >= len(n.Inputs) || n.Inputs[k] == "" {
		if optional {
			return nil, nil
		}
		return nil, nodeError(n, "input %d is missing", k)
	}
	v, ok := c.consts[n.Inputs[k]]
	if _, computed := c.slots[n.Inputs[k]]; computed {
		return nil, nodeError(n, "input %d (%q) is computed at run time; dghcore wants an initializer there", k, n.Inputs[k])
	}
	if !ok {
		return nil, nodeError(n, "input %q is not defined before the node (nodes must be in topological order)", n.Inputs[k])
	}
	return v, nil
}

// attrs checks a node's attributes against the names and types the
// operator takes and returns them by name.
func attrs(n *Node, allowed map[string]AttrType) (map[string]*Attribute, error) {
	out := map[string]*Attribute{}
	for i := range n.Attrs {
		a := &n.Attrs[i]
		t, ok := allowed[a.Name]
		if !ok {
			return nil, nodeError(n, "attribute %q is not supported", a.Name)
		}
		if a.Type != t {
			return nil, nodeError(n, "attribute %q has type %d, want %d", a.Name, a.Type, t)
		}
		out[a.Name] = a
	}
	return out, nil
}

// pair reads a two-value ints attribute with a default.
func pair(n *Node, as map[string]*Attribute, name string, def int, lo int64) ([2]int, error) {
	a, ok := as[name]
	if !ok {
		return [2]int{def, def}, nil
	}
	if len(a.Ints) != 2 || a.Ints[0] < lo || a.Ints[1] < lo || a.Ints[0] > maxValue || a.Ints[1] > maxValue {
		return [2]int{}, nodeError(n, "%s %v, want two values of at least %d", name, a.Ints, lo)
	}
	return [2]int{int(a.Ints[0]), int(a.Ints[1])}, nil
}

// pads reads symmetric 2-D pads [top, left, bottom, right].
func pads(n *Node, as map[string]*Attribute) ([2]int, error) {
	a, ok := as["pads"]
	if !ok {
		return [2]int{}, nil
	}
	p := a.Ints
	if len(p) != 4 || slices.Min(p) < 0 || slices.Max(p) > maxValue {
		return [2]int{}, nodeError(n, "pads %v, want four values of at least 0", p)
	}
	if p[0] != p[2] || p[1] != p[3] {
		return [2]int{}, nodeError(n, "pads %v are not symmetric, which dghcore's kernels need", p)
	}
	return [2]int{int(p[0]), int(p[1])}, nil
}

func notSetAutoPad(n *Node, as map[string]*Attribute) error {
	if a, ok := as["auto_pad"]; ok && a.S != "NOTSET" {
		return nodeError(n, "auto_pad %q is not supported, only explicit pads", a.S)
	}
	return nil
}

// emit appends an op computing the node's output from runtime slots.
func (c *compiler) emit(n *Node, output string, in []int, shape []int, run func(in []*autograd.Var) *autograd.Var) error {
	numel := 1
	for _, d := range shape {
		numel *= d
		if d < 1 || numel > maxValue {
			return nodeError(n, "output shape %v is empty or too large", shape)
		}
	}
	s := c.define(output, shape)
	c.net.ops = append(c.net.ops, op{node: n.Name, in: in, out: s, run: run})
	return nil
}

// computed checks a node's attributes and reads its inputs, count of
// them, all computed at run time.
func (c *compiler) computed(n *Node, allowed map[string]AttrType, count int) (map[string]*Attribute, []int, error) {
	as, err := attrs(n, allowed)
	if err != nil {
		return nil, nil, err
	}
	if len(n.Inputs) != count {
		return nil, nil, nodeError(n, "%d inputs, want %d", len(n.Inputs), count)
	}
	slots := make([]int, count)
	for k := range slots {
		if slots[k], err = c.runtimeInput(n, k); err != nil {
			return nil, nil, err
		}
	}
	return as, slots, nil
}

// image4D is the one-image shape of slot x, which must be C x H x W.
func (c *compiler) image4D(n *Node, x int) ([]int, error) {
	if xs := c.shapes[x]; len(xs) == 3 {
		return xs, nil
	}
	return nil, nodeError(n, "input %v per image, want C x H x W", c.shapes[x])
}

func (c *compiler) relu(n *Node) error {
	_, in, err := c.computed(n, nil, 1)
	if err != nil {
		return err
	}
	return c.emit(n, n.Outputs[0], in, c.shapes[in[0]], func(in []*autograd.Var) *autograd.Var { return autograd.ReLU(in[0]) })
}

var dequantizeAttrs = map[string]AttrType{"axis": AttrInt, "block_size": AttrInt}

// quantAttrs checks a QuantizeLinear's or DequantizeLinear's attributes
// and input count: no blocked quantization, at most three inputs.
func quantAttrs(n *Node, allowed map[string]AttrType) (map[string]*Attribute, error) {
	as, err := attrs(n, allowed)
	if err != nil {
		return nil, err
	}
	if a, ok := as["block_size"]; ok && a.I != 0 {
		return nil, nodeError(n, "blocked quantization (block_size %d) is not supported", a.I)
	}
	if len(n.Inputs) > 3 {
		return nil, nodeError(n, "%d inputs, want at most three", len(n.Inputs))
	}
	return as, nil
}

// dequantizeWeight folds a DequantizeLinear of an integer initializer
// into a float constant: (x - zero point)*scale, per tensor or along
// axis, in float32 as the runtime computes it.
func (c *compiler) dequantizeWeight(n *Node) error {
	if len(n.Inputs) > 0 {
		if _, ok := c.slots[n.Inputs[0]]; ok {
			return nodeError(n, "DequantizeLinear of a computed value that no QuantizeLinear feeds is not supported")
		}
	}
	as, err := quantAttrs(n, dequantizeAttrs)
	if err != nil {
		return err
	}
	x, err := c.constInput(n, 0, false)
	if err != nil {
		return err
	}
	scale, err := c.constInput(n, 1, false)
	if err != nil {
		return err
	}
	zp, err := c.constInput(n, 2, true)
	if err != nil {
		return err
	}
	if x.dt == Float || x.i == nil {
		return nodeError(n, "input is %v, want an integer type", x.dt)
	}
	if scale.dt != Float {
		return nodeError(n, "scale is %v, want FLOAT", scale.dt)
	}
	if zp != nil && (zp.dt != x.dt || !slices.Equal(zp.dims, scale.dims)) {
		return nodeError(n, "zero point %v %v does not match scale %v and input type %v", zp.dt, zp.dims, scale.dims, x.dt)
	}
	// per[k] is the scale index of element k: 0 per tensor, its index
	// along axis per axis.
	inner, count := 1, 1
	if !scale.scalar() {
		axis := int64(1)
		if a, ok := as["axis"]; ok {
			axis = a.I
		}
		r := int64(len(x.dims))
		if axis < 0 {
			axis += r
		}
		if len(scale.dims) != 1 || axis < 0 || axis >= r || scale.dims[0] != x.dims[axis] {
			return nodeError(n, "scale of shape %v along axis %d of an input of shape %v", scale.dims, axis, x.dims)
		}
		for _, d := range x.dims[axis+1:] {
			inner *= d
		}
		count = x.dims[axis]
	}
	out := make([]float32, len(x.i))
	for k, v := range x.i {
		j := (k / inner) % count
		z := int64(0)
		if zp != nil {
			z = zp.i[j]
		}
		out[k] = float32(v-z) * scale.f[j]
	}
	c.consts[n.Outputs[0]] = &constant{dt: Float, dims: x.dims, f: out}
	return nil
}

// quantize compiles a QuantizeLinear and the DequantizeLinear that must
// be its only reader, with the same scale and zero point, into one fake
// quantization: dghcore's kernel with the type's range as its levels.
func (c *compiler) quantize(i int) error {
	n := &c.nodes[i]
	as, err := quantAttrs(n, map[string]AttrType{"axis": AttrInt, "saturate": AttrInt, "block_size": AttrInt, "output_dtype": AttrInt})
	if err != nil {
		return err
	}
	x, err := c.runtimeInput(n, 0)
	if err != nil {
		return err
	}
	def := uint8T
	if a, ok := as["output_dtype"]; ok && a.I != 0 {
		if def, ok = intTypeOf(DataType(a.I)); !ok || def.dt == Int32 {
			return nodeError(n, "output_dtype %v is not a 4-, 8- or 16-bit integer type", DataType(a.I))
		}
	}
	scale, zp, t, err := c.quantParams(n, def)
	if err != nil {
		return err
	}
	if a, ok := as["output_dtype"]; ok && a.I != 0 && DataType(a.I) != t.dt {
		return nodeError(n, "output_dtype %v differs from the zero point's %v", DataType(a.I), t.dt)
	}
	users := c.uses[n.Outputs[0]]
	if len(users) != 1 || users[0] >= len(c.nodes) || c.nodes[users[0]].OpType != "DequantizeLinear" {
		return nodeError(n, "its output must feed exactly one DequantizeLinear (a lone QuantizeLinear is not supported)")
	}
	j := users[0]
	dq := &c.nodes[j]
	if len(dq.Inputs) < 1 || dq.Inputs[0] != n.Outputs[0] {
		return nodeError(dq, "reads QuantizeLinear %q other than as its input", n.Name)
	}
	if _, err := quantAttrs(dq, dequantizeAttrs); err != nil {
		return err
	}
	if err := c.checkOutput(dq); err != nil {
		return err
	}
	dScale, dZP, dt, err := c.quantParams(dq, t)
	if err != nil {
		return err
	}
	if dScale != scale || dZP != zp || dt != t {
		return nodeError(dq, "scale %v and zero point %d %v differ from its QuantizeLinear's %v and %d %v",
			dScale, dZP, dt.dt, scale, zp, t.dt)
	}
	c.fused[j] = true
	bits := 0
	for int64(1)<<bits < t.levels() {
		bits++
	}
	zpLevel := float32(zp - t.lo)
	d := autograd.Const(tensor.FromSlice([]float32{scale}, 1))
	return c.emit(dq, dq.Outputs[0], []int{x}, c.shapes[x], func(in []*autograd.Var) *autograd.Var {
		return autograd.FakeQuant(in[0], d, zpLevel, bits)
	})
}

// quantParams reads a per-tensor QuantizeLinear or DequantizeLinear's
// scale and zero point; the zero point's type is the quantized type,
// def when it is absent (the zero point is then 0).
func (c *compiler) quantParams(n *Node, def intType) (scale float32, zp int64, t intType, err error) {
	s, err := c.constInput(n, 1, false)
	if err != nil {
		return 0, 0, t, err
	}
	z, err := c.constInput(n, 2, true)
	if err != nil {
		return 0, 0, t, err
	}
	if s.dt != Float || !s.scalar() {
		return 0, 0, t, nodeError(n, "scale %v of shape %v; dghcore quantizes activations per tensor with a FLOAT scale", s.dt, s.dims)
	}
	scale = s.f[0]
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return 0, 0, t, nodeError(n, "scale %v, want a positive finite number", scale)
	}
	t = def
	if z != nil {
		var ok bool
		if t, ok = intTypeOf(z.dt); !ok || t.dt == Int32 || !z.scalar() {
			return 0, 0, t, nodeError(n, "zero point %v of shape %v, want one value of a 4-, 8- or 16-bit integer type", z.dt, z.dims)
		}
		zp = z.i[0]
	}
	return scale, zp, t, nil
}

func (c *compiler) conv(n *Node) error {
	as, err := attrs(n, map[string]AttrType{"auto_pad": AttrString, "dilations": AttrInts, "group": AttrInt,
		"kernel_shape": AttrInts, "pads": AttrInts, "strides": AttrInts})
	if err != nil {
		return err
	}
	x, w, b, err := c.layerInputs(n)
	if err != nil {
		return err
	}
	stride, pad, err := window(n, as)
	if err != nil {
		return err
	}
	dil, err := pair(n, as, "dilations", 1, 1)
	if err != nil {
		return err
	}
	groups := int64(1)
	if a, ok := as["group"]; ok {
		groups = a.I
	}
	xs := c.shapes[x]
	if w.dt != Float || len(w.dims) != 4 || len(xs) != 3 || groups < 1 || groups > maxValue {
		return nodeError(n, "weight %v %v, input %v and group %d, want a FLOAT 4-D weight on a C x H x W input", w.dt, w.dims, xs, groups)
	}
	if a, ok := as["kernel_shape"]; ok && !slices.Equal(a.Ints, []int64{int64(w.dims[2]), int64(w.dims[3])}) {
		return nodeError(n, "kernel_shape %v differs from the weight's %v", a.Ints, w.dims[2:])
	}
	if w.dims[1]*int(groups) != xs[0] {
		return nodeError(n, "weight %v with group %d does not fit a %d-channel input", w.dims, groups, xs[0])
	}
	p := kernels.ConvParams{N: 1, C: xs[0], H: xs[1], W: xs[2], K: w.dims[0], KH: w.dims[2], KW: w.dims[3],
		StrideH: stride[0], StrideW: stride[1], PadH: pad[0], PadW: pad[1], DilH: dil[0], DilW: dil[1], Groups: int(groups)}
	if err := p.Validate(); err != nil {
		return nodeError(n, "%v", err)
	}
	wv := autograd.Const(tensor.FromSlice(w.f, w.dims...))
	var bv *autograd.Var
	if b != nil {
		if b.dt != Float || len(b.dims) != 1 || b.dims[0] != w.dims[0] {
			return nodeError(n, "bias %v %v for %d output channels", b.dt, b.dims, w.dims[0])
		}
		bv = autograd.Const(tensor.FromSlice(b.f, b.dims...))
	}
	return c.emit(n, n.Outputs[0], []int{x}, []int{p.K, p.OutH(), p.OutW()}, func(in []*autograd.Var) *autograd.Var {
		return autograd.Conv2d(in[0], wv, bv, stride, pad, dil, int(groups))
	})
}

// layerInputs reads a Conv's or Gemm's inputs: the computed input, the
// weight and the optional bias, both constants.
func (c *compiler) layerInputs(n *Node) (x int, w, b *constant, err error) {
	if len(n.Inputs) < 2 || len(n.Inputs) > 3 {
		return 0, nil, nil, nodeError(n, "%d inputs, want two or three", len(n.Inputs))
	}
	if x, err = c.runtimeInput(n, 0); err != nil {
		return 0, nil, nil, err
	}
	if w, err = c.constInput(n, 1, false); err != nil {
		return 0, nil, nil, err
	}
	b, err = c.constInput(n, 2, true)
	return x, w, b, err
}

// window reads the strides and the pads of a Conv or MaxPool, which
// must not ask for automatic padding.
func window(n *Node, as map[string]*Attribute) (stride, pad [2]int, err error) {
	if err := notSetAutoPad(n, as); err != nil {
		return stride, pad, err
	}
	if stride, err = pair(n, as, "strides", 1, 1); err != nil {
		return stride, pad, err
	}
	pad, err = pads(n, as)
	return stride, pad, err
}

func (c *compiler) gemm(n *Node) error {
	as, err := attrs(n, map[string]AttrType{"alpha": AttrFloat, "beta": AttrFloat, "transA": AttrInt, "transB": AttrInt})
	if err != nil {
		return err
	}
	for _, k := range []string{"alpha", "beta"} {
		if a, ok := as[k]; ok && a.F != 1 {
			return nodeError(n, "%s %v is not supported, only 1", k, a.F)
		}
	}
	if a, ok := as["transA"]; ok && a.I != 0 {
		return nodeError(n, "transA %d is not supported", a.I)
	}
	transB := false
	if a, ok := as["transB"]; ok {
		transB = a.I != 0
	}
	x, w, b, err := c.layerInputs(n)
	if err != nil {
		return err
	}
	xs := c.shapes[x]
	if w.dt != Float || len(w.dims) != 2 || len(xs) != 1 {
		return nodeError(n, "weight %v %v on an input of %v per image, want a FLOAT matrix on a vector", w.dt, w.dims, xs)
	}
	out, in := w.dims[0], w.dims[1]
	wt := w.f
	if !transB { // stored [in, out]: dghcore's Linear wants [out, in]
		out, in = in, out
		wt = make([]float32, len(w.f))
		for r := range in {
			for k := range out {
				wt[k*in+r] = w.f[r*out+k]
			}
		}
	}
	if in != xs[0] {
		return nodeError(n, "weight %v does not fit an input of %d values", w.dims, xs[0])
	}
	wv := autograd.Const(tensor.FromSlice(wt, out, in))
	var bv *autograd.Var
	if b != nil {
		if b.dt != Float || len(b.f) != out || len(b.dims) > 2 || len(b.dims) == 2 && b.dims[0] != 1 {
			return nodeError(n, "bias %v %v for %d outputs", b.dt, b.dims, out)
		}
		bv = autograd.Const(tensor.FromSlice(b.f, out))
	}
	return c.emit(n, n.Outputs[0], []int{x}, []int{out}, func(in []*autograd.Var) *autograd.Var {
		return autograd.Linear(in[0], wv, bv)
	})
}

// clip compiles Clip: ReLU6 and ReLU where the bounds are theirs, a
// clamp otherwise.
func (c *compiler) clip(n *Node) error {
	if _, err := attrs(n, nil); err != nil {
		return err
	}
	if len(n.Inputs) < 1 || len(n.Inputs) > 3 {
		return nodeError(n, "%d inputs, want one to three", len(n.Inputs))
	}
	x, err := c.runtimeInput(n, 0)
	if err != nil {
		return err
	}
	lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
	for k, dst := range []*float32{&lo, &hi} {
		v, err := c.constInput(n, k+1, true)
		if err != nil {
			return err
		}
		if v == nil {
			continue
		}
		if v.dt != Float || !v.scalar() || math.IsNaN(float64(v.f[0])) {
			return nodeError(n, "bound %v of shape %v, want one FLOAT value", v.dt, v.dims)
		}
		*dst = v.f[0]
	}
	if !(lo <= hi) {
		return nodeError(n, "bounds %v > %v", lo, hi)
	}
	xs := c.shapes[x]
	switch {
	case lo == 0 && hi == 6:
		return c.emit(n, n.Outputs[0], []int{x}, xs, func(in []*autograd.Var) *autograd.Var { return autograd.ReLU6(in[0]) })
	case lo == 0 && math.IsInf(float64(hi), 1):
		return c.emit(n, n.Outputs[0], []int{x}, xs, func(in []*autograd.Var) *autograd.Var { return autograd.ReLU(in[0]) })
	}
	los, his := make([]float32, xs[0]), make([]float32, xs[0])
	for i := range los {
		los[i], his[i] = lo, hi
	}
	return c.emit(n, n.Outputs[0], []int{x}, xs, func(in []*autograd.Var) *autograd.Var { return autograd.ClampST(in[0], los, his) })
}

func (c *compiler) add(n *Node) error {
	_, in, err := c.computed(n, nil, 2)
	if err != nil {
		return err
	}
	if a, b := c.shapes[in[0]], c.shapes[in[1]]; !slices.Equal(a, b) {
		return nodeError(n, "shapes %v and %v differ (broadcasting is not supported)", a, b)
	}
	return c.emit(n, n.Outputs[0], in, c.shapes[in[0]], func(in []*autograd.Var) *autograd.Var {
		return autograd.Add(in[0], in[1])
	})
}

func (c *compiler) maxPool(n *Node) error {
	as, in, err := c.computed(n, map[string]AttrType{"auto_pad": AttrString, "ceil_mode": AttrInt, "dilations": AttrInts,
		"kernel_shape": AttrInts, "pads": AttrInts, "storage_order": AttrInt, "strides": AttrInts}, 1)
	if err != nil {
		return err
	}
	stride, pad, err := window(n, as)
	if err != nil {
		return err
	}
	for _, k := range []string{"ceil_mode", "storage_order"} {
		if a, ok := as[k]; ok && a.I != 0 {
			return nodeError(n, "%s %d is not supported", k, a.I)
		}
	}
	if _, ok := as["kernel_shape"]; !ok {
		return nodeError(n, "kernel_shape is missing")
	}
	kernel, err := pair(n, as, "kernel_shape", 1, 1)
	if err != nil {
		return err
	}
	if dil, err := pair(n, as, "dilations", 1, 1); err != nil || dil != [2]int{1, 1} {
		return nodeError(n, "dilations other than 1 are not supported")
	}
	xs, err := c.image4D(n, in[0])
	if err != nil {
		return err
	}
	p := kernels.PoolParams{N: 1, C: xs[0], H: xs[1], W: xs[2], KH: kernel[0], KW: kernel[1],
		StrideH: stride[0], StrideW: stride[1], PadH: pad[0], PadW: pad[1]}
	if err := p.Validate(); err != nil {
		return nodeError(n, "%v", err)
	}
	return c.emit(n, n.Outputs[0], in, []int{p.C, p.OutH(), p.OutW()}, func(in []*autograd.Var) *autograd.Var {
		return autograd.MaxPool2d(in[0], kernel, stride, pad)
	})
}

func (c *compiler) globalAvgPool(n *Node) error {
	_, in, err := c.computed(n, nil, 1)
	if err != nil {
		return err
	}
	xs, err := c.image4D(n, in[0])
	if err != nil {
		return err
	}
	return c.emit(n, n.Outputs[0], in, []int{xs[0], 1, 1}, func(in []*autograd.Var) *autograd.Var {
		s := in[0].Value.Shape
		return autograd.Reshape(autograd.GlobalAvgPool(in[0]), s[0], s[1], 1, 1)
	})
}

func (c *compiler) flatten(n *Node) error {
	as, in, err := c.computed(n, map[string]AttrType{"axis": AttrInt}, 1)
	if err != nil {
		return err
	}
	if a, ok := as["axis"]; ok && a.I != 1 {
		return nodeError(n, "axis %d is not supported, only 1", a.I)
	}
	return c.emit(n, n.Outputs[0], in, []int{tensor.Numel(c.shapes[in[0]])}, func(in []*autograd.Var) *autograd.Var {
		return autograd.Flatten(in[0])
	})
}

// Values decodes an initializer of the types Export writes: its FLOAT
// data, or its integer data.
func (t *Tensor) Values() (floats []float32, ints []int64, err error) {
	k, err := decodeTensor(t)
	if err != nil {
		return nil, nil, fmt.Errorf("onnx: initializer %q: %w", t.Name, err)
	}
	return k.f, k.i, nil
}

// decodeTensor decodes an initializer of the types Export writes. Sizes
// are checked against the data before anything is allocated.
func decodeTensor(t *Tensor) (*constant, error) {
	if t.External {
		return nil, errors.New("external data is not supported")
	}
	k := &constant{dt: t.DataType, dims: make([]int, len(t.Dims))}
	n := int64(1)
	for i, d := range t.Dims {
		if d < 0 || d > maxValue {
			return nil, fmt.Errorf("dimension %d", d)
		}
		n *= d
		if n > maxValue {
			return nil, fmt.Errorf("shape %v is too large", t.Dims)
		}
		k.dims[i] = int(d)
	}
	count := int(n)
	if t.DataType == Float {
		switch {
		case t.Raw != nil:
			if len(t.Raw) != 4*count {
				return nil, fmt.Errorf("%d bytes of data for %d FLOAT values", len(t.Raw), count)
			}
			k.f = make([]float32, count)
			for i := range k.f {
				k.f[i] = getFloat(t.Raw[4*i:])
			}
		case len(t.FloatData) == count:
			k.f = t.FloatData
		default:
			return nil, fmt.Errorf("%d values for shape %v", len(t.FloatData), t.Dims)
		}
		return k, nil
	}
	it, ok := intTypeOf(t.DataType)
	if !ok {
		return nil, fmt.Errorf("element type %v is not supported", t.DataType)
	}
	raw := t.Raw
	if raw == nil {
		// Typed storage: one int32 per value, or per byte of two
		// packed 4-bit values.
		want := count
		if it.dt == Uint4 || it.dt == Int4 {
			want = (count + 1) / 2
		}
		if len(t.Int32Data) != want {
			return nil, fmt.Errorf("%d values for shape %v", len(t.Int32Data), t.Dims)
		}
		vals := make([]int64, len(t.Int32Data))
		for i, v := range t.Int32Data {
			vals[i] = int64(v)
		}
		switch it.dt {
		case Uint4, Int4:
			raw = make([]byte, want)
			for i, v := range vals {
				if v < 0 || v > 255 {
					return nil, fmt.Errorf("packed 4-bit value %d", v)
				}
				raw[i] = byte(v)
			}
		default:
			for _, v := range vals {
				if v < it.lo || v > it.hi {
					return nil, fmt.Errorf("value %d outside %v", v, it.dt)
				}
			}
			k.i = vals
			return k, nil
		}
	}
	if k.i, ok = unpackInts(it, raw, count); !ok {
		return nil, fmt.Errorf("%d bytes of data for %d %v values", len(raw), count, it.dt)
	}
	return k, nil
}

func getFloat(b []byte) float32 {
	return math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}

func putFloat(b []byte, f float32) {
	u := math.Float32bits(f)
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
}
