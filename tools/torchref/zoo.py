#!/usr/bin/python3
"""Write PyTorch reference checkpoints and logits for package layers/zoo.

docs/DESIGN.md, "Models and checkpoints" (architectures, both checkpoint
serialisations) and "Testing and numerics" (full-model logits agree with
PyTorch within 1e-3 relative).

For every architecture the script builds the PyTorch model in the layout
its checkpoints use (torchvision's own definitions where they exist, the
BRECQ layouts written here from their published structure), fills it with
deterministic weights, sets non-trivial BatchNorm running statistics, and
writes to layers/zoo/testdata/:

    <case>.zip.pth.gz      torch.save, zip serialisation, gzip-compressed
    <case>.legacy.pth.gz   torch.save(_use_new_zipfile_serialization=False), gzipped
    <case>_x.npy.gz        the input batch
    <case>_logits.npy      PyTorch's logits for it (computed in float64)
    <case>_gx.npy.gz, <case>_dlogits.npy, <case>_dx.npy.gz   (resnet20 only)
                           one image, an upstream gradient and the input
                           gradient of sum(logits * upstream), the path DGH's
                           image gradients take; the image is redrawn until
                           every ReLU input is KINK_MARGIN away from 0

Keeping the fixtures small (the repository must stay lean): every weight is
k/8 * 2^e for a small integer k, so each float32 carries few significant
bits, and a tensor larger than PERIOD values repeats a PERIOD-long pattern
(PERIOD is prime, so rows of a weight matrix are shifted, not equal). Deflate
finds the repeats inside its 32 KB window, and resnet50's 100 MB of float32
compress to well under a megabyte. The running statistics come from a
training-mode pass over a separate calibration batch (so activations stay
normalised through the depth of the network), perturbed, and rounded to the
same grid; gamma and beta are drawn near 1 and 0.

The architectures added later (COMPACT_CASES: the rest of BRECQ's
release set and torchvision's ResNets and MobileNetV2 layout, up to
resnet152's 60 million and wide_resnet50_2's 69 million weights) are
written smaller still, as <case>.zip.pth.gz.gz and <case>.legacy.pth.gz.gz
with <case>_logits.npy for one shared input, compact_x.npy.gz (batch 2 at
64x64):
  - the period is 509 values for weights and 61 for vectors (BatchNorm
    parameters and statistics, biases), so a tensor's fresh part is small;
  - the running statistics come from one evaluation-mode pass over the
    calibration batch in which every BatchNorm takes, just before it runs,
    the mean and variance of its input averaged over the channels, times
    a periodic per-channel perturbation: each layer normalises what
    actually reaches it, through any depth, with little to store;
  - the file is gzip-compressed twice: the first pass turns each periodic
    tensor into a run of identical back-references, which the second pass
    compresses again (resnet152: 242 MB, 1.5 MB, 0.26 MB).
The tests decompress twice and load the real torch.save bytes.

Rerunning the script on the same machine and torch build reproduces every
file byte for byte except the legacy checkpoints, whose storage keys are
memory addresses (torch's legacy format); their tensors, and so the logits,
are the same. Another CPU may sum the calibration pass in another order and
move the running statistics, and with them the logits, in the last bits.

Checkpoint wrappers: mobilenet_v2 is saved as {'model': state_dict} like
BRECQ's release; resnet20_fmnist's legacy file as {'state_dict': ...} with a
'module.' prefix (a DataParallel save); everything else as a bare state_dict.

Usage: /usr/bin/python3 tools/torchref/zoo.py [--out layers/zoo/testdata] [--only CASE]
"""

import argparse
import gzip
import io
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.regnet import BlockParams

PERIOD = 4093
# COMPACT_CASES' periods of weights and of vectors.
WEIGHT_PERIOD, VECTOR_PERIOD = 509, 61

# The input-gradient fixtures need every ReLU input clear of the kink at 0:
# float32 rounding in Go may flip the sign of a pre-activation within about
# 1e-5 of zero and with it a whole gradient path. relu() records the
# pre-activations while relu_inputs is a list.
KINK_MARGIN = 2e-5
relu_inputs = None


