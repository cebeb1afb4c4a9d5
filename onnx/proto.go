package onnx

// The ONNX messages dghcore writes and reads, encoded with protowire. Field
// numbers are those of onnx.proto3 in the ONNX IR specification; fields
// outside this subset are skipped when reading (docs/DESIGN.md, "ONNX
// export").

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is TensorProto.DataType.
type DataType int32

// The element types dghcore writes.
const (
	Float  DataType = 1
	Uint8  DataType = 2
	Int8   DataType = 3
	Uint16 DataType = 4
	Int16  DataType = 5
	Int32  DataType = 6
	Int64  DataType = 7
	Uint4  DataType = 21
	Int4   DataType = 22
)

var dataTypeNames = map[DataType]string{
	Float: "FLOAT", Uint8: "UINT8", Int8: "INT8", Uint16: "UINT16", Int16: "INT16",
	Int32: "INT32", Int64: "INT64", Uint4: "UINT4", Int4: "INT4",
}

// String is the type's name in onnx.proto3.
func (t DataType) String() string {
	if s, ok := dataTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// Model is ModelProto.
type Model struct {
	IRVersion       int64
	Opsets          []Opset
	ProducerName    string
	ProducerVersion string
	DocString       string
	Graph           Graph
	Metadata        []Entry // metadata_props
}

// Opset is OperatorSetIdProto; the default domain is "".
type Opset struct {
	Domain  string
	Version int64
}

// Entry is StringStringEntryProto.
type Entry struct{ Key, Value string }

// Graph is GraphProto.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	// Sparse counts sparse initializers, which dghcore does not read.
	Sparse int
}

// Node is NodeProto.
type Node struct {
	Name, OpType, Domain string
	Inputs, Outputs      []string
	Attrs                []Attribute
}

// AttrType is AttributeProto.AttributeType.
type AttrType int32

// The attribute types dghcore's operators take.
const (
	AttrFloat  AttrType = 1
	AttrInt    AttrType = 2
	AttrString AttrType = 3
	AttrFloats AttrType = 6
	AttrInts   AttrType = 7
)

// Attribute is AttributeProto for the scalar and list types; a tensor or
// graph attribute is read with its Type only.
type Attribute struct {
	Name   string
	Type   AttrType
	F      float32
	I      int64
	S      string
	Floats []float32
	Ints   []int64
}

// Tensor is TensorProto. Written tensors carry Raw; read ones may carry
// the typed fields instead.
type Tensor struct {
	Name      string
	Dims      []int64
	DataType  DataType
	Raw       []byte
	FloatData []float32
	Int32Data []int32
	Int64Data []int64
	// External is set when the data lives in another file.
	External bool
}

// ValueInfo is ValueInfoProto for a tensor type; Shape is nil when the
// type gives none.
type ValueInfo struct {
	Name     string
	ElemType DataType
	Shape    []Dim
}

// Dim is one TensorShapeProto.Dimension: a size, or a symbolic name.
type Dim struct {
	Value int64
	Param string
}

// Marshal encodes m as an ONNX file. The opset imports go last: a file
// cut short anywhere then lacks them (or ends inside a field), so
// Compile refuses every truncated file.
func (m *Model) Marshal() []byte {
	var b []byte
	b = appendVarint(b, 1, uint64(m.IRVersion))
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 6, m.DocString)
	b = appendMessage(b, 7, m.Graph.marshal())
	for _, e := range m.Metadata {
		b = appendMessage(b, 14, e.marshal())
	}
	for _, o := range m.Opsets {
		var ob []byte
		ob = appendString(ob, 1, o.Domain)
		ob = appendVarint(ob, 2, uint64(o.Version))
		b = appendMessage(b, 8, ob)
	}
	return b
}

func (e Entry) marshal() []byte {
	var b []byte
	b = appendString(b, 1, e.Key)
	return appendString(b, 2, e.Value)
}

func (g *Graph) marshal() []byte {
	var b []byte
	for i := range g.Nodes {
		b = appendMessage(b, 1, g.Nodes[i].marshal())
	}
	b = appendString(b, 2, g.Name)
	for i := range g.Initializers {
		b = appendMessage(b, 5, g.Initializers[i].marshal())
	}
	for _, v := range g.Inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for _, a := range n.Attrs {
		b = appendMessage(b, 5, a.marshal())
	}
	return appendString(b, 7, n.Domain)
}

func (a *Attribute) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case AttrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, a.S)
	case AttrFloats:
		var p []byte
		for _, f := range a.Floats {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = appendMessage(b, 7, p)
	case AttrInts:
		b = appendMessage(b, 8, packVarints(a.Ints))
	}
	return appendVarint(b, 20, uint64(a.Type))
}

