#!/usr/bin/python3
"""Write PyTorch reference checkpoints and logits for package layers/zoo.

docs/DESIGN.md, "Models and checkpoints" (architectures, both checkpoint serialisations) and "Testing and numerics"
(full-model logits agree with PyTorch within 1e-3 relative).

For every architecture the script builds the PyTorch model with BRECQ's
state_dict layout, fills it with deterministic weights, sets non-trivial
BatchNorm running statistics, and writes to layers/zoo/testdata/:

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

Rerunning the script reproduces every file byte for byte except the legacy
checkpoints, whose storage keys are memory addresses (torch's legacy format);
their tensors, and so the logits, are the same.

Checkpoint wrappers: mobilenet_v2 is saved as {'model': state_dict} like
BRECQ's release; resnet20_fmnist's legacy file as {'state_dict': ...} with a
'module.' prefix (a DataParallel save); everything else as a bare state_dict.

Usage: /usr/bin/python3 tools/torchref/zoo.py [--out layers/zoo/testdata]
"""

import argparse
import gzip
import io
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PERIOD = 4093

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


def grid(gen, n, scale, lo=-24, hi=24):
    """n values k/8 * scale, k ~ round(8 N(0,1)) clipped to [lo, hi]; scale a power of two."""
    k = torch.clamp(torch.round(torch.randn(n, generator=gen) * 8), lo, hi)
    return k / 8 * scale


def pow2(x):
    return 2.0 ** round(np.log2(x))


def tiled(gen, shape, scale):
    n = int(np.prod(shape))
    block = grid(gen, min(n, PERIOD), scale)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="layers/zoo/testdata")
    ap.add_argument("--only", default="", help="write just this case")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for i, (name, build, n, c, s) in enumerate(CASES):
        if args.only and args.only != name:
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
