"""Write the .npy fixtures of tensor/npy_test.go with NumPy itself.

Run from the repository root: /usr/bin/python3 tools/torchref/npy.py
"""
import os

import numpy as np

out = os.path.join("tensor", "testdata")
os.makedirs(out, exist_ok=True)


def save(name, a, version=None):
    path = os.path.join(out, name)
    with open(path, "wb") as f:
        if version is None:
            np.save(f, a)
        else:
            np.lib.format.write_array(f, a, version=version)


f32 = (np.arange(24, dtype=np.float32) - 7.5) / 3
save("f32_2x3x4.npy", f32.reshape(2, 3, 4))
save("f32_v2.npy", f32.reshape(4, 6), version=(2, 0))
save("f64_3x2.npy", np.array([[1.0, -2.5], [1e-3, 3.141592653589793], [1e30, -0.0]]))
save("i64_labels.npy", np.array([0, 9, 3, 7, 1], dtype=np.int64))
save("u8_2x2.npy", np.array([[0, 255], [17, 128]], dtype=np.uint8))
save("f32_scalar.npy", np.array(2.5, dtype=np.float32))
save("f32_empty.npy", np.zeros((0, 3), dtype=np.float32))
save("f32_big_endian.npy", np.arange(4, dtype=">f4"))
save("f32_fortran.npy", np.asfortranarray(f32.reshape(4, 6)))
save("i32_unsupported.npy", np.arange(3, dtype=np.int32))
