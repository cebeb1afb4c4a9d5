"""PyTorch reference values for the autograd ops (autograd/oracle_test.go).

For every case it writes, under autograd/testdata/<case>/, the inputs, the
upstream gradient dy (random), the output y and the gradient of
sum(y * dy) with respect to every differentiable input (d<name>.npy), all
float32 .npy files. Run from the repository root:

    /usr/bin/python3 tools/torchref/ops.py
"""
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join("autograd", "testdata")
torch.manual_seed(0)


def randn(*shape):
    return torch.randn(tuple(shape), dtype=torch.float32)


def save(case, name, t):
    path = os.path.join(OUT, case)
    os.makedirs(path, exist_ok=True)
    np.save(os.path.join(path, name + ".npy"), t.detach().numpy().astype(np.float32))


def run(case, fn, inputs, grads=None):
    """inputs: ordered dict name -> tensor; grads: names that get a gradient
    (default all)."""
    if grads is None:
        grads = list(inputs)
    leaves = {}
    for name, t in inputs.items():
        leaves[name] = t.clone().requires_grad_(name in grads)
        save(case, name, t)
    y = fn(**leaves)
    dy = randn(*y.shape)
    (y * dy).sum().backward()
    save(case, "y", y)
    save(case, "dy", dy)
    for name in grads:
        save(case, "d" + name, leaves[name].grad)