func (t *Tensor) marshal() []byte {
	var b []byte
	if len(t.Dims) > 0 {
		b = appendMessage(b, 1, packVarints(t.Dims))
	}
	b = appendVarint(b, 2, uint64(t.DataType))
	b = appendString(b, 8, t.Name)
	if len(t.Raw) > 0 {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, t.Raw)
	}
	if t.External {
		b = appendVarint(b, 14, 1) // data_location EXTERNAL
	}
	return b
}

func (v ValueInfo) marshal() []byte {
	var shape []byte
	for _, d := range v.Shape {
		var db []byte
		if d.Param != "" {
			db = appendString(db, 2, d.Param)
		} else {
			db = protowire.AppendTag(db, 1, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d.Value))
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, db)
	}
	var tensor []byte
	tensor = appendVarint(tensor, 1, uint64(v.ElemType))
	if v.Shape != nil {
		tensor = protowire.AppendTag(tensor, 2, protowire.BytesType)
		tensor = protowire.AppendBytes(tensor, shape)
	}
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tensor)
	var b []byte
	b = appendString(b, 1, v.Name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, typ)
}

// appendVarint appends a varint field, leaving out proto3's default 0.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendString appends a string field, leaving out the empty string.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMessage appends an encoded message (or packed list) as field num.
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func packVarints(vs []int64) []byte {
	var p []byte
	for _, v := range vs {
		p = protowire.AppendVarint(p, uint64(v))
	}
	return p
}

// errTruncated reports a message that ends inside a field.
var errTruncated = errors.New("truncated or not protobuf")

// field is one decoded field: its number and wire type, and its value:
// the varint or fixed value in n, or the contents of a length-delimited
// field in b.
type field struct {
	num protowire.Number
	typ protowire.Type
	n   uint64
	b   []byte
}

// fields calls fn for every field of the encoded message b in order.
func fields(b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errTruncated, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.n, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.n = uint64(v)
		case protowire.Fixed64Type:
			f.n, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errTruncated, num, protowire.ParseError(n))
		}
		if err := fn(f); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// want checks a field's wire type.
func (f field) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("field %d has wire type %d, want %d", f.num, f.typ, t)
	}
	return nil
}

func (f field) str() (string, error) {
	if err := f.want(protowire.BytesType); err != nil {
		return "", err
	}
	return string(f.b), nil
}

func (f field) varint() (uint64, error) {
	return f.n, f.want(protowire.VarintType)
}

// int64 reads an int64 or int32 (or enum) field.
func (f field) int64() (int64, error) {
	v, err := f.varint()
	return int64(v), err
}

// varints appends a repeated varint field, packed or not, to dst.
func (f field) varints(dst []int64) ([]int64, error) {
	switch f.typ {
	case protowire.VarintType:
		return append(dst, int64(f.n)), nil
	case protowire.BytesType:
		for b := f.b; len(b) > 0; {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: packed field %d: %v", errTruncated, f.num, protowire.ParseError(n))
			}
			dst = append(dst, int64(v))
			b = b[n:]
		}
		return dst, nil
	}
	return nil, fmt.Errorf("field %d has wire type %d, want a varint list", f.num, f.typ)
}

// floats appends a repeated float field, packed or not, to dst.
func (f field) floats(dst []float32) ([]float32, error) {
	switch f.typ {
	case protowire.Fixed32Type:
		return append(dst, math.Float32frombits(uint32(f.n))), nil
	case protowire.BytesType:
		for b := f.b; len(b) > 0; {
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 {
				return nil, fmt.Errorf("%w: packed field %d: %v", errTruncated, f.num, protowire.ParseError(n))
			}
			dst = append(dst, math.Float32frombits(v))
			b = b[n:]
		}
		return dst, nil
	}
	return nil, fmt.Errorf("field %d has wire type %d, want a float list", f.num, f.typ)
}

// Unmarshal decodes an ONNX file. It checks the encoding only; Compile
// checks the graph.
func Unmarshal(data []byte) (*Model, error) {
	m := &Model{}
	err := fields(data, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.IRVersion, err = f.int64()
		case 2:
			m.ProducerName, err = f.str()
		case 3:
			m.ProducerVersion, err = f.str()
		case 6:
			m.DocString, err = f.str()
		case 7:
			if err = f.want(protowire.BytesType); err == nil {
				err = m.Graph.unmarshal(f.b)
			}
		case 8:
			var o Opset
			if err = f.want(protowire.BytesType); err == nil {
				err = fields(f.b, func(f field) error {
					var err error
					switch f.num {
					case 1:
						o.Domain, err = f.str()
					case 2:
						o.Version, err = f.int64()
					}
					return err
				})
			}
			m.Opsets = append(m.Opsets, o)
		case 14:
			var e Entry
			if err = f.want(protowire.BytesType); err == nil {
				e, err = unmarshalEntry(f.b)
			}
			m.Metadata = append(m.Metadata, e)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func unmarshalEntry(b []byte) (Entry, error) {
	var e Entry
	err := fields(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			e.Key, err = f.str()
		case 2:
			e.Value, err = f.str()
		}
		return err
	})
	return e, err
}

