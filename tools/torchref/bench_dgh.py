#!/usr/bin/env python3
"""Times one DGH batch step in PyTorch, the counterpart of
`go test -bench DGHStep ./dgh/` (docs/DESIGN.md, "DGH" and "Testing and numerics").

One step, as in package dgh: random flip, Gaussian smoothing, random crop,
straight-through clip; forward with hooks on every BatchNorm2d; BN loss
over all layers plus the output loss; backward to the images; RAdam step;
plateau scheduler step; and the no-gradient forward on the finalised
images that refreshes the batch's statistics.

Random weights; batch 32; resnet18 and mobilenet_v2 at 224 + 32 padding,
resnet20 at 32 + 4 padding, and resnet20_fmnist (one channel) at 28 + 4,
the default run's shapes.

    /usr/bin/python3 tools/torchref/bench_dgh.py --threads 2 --steps 3
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
import dgh  # noqa: E402
from dgh import augment, finalize, grown_sqrt, Recorder, batch_stats, targets  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


class ResNet20(nn.Module):
    def __init__(self, classes=10, in_ch=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
# name: (model, image size, padding, output-loss factor, (mean, std))
MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(), 224, 32, 3e-7, IMAGENET),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(), 224, 32, 3e-5, IMAGENET),
    "resnet20": (lambda: ResNet20(), 32, 4, 3e-7, IMAGENET),
    # the default run's shapes: one channel, 28 + 4 padding
    "resnet20_fmnist": (lambda: ResNet20(in_ch=1), 28, 4, 3e-7, ([0.2860], [0.3530])),
}


def randomise_bn(net, gen):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def bench(name, batch, steps, gen):
    make, s, p, out_factor, (dgh.MEAN, dgh.STD) = MODELS[name]
    net = make().eval()
    randomise_bn(net, gen)
    for q in net.parameters():
        q.requires_grad_(False)
    rec = Recorder(net)
    tg = targets(rec)
    x = torch.randn(batch, len(dgh.MEAN), s + p, s + p, generator=gen).requires_grad_(True)
    opt = torch.optim.RAdam([x], lr=16.0, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=20,
                                                       threshold=1e-4, min_lr=1e-4)
    with torch.no_grad():
        net(finalize(x, 3, 1.25, s))
        stats = batch_stats(finalize(x, 3, 1.25, s), rec)
    w = 1.0 / len(tg)

    def step():
        nonlocal stats
        flip = bool(torch.rand(1, generator=gen) < 0.5)
        top = int(torch.randint(0, p + 1, (1,), generator=gen))
        left = int(torch.randint(0, p + 1, (1,), generator=gen))
        opt.zero_grad()
        inp = augment(x, flip, 3, 1.25, top, left, s)
        logits = net(inp)
        live = batch_stats(inp, rec)
        bn_m, bn_s = 0.0, 0.0
        for l, (mu_t, sd_t) in enumerate(tg):
            m, ms = live[l]
            sd = grown_sqrt(ms - m * m)
            bn_m = bn_m + w * ((mu_t - m) ** 2).sum() / mu_t.numel()
            bn_s = bn_s + w * ((sd_t - sd) ** 2).sum() / mu_t.numel()
        a = rec.inputs[rec.bns[-1]]
        mu_t, sd_t = tg[-1]
        cm = torch.clamp(((a.mean(dim=(2, 3)) - mu_t) ** 2).mean(dim=1) - 0.5, min=0)
        cs = torch.clamp(((a.std(dim=(2, 3)) - sd_t) ** 2).mean(dim=1) - 0.5, min=0)
        out = (-(logits.max(dim=1).values - logits.min(dim=1).values) + cm + cs).mean()
        total = bn_m + 10.0 * bn_s + out_factor * out
        total.backward()
        opt.step()
        sched.step(total.item())
        with torch.no_grad():
            f = finalize(x, 3, 1.25, s)
            net(f)
            stats = batch_stats(f, rec)

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    print(f"BenchmarkDGHStep/{name}  torch {torch.__version__} threads {torch.get_num_threads()}: "
          f"{dt * 1e3:.1f} ms/step  {batch / dt:.1f} images/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("models", nargs="*", default=list(MODELS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(1)
    for name in a.models:
        bench(name, a.batch, a.steps, gen)


if __name__ == "__main__":
    main()
