// Package layers holds dghcore's neural-network modules (docs/DESIGN.md, "Packages and the flow of a run",
// layers/): Conv2d, BatchNorm2d, Linear, the activations, pooling, Dropout,
// Flatten and Sequential, with PyTorch's state_dict naming so a checkpoint
// loads by name, and forward hooks so the algorithms above can watch any
// module's input and output by the module's identity.
//
// Modules are plain structs with exported fields: the quantizer type-switches
// on them and rebuilds them. Inference (inputs and parameters that do not
// require a gradient) records no autograd tape.
package layers

import (
	"github.com/dghcore/dghcore/autograd"
	"github.com/dghcore/dghcore/tensor"
)

// Module is anything with a forward pass from one activation to another.
type Module interface {
	Forward(x *autograd.Var) *autograd.Var
}

// Hook observes one forward call of a module: its input and its output.
// Hooks must not modify either value.
type Hook func(m Module, in, out *autograd.Var)

// Hooks holds a module's forward hooks. Every concrete module embeds it,
// so AddHook is available on all of them; Apply runs the hooks.
type Hooks struct {
	hooks  []hookEntry
	nextID int
}

type hookEntry struct {
	id        int
	fn        Hook
	inputOnly bool // added by AddInputHook
}

// AddHook registers f to run after every Forward of the module, in
// registration order, when the module is called through Apply. The
// returned function removes the hook again (calling it twice is harmless).
func (h *Hooks) AddHook(f Hook) (remove func()) {
	return h.add(hookEntry{fn: f})
}

// AddInputHook registers f like AddHook for a hook that reads only the
// module's input. Such hooks let a module run fused with the one after it
// (ApplyBNAct), where the module's own output never exists.
func (h *Hooks) AddInputHook(f func(m Module, in *autograd.Var)) (remove func()) {
	return h.add(hookEntry{fn: func(m Module, in, _ *autograd.Var) { f(m, in) }, inputOnly: true})
}

func (h *Hooks) add(e hookEntry) (remove func()) {
	h.nextID++
	id := h.nextID
	e.id = id
	h.hooks = append(h.hooks, e)
	return func() {
		for i, e := range h.hooks {
			if e.id == id {
				h.hooks = append(h.hooks[:i:i], h.hooks[i+1:]...)
				return
			}
		}
	}
}

// hookList is promoted into every module embedding Hooks, including
// modules defined in other packages; Apply finds the hooks through it.
func (h *Hooks) hookList() []hookEntry { return h.hooks }

// Hookable is a module that accepts forward hooks (every module here does).
type Hookable interface {
	Module
	AddHook(f Hook) (remove func())
	AddInputHook(f func(m Module, in *autograd.Var)) (remove func())
}

type hooked interface{ hookList() []hookEntry }

// Apply runs m.Forward(x) and then m's hooks with the input and output.
// Containers call their children through Apply so that a hook on any
// module, however deep, sees every call.
func Apply(m Module, x *autograd.Var) *autograd.Var {
	out := m.Forward(x)
	if h, ok := m.(hooked); ok {
		if list := h.hookList(); len(list) > 0 {
			// A hook may remove itself; iterate over a snapshot.
			for _, e := range append([]hookEntry(nil), list...) {
				e.fn(m, x, out)
			}
		}
	}
	return out
}

// Named is a module under its PyTorch name (relative to its parent in
// Children, dotted from the root in NamedModules).
type Named struct {
	Name   string
	Module Module
}

// Container is a module with sub-modules. Children lists the direct
// children in definition order under PyTorch's attribute names, which
// makes the state_dict keys match PyTorch's.
type Container interface {
	Children() []Named
}

// NamedParam is a parameter slot of a module. Var points at the module's
// field so that loading and SetRequiresGrad can rebind it in place.
type NamedParam struct {
	Name string
	Var  **autograd.Var
}

// NamedTensor is a state entry that is not a parameter (a buffer such as a
// running mean), or any tensor under a dotted name.
type NamedTensor struct {
	Name   string
	Tensor *tensor.Tensor
}

// StateHolder is a module that owns parameters or buffers itself (not
// through children). OwnParams and OwnBuffers list them under PyTorch's
// local names ("weight", "running_mean", ...) in PyTorch's order; a nil
// optional parameter (a conv without bias) is left out.
type StateHolder interface {
	OwnParams() []NamedParam
	OwnBuffers() []NamedTensor
}

// NamedModules lists root and every module below it, depth first in
// definition order, with dotted names; root itself comes first under the
// empty name, as in PyTorch's named_modules.
func NamedModules(root Module) []Named {
	var out []Named
	var walk func(prefix string, m Module)
	walk = func(prefix string, m Module) {
		out = append(out, Named{Name: prefix, Module: m})
		c, ok := m.(Container)
		if !ok {
			return
		}
		for _, ch := range c.Children() {
			if ch.Module == nil {
				continue
			}
			walk(join(prefix, ch.Name), ch.Module)
		}
	}
	walk("", root)
	return out
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// NamedParameters lists every parameter below root with its dotted name,
// in state_dict order.
func NamedParameters(root Module) []NamedParam {
	var out []NamedParam
	for _, nm := range NamedModules(root) {
		if s, ok := nm.Module.(StateHolder); ok {
			for _, p := range s.OwnParams() {
				out = append(out, NamedParam{Name: join(nm.Name, p.Name), Var: p.Var})
			}
		}
	}
	return out
}

// Parameters lists every parameter Var below root in state_dict order.
func Parameters(root Module) []*autograd.Var {
	named := NamedParameters(root)
	out := make([]*autograd.Var, len(named))
	for i, p := range named {
		out[i] = *p.Var
	}
	return out
}

// StateDict lists root's parameters and buffers under PyTorch's keys and in
// PyTorch's order (per module: parameters, then buffers, then children).
// BatchNorm's num_batches_tracked counter is not kept (it plays no part in
// evaluation) and so is absent. The tensors are the modules' own, not copies.
func StateDict(root Module) []NamedTensor {
	var out []NamedTensor
	for _, nm := range NamedModules(root) {
		s, ok := nm.Module.(StateHolder)
		if !ok {
			continue
		}
		for _, p := range s.OwnParams() {
			out = append(out, NamedTensor{Name: join(nm.Name, p.Name), Tensor: (*p.Var).Value})
		}
		for _, b := range s.OwnBuffers() {
			out = append(out, NamedTensor{Name: join(nm.Name, b.Name), Tensor: b.Tensor})
		}
	}
	return out
}

// SetRequiresGrad marks every parameter below root as wanting (or not) a
// gradient. Each parameter is rebound to a fresh leaf Var over the same
// value tensor, so gradients accumulated so far are dropped.
func SetRequiresGrad(root Module, on bool) {
	for _, p := range NamedParameters(root) {
		*p.Var = autograd.NewVar((*p.Var).Value, on)
	}
}

// Find returns the module under the dotted name (as NamedModules names it).
func Find(root Module, name string) (Module, bool) {
	for _, nm := range NamedModules(root) {
		if nm.Name == name {
			return nm.Module, true
		}
	}
	return nil, false
}