def relu(x):
    if relu_inputs is not None:
        relu_inputs.append(x.detach())
    return F.relu(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idn = x if self.downsample is None else self.downsample(x)
        return relu(out + idn)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # torchvision v1.5 / BRECQ: the stride sits on the 3x3 conv.
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = relu(self.bn1(self.conv1(x)))
        out = relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        idn = x if self.downsample is None else self.downsample(x)
        return relu(out + idn)


class ResNet(nn.Module):
    """torchvision-style ResNet (imagenet=True) or the CIFAR-style resnet20."""

    def __init__(self, block, counts, widths, in_ch, classes, imagenet):
        super().__init__()
        stem = widths[0]
        if imagenet:
            self.conv1 = nn.Conv2d(in_ch, stem, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_ch, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if imagenet else None
        cin = stem
        self.nlayers = len(counts)
        for i, (n, w) in enumerate(zip(counts, widths)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, w, stride))
                cin = w * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(self.nlayers):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        self.use_res = stride == 1 and cin == cout
        if t == 1:
            self.conv = nn.Sequential(
                nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
                nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        else:
            self.conv = nn.Sequential(
                nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
                nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
                nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """BRECQ's MobileNetV2 layout (docs/DESIGN.md, "Models and checkpoints")."""

    def __init__(self, classes=1000):
        super().__init__()
        feats = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())]
        cin = 32
        for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean([2, 3]))


class BottleneckTransform(nn.Module):
    """pycls's f: 1x1, BN, ReLU, 3x3 grouped (stride), BN, ReLU, 1x1, BN
    (bottleneck ratio 1, so every width is the block's output width)."""

    def __init__(self, cin, cout, stride, group_width):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 1, bias=False)
        self.a_bn = nn.BatchNorm2d(cout)
        self.b = nn.Conv2d(cout, cout, 3, stride, 1, groups=cout // group_width, bias=False)
        self.b_bn = nn.BatchNorm2d(cout)
        self.c = nn.Conv2d(cout, cout, 1, bias=False)
        self.c_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.a_bn(self.a(x)))
        x = F.relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBottleneckBlock(nn.Module):
    """pycls's residual block: relu(shortcut(x) + f(x)); the projection
    (proj, bn) is registered before f, as pycls does, when the shape
    changes."""

    def __init__(self, cin, cout, stride, group_width):
        super().__init__()
        self.proj_block = cin != cout or stride != 1
        if self.proj_block:
            self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.bn = nn.BatchNorm2d(cout)
        self.f = BottleneckTransform(cin, cout, stride, group_width)

    def forward(self, x):
        s = self.bn(self.proj(x)) if self.proj_block else x
        return F.relu(s + self.f(x))


class Stem(nn.Module):
    def __init__(self, cout):
        super().__init__()
        self.conv = nn.Conv2d(3, cout, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Head(nn.Module):
    def __init__(self, cin, classes):
        super().__init__()
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class RegNetX(nn.Module):
    """BRECQ's pycls-style RegNetX: stem, stages s1..s4 of blocks b1..bN,
    head.fc. The stage widths, depths and group widths come from the
    RegNet paper's design-space parameters (depth, w_0, w_a, w_m, group
    width) through torchvision's BlockParams, an implementation of the same
    quantisation as pycls's; stem 32, every stage strides by 2."""

    def __init__(self, depth, w_0, w_a, w_m, group_width, classes=1000):
        super().__init__()
        p = BlockParams.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width)
        assert all(b == 1.0 for b in p.bottleneck_multipliers)
        self.stem = Stem(32)
        cin = 32
        for i, (w, d, g) in enumerate(zip(p.widths, p.depths, p.group_widths)):
            stage = nn.Module()
            for j in range(d):
                stage.add_module("b%d" % (j + 1), ResBottleneckBlock(cin, w, 2 if j == 0 else 1, g))
                cin = w
            self.add_module("s%d" % (i + 1), stage)
        self.nstages = len(p.widths)
        self.head = Head(cin, classes)

    def forward(self, x):
        x = self.stem(x)
        for i in range(self.nstages):
            for blk in getattr(self, "s%d" % (i + 1)).children():
                x = blk(x)
        return self.head(x)


def grid(gen, n, scale, lo=-24, hi=24):
    """n values k/8 * scale, k ~ round(8 N(0,1)) clipped to [lo, hi]; scale a power of two."""
    k = torch.clamp(torch.round(torch.randn(n, generator=gen) * 8), lo, hi)
    return k / 8 * scale


def pow2(x):
    return 2.0 ** round(np.log2(x))


