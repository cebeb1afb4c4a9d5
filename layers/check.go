package layers

import (
	"fmt"
	"math"
)

// CheckValues refuses weights no network should hold: a NaN or infinite
// value in any parameter or buffer, or a BatchNorm running variance at or
// below -eps, whose normalisation divides by the square root of a
// non-positive number. Such a network computes NaN logits, which an
// accuracy count must never see (docs/DESIGN.md, "Command line"). The
// error names the tensor and the first bad entry.
func CheckValues(root Module) error {
	for _, e := range StateDict(root) {
		for i, v := range e.Tensor.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s holds %v at index %d of %d", e.Name, v, i, len(e.Tensor.Data))
			}
		}
	}
	for _, nm := range NamedModules(root) {
		bn, ok := nm.Module.(*BatchNorm2d)
		if !ok {
			continue
		}
		for c, v := range bn.RunningVar.Data {
			if !(v+bn.Eps > 0) {
				return fmt.Errorf("%s: running variance %v at channel %d, want more than -eps (-%g)", join(nm.Name, "running_var"), v, c, bn.Eps)
			}
		}
	}
	return nil
}
