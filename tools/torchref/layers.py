#!/usr/bin/python3
"""Write PyTorch reference outputs and gradients for package layers.

docs/DESIGN.md, "Testing and numerics": module outputs and gradients agree with PyTorch. For every
case below the script builds the torch module, draws an input and an upstream
gradient dy, and records, in layers/testdata/<case>/:

    case.json            the module's configuration (the Go test builds from it)
    x.npy, dy.npy        input and upstream gradient (loss = sum(y * dy))
    y.npy, dx.npy        PyTorch's output and input gradient
    p_<name>.npy         each parameter / buffer, by its state_dict name
    g_<name>.npy         each parameter's gradient

Inputs and parameters are drawn in float32; the reference is computed in
float64 from those exact float32 values, so the only rounding the Go test sees
is its own. nested/ also holds keys.json, torch's state_dict key order for a
small nested Sequential.

Usage: /usr/bin/python3 tools/torchref/layers.py [--out layers/testdata]
"""

import argparse
import json
import os
import shutil

import numpy as np
import torch
import torch.nn as nn


def rand(gen, *shape, scale=1.0):
    return (torch.randn(*shape, generator=gen) * scale).float()


def conv_case(gen, name, n, c, h, w, k, kernel, stride, padding, dilation, groups, bias):
    m = nn.Conv2d(c, k, kernel, stride, padding, dilation, groups, bias)
    fan_in = c // groups * kernel[0] * kernel[1]
    with torch.no_grad():
        m.weight.copy_(rand(gen, *m.weight.shape, scale=fan_in**-0.5))
        if bias:
            m.bias.copy_(rand(gen, k, scale=0.5))
    cfg = dict(kind="conv2d", kernel=list(kernel), stride=list(stride), padding=list(padding),
               dilation=list(dilation), groups=groups, bias=bias, **{"in": c, "out": k})
    return name, cfg, m, rand(gen, n, c, h, w)


def bn_case(gen, name, n, c, h, w, eps):
    m = nn.BatchNorm2d(c, eps=eps)
    with torch.no_grad():
        m.weight.copy_(1 + rand(gen, c, scale=0.5))
        m.bias.copy_(rand(gen, c, scale=0.5))
        m.running_mean.copy_(rand(gen, c, scale=0.7))
        m.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.05)
    m.eval()
    cfg = dict(kind="batchnorm2d", channels=c, eps=eps)
    return name, cfg, m, 0.5 + rand(gen, n, c, h, w, scale=1.3)


def linear_case(gen, name, n, fin, fout, bias):
    m = nn.Linear(fin, fout, bias)
    with torch.no_grad():
        m.weight.copy_(rand(gen, fout, fin, scale=fin**-0.5))
        if bias:
            m.bias.copy_(rand(gen, fout, scale=0.5))
    cfg = dict(kind="linear", bias=bias, **{"in": fin, "out": fout})
    return name, cfg, m, rand(gen, n, fin)