def tiled(gen, shape, scale, period=PERIOD):
    n = int(np.prod(shape))
    block = grid(gen, min(n, period), scale)
    reps = -(-n // block.numel())
    return block.repeat(reps)[:n].reshape(shape)


def on_grid(t):
    """Round to float16-representable values (few significant bits)."""
    return t.half().float()


def fill(model, gen, calib):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(tiled(gen, m.weight.shape, pow2((2.0 / fan_in) ** 0.5) / 2))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(tiled(gen, m.weight.shape, pow2(m.weight.shape[1] ** -0.5)))
                m.bias.copy_(grid(gen, m.bias.numel(), 0.125))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + grid(gen, m.weight.numel(), 0.125))
                m.bias.copy_(grid(gen, m.bias.numel(), 0.125))
                m.momentum = 1.0
        # Running statistics from a training-mode pass over the calibration batch.
        model.train()
        model(calib)
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.running_mean.numel()
                m.running_mean.copy_(on_grid(m.running_mean + grid(gen, c, 0.03125)))
                factor = torch.exp(grid(gen, c, 0.0625))
                m.running_var.copy_(on_grid(m.running_var * factor + 1e-3))
                m.num_batches_tracked.fill_(1000)
                m.momentum = 0.1


def fill_compact(model, gen, calib):
    """fill for COMPACT_CASES: shorter periods, and running statistics
    from one evaluation-mode pass (see the module docstring)."""
    w_tiled = lambda shape, scale: tiled(gen, shape, scale, WEIGHT_PERIOD)
    v_tiled = lambda shape, scale: tiled(gen, shape, scale, VECTOR_PERIOD)

    def calibrate(bn, inputs):
        x = inputs[0]
        c = bn.running_mean.numel()
        mean = x.mean(dim=(0, 2, 3)).mean()
        var = x.var(dim=(0, 2, 3)).mean()
        bn.running_mean.copy_(on_grid(mean + v_tiled((c,), 0.03125)))
        bn.running_var.copy_(on_grid(var * torch.exp(v_tiled((c,), 0.0625)) + 1e-3))
        bn.num_batches_tracked.fill_(1000)

    with torch.no_grad():
        hooks = []
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(w_tiled(m.weight.shape, pow2((2.0 / fan_in) ** 0.5) / 2))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(w_tiled(m.weight.shape, pow2(m.weight.shape[1] ** -0.5)))
                m.bias.copy_(v_tiled(m.bias.shape, 0.125))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + v_tiled(m.weight.shape, 0.125))
                m.bias.copy_(v_tiled(m.bias.shape, 0.125))
                hooks.append(m.register_forward_pre_hook(calibrate))
        model.eval()
        model(calib)
        for h in hooks:
            h.remove()


def image(gen, n, c, s):
    """An input batch on a coarse grid (k/16), so it compresses."""
    return torch.clamp(torch.round(torch.randn(n, c, s, s, generator=gen) * 16), -40, 40) / 16


def kink_distance(model, x):
    """The smallest |pre-activation| of any ReLU for input x."""
    global relu_inputs
    relu_inputs = []
    with torch.no_grad():
        model(x.double())
    d = min(t.abs().min().item() for t in relu_inputs)
    relu_inputs = None
    return d


def write_input_gradient(out, name, model, gen, c, s):
    """One image whose ReLU inputs all clear the kink, an upstream gradient
    for the logits, and PyTorch's input gradient of sum(logits * upstream)."""
    for _ in range(200):
        x = image(gen, 1, c, s)
        if kink_distance(model, x) >= KINK_MARGIN:
            break
    else:
        raise RuntimeError(f"{name}: no input clear of the ReLU kinks by {KINK_MARGIN}")
    xd = x.double().requires_grad_(True)
    logits = model(xd)
    dlogits = torch.randn(logits.shape, generator=gen).float()
    (logits * dlogits.double()).sum().backward()
    gz(os.path.join(out, f"{name}_gx.npy.gz"), npy_bytes(x.numpy()))
    np.save(os.path.join(out, f"{name}_dlogits.npy"), dlogits.numpy())
    gz(os.path.join(out, f"{name}_dx.npy.gz"), npy_bytes(xd.grad.float().numpy()))


