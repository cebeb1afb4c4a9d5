"""PyTorch reference values for the fake-quantization kernels and the
"mse" scale search (kernels/quant_oracle_test.go, docs/DESIGN.md, "BRECQ").

Writes float32 .npy files kernels/testdata/<case>_<name>.npy. The scale
search follows BRECQ's UniformAffineQuantizer: 80 shrinking candidates,
q computed in float32 by torch, the first candidate with the least mean
|x - q|^2.4 kept. Run from the repository root:

    /usr/bin/python3 tools/torchref/kernels.py
"""
import os

import numpy as np
import torch

OUT = os.path.join("kernels", "testdata")
torch.manual_seed(0)


def save(case, name, t):
    os.makedirs(OUT, exist_ok=True)
    a = torch.as_tensor(t, dtype=torch.float32).detach().numpy().astype(np.float32)
    np.save(os.path.join(OUT, f"{case}_{name}.npy"), a)


def round_ste(x):
    return (x.round() - x).detach() + x


def quantize(x, delta, zp, levels):
    return (torch.clamp(round_ste(x / delta) + zp, 0, levels - 1) - zp) * delta


def fake_quant():
    """Forward, straight-through dx and the LSQ gradient of delta."""
    levels, zp = 16, 6.0
    x = torch.randn(257) * 0.8
    # exact half-way points in units of delta (0.125 is a power of two)
    x[::5] = (torch.randint(-10, 14, (52,)).float() + 0.5) * 0.125
    delta = torch.tensor(0.125, requires_grad=True)
    xv = x.clone().requires_grad_(True)
    q = quantize(xv, delta, zp, levels)
    dy = torch.randn(257)
    (q * dy).sum().backward()
    for name, t in [("x", x), ("dy", dy), ("q", q), ("dx", xv.grad),
                    ("delta", delta), ("ddelta", delta.grad), ("zp", zp), ("levels", levels)]:
        save("fake_quant", name, torch.as_tensor(t).reshape(-1))


def lp_score(x, delta, zp, levels, p=2.4):
    return (x - quantize(x, delta, zp, levels)).abs().pow(p).mean()


def mse_search(x, bits):
    levels = 2 ** bits
    x_max, x_min = x.max(), x.min()
    best, best_delta, best_zp = 1e10, None, None
    for i in range(80):
        new_max = x_max * (1.0 - (i * 0.01))
        new_min = x_min * (1.0 - (i * 0.01))
        delta = (new_max - new_min) / (levels - 1)
        zp = (-new_min / delta).round()
        score = lp_score(x, delta, zp, levels)
        if score < best:
            best, best_delta, best_zp = score, delta, zp
    return best_delta, best_zp, best


def scale_search():
    # Per tensor: activations after a ReLU with a long tail.
    act = torch.relu(torch.randn(600)) ** 1.5
    d, z, s = mse_search(act, 4)
    save("search_tensor", "x", act)
    save("search_tensor", "delta", d.reshape(1))
    save("search_tensor", "zp", z.reshape(1))
    save("search_tensor", "score", s.reshape(1))
    # Per channel: conv weights [8, 3*3*3], one row all positive.
    w = torch.randn(8, 27) * 0.2
    w[3] = w[3].abs() + 0.05
    ds, zs = [], []
    for r in range(8):
        d, z, _ = mse_search(w[r], 4)
        ds.append(d)
        zs.append(z)
    save("search_channel", "x", w.reshape(-1))
    save("search_channel", "delta", torch.stack(ds))
    save("search_channel", "zp", torch.stack(zs))


if __name__ == "__main__":
    fake_quant()
    scale_search()