def round_ste(x):
    # BRECQ's straight-through rounding.
    return (x.round() - x).detach() + x


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)

    # Convolutions: a spread of the shapes the model zoo uses.
    convs = [
        # name, N, C, H, W, K, kernel, stride, padding, dilation, groups, bias
        ("conv_3x3", 1, 3, 6, 6, 4, 3, 1, 1, 1, 1, True),
        ("conv_3x3_s2_nonsquare_b5", 5, 3, 9, 7, 4, 3, 2, 1, 1, 1, False),
        ("conv_depthwise", 2, 8, 6, 6, 8, 3, 1, 1, 1, 8, True),
        ("conv_depthwise_s2", 5, 6, 7, 9, 6, 3, 2, 1, 1, 6, False),
        ("conv_groups2", 1, 4, 5, 5, 6, 3, 1, 0, 1, 2, True),
        ("conv_1x1", 5, 8, 4, 3, 6, 1, 1, 0, 1, 1, False),
        ("conv_1x1_s2", 2, 4, 7, 7, 8, 1, 2, 0, 1, 1, False),
        ("conv_7x7_s2_stem", 1, 3, 20, 18, 8, 7, 2, 3, 1, 1, False),
        ("conv_dilation2", 2, 3, 8, 9, 4, 3, 1, 2, 2, 1, True),
        ("conv_5x5_p2_s2", 1, 2, 9, 9, 3, 5, 2, 2, 1, 1, True),
    ]
    for name, n, c, h, w, k, ks, s, p, d, g, bias in convs:
        inputs = {"x": randn(n, c, h, w), "w": randn(k, c // g, ks, ks) * (1.0 / (c // g * ks * ks)) ** 0.5}
        if bias:
            inputs["b"] = randn(k)
        run(name, lambda x, w, b=None: F.conv2d(x, w, b, s, p, d, g), inputs)

    run("linear", lambda x, w, b: F.linear(x, w, b), {"x": randn(5, 7), "w": randn(3, 7), "b": randn(3)})
    run("linear_nobias_b1", lambda x, w: F.linear(x, w), {"x": randn(1, 6), "w": randn(4, 6)})

    rm, rv = randn(6), torch.rand(6) + 0.5
    run("batchnorm", lambda x, rm, rv, gamma, beta: F.batch_norm(x, rm, rv, gamma, beta, False, 0.0, 1e-5),
        {"x": randn(5, 6, 3, 4), "rm": rm, "rv": rv, "gamma": randn(6), "beta": randn(6)},
        grads=["x", "gamma", "beta"])

    x = randn(2, 3, 4, 5)
    run("relu", lambda x: F.relu(x), {"x": x})
    run("relu6", lambda x: F.relu6(x), {"x": randn(2, 3, 4, 5) * 4})
    run("add", lambda a, b: a + b, {"a": randn(2, 3, 4), "b": randn(2, 3, 4)})
    run("sub", lambda a, b: a - b, {"a": randn(2, 3, 4), "b": randn(2, 3, 4)})
    run("mul", lambda a, b: a * b, {"a": randn(2, 3, 4), "b": randn(2, 3, 4)})
    run("scale", lambda x: x * 0.37, {"x": randn(3, 5)})
    run("add_scalar", lambda x: x + 1.25, {"x": randn(3, 5)})
    run("max_scalar", lambda x: torch.clamp(x, min=0.2), {"x": randn(4, 5)})
    run("sqrt", lambda x: torch.sqrt(x), {"x": torch.rand(4, 5) + 0.1})
    run("pow", lambda x: torch.pow(x, 2.4), {"x": torch.rand(4, 5) + 0.1})
    run("sum", lambda x: x.sum(), {"x": randn(3, 4, 5)})
    run("sum_squares", lambda x: (x * x).sum(), {"x": randn(3, 4, 5)})
    run("mean_0_2_3", lambda x: x.mean(dim=(0, 2, 3)), {"x": randn(5, 3, 4, 4)})
    run("mean_2_3", lambda x: x.mean(dim=(2, 3)), {"x": randn(2, 3, 4, 5)})
    run("mean_square_0_2_3", lambda x: (x * x).mean(dim=(0, 2, 3)), {"x": randn(5, 3, 4, 4)})
    run("std_2_3_unbiased", lambda x: torch.std(x, dim=(2, 3), unbiased=True), {"x": randn(2, 3, 4, 5)})
    run("std_1_biased", lambda x: torch.std(x, dim=1, unbiased=False), {"x": randn(4, 6)})
    run("max_1", lambda x: torch.max(x, dim=1).values, {"x": randn(5, 10)})
    run("min_1", lambda x: torch.min(x, dim=1).values, {"x": randn(5, 10)})
    run("max_0_inner", lambda x: torch.max(x, dim=0).values, {"x": randn(4, 3, 2)})
    run("lp_loss_2.4", lambda pred, target: (pred - target).abs().pow(2.4).sum(1).mean(),
        {"pred": randn(5, 4, 3, 3), "target": randn(5, 4, 3, 3)}, grads=["pred"])
    run("lp_loss_2_linear", lambda pred, target: (pred - target).abs().pow(2).sum(1).mean(),
        {"pred": randn(5, 10), "target": randn(5, 10)})
    run("global_avg_pool", lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1), {"x": randn(5, 4, 3, 5)})
    run("maxpool_3x3_s2_p1", lambda x: F.max_pool2d(x, 3, 2, 1), {"x": randn(2, 3, 9, 8)})
    run("maxpool_2x2", lambda x: F.max_pool2d(x, 2, 2, 0), {"x": randn(1, 2, 6, 6)})
    run("flatten", lambda x: x.flatten(1), {"x": randn(3, 2, 2, 3)})
    run("flip_w", lambda x: torch.flip(x, [3]), {"x": randn(2, 3, 4, 5)})
    run("crop", lambda x: x[:, :, 2:6, 1:4], {"x": randn(2, 3, 7, 6)})
    run("pad", lambda x: F.pad(x, (2, 1, 1, 3)), {"x": randn(2, 3, 4, 3)})  # left, right, top, bottom

    lo = torch.tensor([-1.0, -0.5, 0.0]).view(1, 3, 1, 1)
    hi = torch.tensor([1.0, 0.5, 2.0]).view(1, 3, 1, 1)
    run("clamp_st", lambda x: x + (torch.max(torch.min(x, hi), lo) - x).detach(), {"x": randn(2, 3, 4, 4)})

    # Fake quantization as BRECQ's UniformAffineQuantizer, learnable delta.
    def fake_quant(x, delta, zp=3.0, levels=16):
        q = torch.clamp(round_ste(x / delta) + zp, 0, levels - 1)
        return (q - zp) * delta
    run("fake_quant", fake_quant, {"x": randn(4, 3, 5) * 1.5, "delta": torch.tensor([0.25])})

    dpc, zpc = torch.tensor([0.1, 0.2, 0.05]), torch.tensor([2.0, 5.0, 0.0])
    run("fake_quant_per_channel",
        lambda x: (torch.clamp(round_ste(x / dpc.view(3, 1, 1, 1)) + zpc.view(3, 1, 1, 1), 0, 15)
                   - zpc.view(3, 1, 1, 1)) * dpc.view(3, 1, 1, 1),
        {"x": randn(3, 2, 3, 3) * 0.5})

    # AdaRound soft rounding (3 bits) with alpha's own regulariser.
    w = randn(4, 2, 3, 3) * 0.3
    ad, az = torch.tensor([0.1, 0.15, 0.08, 0.2]).view(4, 1, 1, 1), torch.tensor([3.0, 4.0, 2.0, 3.0]).view(4, 1, 1, 1)

    def h(alpha):
        return torch.clamp(torch.sigmoid(alpha) * 1.2 - 0.1, 0, 1)

    def ada_round(alpha, w):
        return (torch.clamp(torch.floor(w / ad) + h(alpha) + az, 0, 7) - az) * ad
    run("ada_round", ada_round, {"alpha": randn(4, 2, 3, 3) * 2, "w": w}, grads=["alpha"])
    run("ada_round_regularizer", lambda alpha: 0.01 * (1 - (h(alpha) - 0.5).abs().mul(2).pow(4.0)).sum(),
        {"alpha": randn(3, 5) * 2})
    save("ada_round", "delta", ad.flatten())
    save("ada_round", "zp", az.flatten())
    save("fake_quant_per_channel", "delta", dpc)
    save("fake_quant_per_channel", "zp", zpc)


if __name__ == "__main__":
    main()