def gz(path, data):
    with open(path, "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def torch_bytes(obj, legacy):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


CASES = [
    # name, builder, batch, in_ch, size
    ("resnet18", lambda: ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], 3, 1000, True), 1, 3, 224),
    ("resnet50", lambda: ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], 3, 1000, True), 1, 3, 128),
    ("mobilenet_v2", lambda: MobileNetV2(1000), 1, 3, 224),
    ("resnet20_fmnist", lambda: ResNet(BasicBlock, [3, 3, 3], [16, 32, 64], 1, 10, False), 4, 1, 28),
    ("resnet20_cifar", lambda: ResNet(BasicBlock, [3, 3, 3], [16, 32, 64], 3, 100, False), 2, 3, 32),
]


# name, builder, wrapper of the state dict (None: bare)
COMPACT_CASES = [
    ("resnet34", lambda: torchvision.models.resnet34(), None),
    ("resnet101", lambda: torchvision.models.resnet101(), None),
    ("resnet152", lambda: torchvision.models.resnet152(), None),
    ("wide_resnet50_2", lambda: torchvision.models.wide_resnet50_2(), None),
    ("resnext50_32x4d", lambda: torchvision.models.resnext50_32x4d(), None),
    ("mobilenet_v2_torchvision", lambda: torchvision.models.mobilenet_v2(), None),
    # BRECQ's MNASNet is torchvision's at scale 2.0; torchvision publishes 1.0.
    ("mnasnet", lambda: torchvision.models.MNASNet(2.0), None),
    ("mnasnet1_0", lambda: torchvision.models.mnasnet1_0(), None),
    # The RegNet paper's (depth, w_0, w_a, w_m, group width).
    ("regnetx_600m", lambda: RegNetX(16, 48, 36.97, 2.24, 24), None),
    ("regnetx_3200m", lambda: RegNetX(25, 88, 26.31, 2.25, 48), "state_dict"),
]


def compact_input():
    return image(torch.Generator().manual_seed(1999), 2, 3, 64)


def write_compact(out, i, name, build, wrapper):
    gen = torch.Generator().manual_seed(2000 + i)
    model = build()
    fill_compact(model, gen, image(gen, 2, 3, 64))
    model.double()
    x = compact_input()
    with torch.no_grad():
        logits = model(x.double()).float()
    model.float()
    sd = model.state_dict()
    obj = {wrapper: sd} if wrapper else sd
    for legacy in (False, True):
        kind = "legacy" if legacy else "zip"
        once = gzip.compress(torch_bytes(obj, legacy), compresslevel=9, mtime=0)
        gz(os.path.join(out, f"{name}.{kind}.pth.gz.gz"), once)
    np.save(os.path.join(out, f"{name}_logits.npy"), logits.numpy())
    print(f"{name}: logits {tuple(logits.shape)} max |z| {logits.abs().max():.4g} std {logits.std():.4g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="layers/zoo/testdata")
    ap.add_argument("--only", default="", help="write just these cases (comma-separated)")
    args = ap.parse_args()
    only = set(args.only.split(",")) - {""}
    os.makedirs(args.out, exist_ok=True)
    gz(os.path.join(args.out, "compact_x.npy.gz"), npy_bytes(compact_input().numpy()))
    for i, (name, build, wrapper) in enumerate(COMPACT_CASES):
        if not only or name in only:
            write_compact(args.out, i, name, build, wrapper)
    for i, (name, build, n, c, s) in enumerate(CASES):
        if only and name not in only:
            continue
        gen = torch.Generator().manual_seed(1000 + i)
        model = build()
        fill(model, gen, image(gen, 2, c, s))
        model.double()
        x = image(gen, n, c, s)
        with torch.no_grad():
            logits = model(x.double()).float()
        if name.startswith("resnet20"):
            write_input_gradient(args.out, name, model, gen, c, s)
        model.float()
        sd = model.state_dict()
        for legacy in (False, True):
            obj = sd
            if name == "mobilenet_v2":
                obj = {"model": sd}
            elif name == "resnet20_fmnist" and legacy:
                obj = {"state_dict": {"module." + k: v for k, v in sd.items()}}
            kind = "legacy" if legacy else "zip"
            gz(os.path.join(args.out, f"{name}.{kind}.pth.gz"), torch_bytes(obj, legacy))
        gz(os.path.join(args.out, f"{name}_x.npy.gz"), npy_bytes(x.numpy()))
        np.save(os.path.join(args.out, f"{name}_logits.npy"), logits.numpy())
        print(f"{name}: logits {tuple(logits.shape)} max |z| {logits.abs().max():.4g} "
              f"std {logits.std():.4g}")


if __name__ == "__main__":
    main()
