package layers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
)

// Digest is the SHA-256 of root's state dict, names, shapes and values in
// state_dict order, in hex. Two modules with the same digest compute the
// same function; a resumable state records it so that it is never resumed
// on other weights (docs/DESIGN.md, "Command line").
func Digest(root Module) string {
	h := sha256.New()
	buf := make([]byte, 0, 1<<16)
	flush := func() {
		h.Write(buf)
		buf = buf[:0]
	}
	for _, e := range StateDict(root) {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(e.Name)))
		buf = append(buf, e.Name...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(e.Tensor.Shape)))
		for _, d := range e.Tensor.Shape {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(d))
		}
		for _, v := range e.Tensor.Data {
			if len(buf)+4 > cap(buf) {
				flush()
			}
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	flush()
	return hex.EncodeToString(h.Sum(nil))
}