func (g *Graph) unmarshal(b []byte) error {
	return fields(b, func(f field) error {
		if f.num == 2 {
			var err error
			g.Name, err = f.str()
			return err
		}
		if f.num != 1 && f.num != 5 && f.num != 11 && f.num != 12 && f.num != 15 {
			return nil
		}
		if err := f.want(protowire.BytesType); err != nil {
			return err
		}
		switch f.num {
		case 1:
			var n Node
			if err := n.unmarshal(f.b); err != nil {
				return err
			}
			g.Nodes = append(g.Nodes, n)
		case 5:
			var t Tensor
			if err := t.unmarshal(f.b); err != nil {
				return err
			}
			g.Initializers = append(g.Initializers, t)
		case 11, 12:
			var v ValueInfo
			if err := v.unmarshal(f.b); err != nil {
				return err
			}
			if f.num == 11 {
				g.Inputs = append(g.Inputs, v)
			} else {
				g.Outputs = append(g.Outputs, v)
			}
		case 15:
			g.Sparse++
		}
		return nil
	})
}

func (n *Node) unmarshal(b []byte) error {
	return fields(b, func(f field) error {
		var err error
		var s string
		switch f.num {
		case 1:
			s, err = f.str()
			n.Inputs = append(n.Inputs, s)
		case 2:
			s, err = f.str()
			n.Outputs = append(n.Outputs, s)
		case 3:
			n.Name, err = f.str()
		case 4:
			n.OpType, err = f.str()
		case 5:
			var a Attribute
			if err = f.want(protowire.BytesType); err == nil {
				err = a.unmarshal(f.b)
			}
			n.Attrs = append(n.Attrs, a)
		case 7:
			n.Domain, err = f.str()
		}
		return err
	})
}

func (a *Attribute) unmarshal(b []byte) error {
	return fields(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			a.Name, err = f.str()
		case 2:
			err = f.want(protowire.Fixed32Type)
			a.F = math.Float32frombits(uint32(f.n))
		case 3:
			a.I, err = f.int64()
		case 4:
			a.S, err = f.str()
		case 7:
			a.Floats, err = f.floats(a.Floats)
		case 8:
			a.Ints, err = f.varints(a.Ints)
		case 20:
			var v int64
			v, err = f.int64()
			a.Type = AttrType(v)
		}
		return err
	})
}

func (t *Tensor) unmarshal(b []byte) error {
	return fields(b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			t.Dims, err = f.varints(t.Dims)
		case 2:
			var v int64
			v, err = f.int64()
			t.DataType = DataType(v)
		case 4:
			t.FloatData, err = f.floats(t.FloatData)
		case 5:
			var vs []int64
			vs, err = f.varints(nil)
			for _, v := range vs {
				t.Int32Data = append(t.Int32Data, int32(v))
			}
		case 7:
			t.Int64Data, err = f.varints(t.Int64Data)
		case 8:
			t.Name, err = f.str()
		case 9:
			err = f.want(protowire.BytesType)
			t.Raw = f.b
		case 13:
			t.External = true
		case 14:
			var v int64
			v, err = f.int64()
			t.External = t.External || v == 1
		}
		return err
	})
}

func (v *ValueInfo) unmarshal(b []byte) error {
	return fields(b, func(f field) error {
		switch f.num {
		case 1:
			var err error
			v.Name, err = f.str()
			return err
		case 2: // TypeProto
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			return fields(f.b, func(f field) error {
				if f.num != 1 { // not a tensor type: ElemType stays 0
					return nil
				}
				if err := f.want(protowire.BytesType); err != nil {
					return err
				}
				return v.unmarshalTensorType(f.b)
			})
		}
		return nil
	})
}

func (v *ValueInfo) unmarshalTensorType(b []byte) error {
	return fields(b, func(f field) error {
		switch f.num {
		case 1:
			t, err := f.int64()
			v.ElemType = DataType(t)
			return err
		case 2: // TensorShapeProto
			if err := f.want(protowire.BytesType); err != nil {
				return err
			}
			v.Shape = []Dim{}
			return fields(f.b, func(f field) error {
				if f.num != 1 {
					return nil
				}
				if err := f.want(protowire.BytesType); err != nil {
					return err
				}
				var d Dim
				err := fields(f.b, func(f field) error {
					var err error
					switch f.num {
					case 1:
						d.Value, err = f.int64()
					case 2:
						d.Param, err = f.str()
					}
					return err
				})
				v.Shape = append(v.Shape, d)
				return err
			})
		}
		return nil
	})
}