def cases(gen):
    yield conv_case(gen, "conv3x3_s1_bias", 2, 3, 8, 8, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True)
    yield conv_case(gen, "conv3x3_s2_odd", 2, 4, 9, 9, 6, (3, 3), (2, 2), (1, 1), (1, 1), 1, False)
    yield conv_case(gen, "conv_depthwise_s1", 2, 6, 7, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1), 6, False)
    yield conv_case(gen, "conv_depthwise_s2", 1, 8, 10, 10, 8, (3, 3), (2, 2), (1, 1), (1, 1), 8, True)
    yield conv_case(gen, "conv_grouped_dilated", 2, 4, 9, 8, 6, (3, 3), (1, 1), (2, 2), (2, 2), 2, True)
    yield conv_case(gen, "conv1x1", 2, 8, 5, 5, 5, (1, 1), (1, 1), (0, 0), (1, 1), 1, False)
    yield conv_case(gen, "conv1x1_s2", 1, 6, 7, 7, 4, (1, 1), (2, 2), (0, 0), (1, 1), 1, True)
    yield conv_case(gen, "conv7x7_s2_stem", 1, 3, 16, 16, 4, (7, 7), (2, 2), (3, 3), (1, 1), 1, False)
    yield conv_case(gen, "conv_rect", 2, 3, 7, 6, 4, (3, 2), (2, 1), (1, 0), (1, 1), 1, True)
    yield bn_case(gen, "bn", 2, 5, 6, 6, 1e-5)
    yield bn_case(gen, "bn_eps", 3, 4, 3, 5, 1e-3)
    yield linear_case(gen, "linear", 3, 7, 5, True)
    yield linear_case(gen, "linear_nobias", 4, 16, 3, False)
    # Activations: inputs kept away from the kinks at 0 and 6, where the
    # sub-gradient is a convention rather than a fact.
    x = rand(gen, 2, 3, 5, 5, scale=4)
    x = torch.where((x.abs() < 1e-2) | ((x - 6).abs() < 1e-2), x + 0.1, x)
    yield "relu", dict(kind="relu"), nn.ReLU(), x
    x = rand(gen, 2, 3, 5, 5, scale=5) + 2
    x = torch.where((x.abs() < 1e-2) | ((x - 6).abs() < 1e-2), x + 0.1, x)
    yield "relu6", dict(kind="relu6"), nn.ReLU6(), x
    yield "maxpool3_s2_p1", dict(kind="maxpool2d", kernel=[3, 3], stride=[2, 2], padding=[1, 1]), \
        nn.MaxPool2d(3, 2, 1), rand(gen, 2, 3, 9, 9)
    yield "maxpool2_s2", dict(kind="maxpool2d", kernel=[2, 2], stride=[2, 2], padding=[0, 0]), \
        nn.MaxPool2d(2, 2, 0), rand(gen, 1, 4, 8, 6)
    yield "avgpool", dict(kind="adaptiveavgpool2d"), nn.AdaptiveAvgPool2d(1), rand(gen, 2, 3, 5, 7)
    yield "flatten", dict(kind="flatten"), nn.Flatten(), rand(gen, 2, 3, 4, 4)
    yield "dropout", dict(kind="dropout", p=0.2), nn.Dropout(0.2).eval(), rand(gen, 3, 6)


def nested(gen):
    """A small nested Sequential whose state_dict names the Go side must match."""
    m = nn.Sequential(
        nn.Conv2d(3, 4, 3, 1, 1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU6(),
        nn.Sequential(nn.Conv2d(4, 4, 3, 2, 1, groups=4, bias=True), nn.BatchNorm2d(4), nn.ReLU()),
        nn.MaxPool2d(2, 2, 0),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(4, 3),
    )
    with torch.no_grad():
        for k, v in m.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            if k.endswith("running_var"):
                v.copy_(torch.rand(v.shape, generator=gen) + 0.5)
            elif k.endswith("weight") and v.dim() == 1:
                v.copy_(1 + rand(gen, *v.shape, scale=0.3))
            else:
                v.copy_(rand(gen, *v.shape, scale=0.5))
    m.eval()
    return m, rand(gen, 2, 3, 8, 8)


def save(path, t):
    np.save(path, t.detach().to(torch.float32).numpy())


def write_case(out, name, cfg, m, x):
    d = os.path.join(out, name)
    os.makedirs(d)
    m = m.double()
    m.eval()
    xd = x.double().requires_grad_(True)
    y = m(xd)
    dy = torch.randn(y.shape, generator=GEN).float()
    (y * dy.double()).sum().backward()
    save(os.path.join(d, "x.npy"), x)
    save(os.path.join(d, "dy.npy"), dy)
    save(os.path.join(d, "y.npy"), y)
    save(os.path.join(d, "dx.npy"), xd.grad)
    params = dict(m.named_parameters())
    for k, v in m.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        save(os.path.join(d, f"p_{k}.npy"), v)
        if k in params:
            save(os.path.join(d, f"g_{k}.npy"), params[k].grad)
    cfg = dict(cfg, params=[k for k in params])
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return m


GEN = torch.Generator().manual_seed(20261129)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="layers/testdata")
    args = ap.parse_args()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    for name, cfg, m, x in cases(GEN):
        write_case(args.out, name, cfg, m, x)
    m, x = nested(GEN)
    m = write_case(args.out, "nested", dict(kind="nested"), m, x)
    with open(os.path.join(args.out, "nested", "keys.json"), "w") as f:
        json.dump(list(m.state_dict().keys()), f, indent=1)


if __name__ == "__main__":
    main()
