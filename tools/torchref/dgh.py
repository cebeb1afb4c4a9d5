#!/usr/bin/env python3
"""PyTorch oracle for package dgh (docs/DESIGN.md, "DGH").

Writes small float32 .npy fixtures into dgh/testdata/:

  smooth_k{size}.npy          normalised Gaussian kernels
  aug_*.npy                   flip -> smoothing -> crop -> straight-through clip
                              on a fixed input, and the gradient of sum(out*w)
  step_{case}_*.npy           one DGH iteration on two batches of a small BN
                              CNN with fixed weights, a fixed augmentation and
                              fixed images: loss parts and image gradient for
                              batch 0, images after its RAdam step, and loss
                              parts and gradient for batch 1 (which sees batch
                              0's recomputed statistics)

Run from the repository root: /usr/bin/python3 tools/torchref/dgh.py
"""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "dgh", "testdata")
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def save(name, t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.save(os.path.join(OUT, name + ".npy"), a.astype(np.float32))


def gaussian_kernel(size, sigma):
    # offsets -size//2 .. size//2 around the centre tap, normalised to sum 1
    r = torch.arange(size, dtype=torch.float32) - (size // 2)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    k = torch.exp(-(xx * xx + yy * yy) / (2.0 * sigma * sigma))
    return k / k.sum()


def smooth(x, size, sigma):
    c = x.shape[1]
    k = gaussian_kernel(size, sigma).reshape(1, 1, size, size).repeat(c, 1, 1, 1)
    return F.conv2d(x, k, padding=size // 2, groups=c)


def valid_range():
    m = torch.tensor(MEAN, dtype=torch.float32)
    s = torch.tensor(STD, dtype=torch.float32)
    lo = (torch.tensor(0.0) / 255.0 - m) / s
    hi = (torch.tensor(255.0) / 255.0 - m) / s
    return lo, hi


def clip(x, straight_through):
    lo, hi = valid_range()
    y = torch.maximum(torch.minimum(x, hi.view(1, -1, 1, 1)), lo.view(1, -1, 1, 1))
    if straight_through:
        return x + (y - x).detach()
    return y


def augment(x, flip, size, sigma, top, left, s):
    if flip:
        x = torch.flip(x, dims=[3])
    x = smooth(x, size, sigma)
    x = x[:, :, top:top + s, left:left + s]
    return clip(x, True)


def finalize(x, size, sigma, s):
    x = smooth(x, size, sigma)
    h = x.shape[2]
    off = int(round((h - s) / 2.0))
    x = x[:, :, off:off + s, off:off + s]
    return clip(x, False)


def grown_sqrt(v, eps=1e-6):
    out = torch.sqrt(v + eps)
    while not torch.all(torch.isfinite(out)):
        eps *= 10
        out = torch.sqrt(v + eps)
    return out


def small_net(gen):
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for i, mean_scale in ((1, 0.3), (4, 1.5)):
            bn = net[i]
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=gen) * mean_scale)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=gen) * 1.5 + 0.25)
    return net.eval()


class Recorder:
    """Records every BatchNorm2d input, keyed by the module itself."""

    def __init__(self, net):
        self.bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        self.inputs = {}
        for m in self.bns:
            m.register_forward_hook(self.hook)

    def hook(self, m, inp, out):
        self.inputs[m] = inp[0]


def batch_stats(x, rec):
    """Per layer (image first) per-channel mean and mean of squares."""
    layers = [x] + [rec.inputs[m] for m in rec.bns]
    return [(a.mean(dim=(0, 2, 3)), (a * a).mean(dim=(0, 2, 3))) for a in layers]


def targets(rec):
    t = [(torch.zeros(3), grown_sqrt(torch.ones(3)))]
    for m in rec.bns:
        t.append((m.running_mean.clone(), grown_sqrt(m.running_var.clone())))
    return t


def losses(stats, b, live, tg, rec, logits, std_factor, out_factor):
    nb = len(stats)
    w = 1.0 / len(tg)
    bn_mean = 0.0
    bn_std = 0.0
    for l, (mu_t, sd_t) in enumerate(tg):
        m = sum(live[l][0] if j == b else stats[j][l][0] for j in range(nb)) / nb
        ms = sum(live[l][1] if j == b else stats[j][l][1] for j in range(nb)) / nb
        sd = grown_sqrt(ms - m * m)
        c = mu_t.numel()
        bn_mean = bn_mean + w * ((mu_t - m) ** 2).sum() / c
        bn_std = bn_std + w * ((sd_t - sd) ** 2).sum() / c
    bn = bn_mean + std_factor * bn_std
    a = rec.inputs[rec.bns[-1]]
    mu_t, sd_t = tg[-1]
    c = mu_t.numel()
    m_i = a.mean(dim=(2, 3))
    s_i = a.std(dim=(2, 3), unbiased=True)
    cm = torch.clamp(((m_i - mu_t) ** 2).sum(dim=1) / c - 0.5, min=0)
    cs = torch.clamp(((s_i - sd_t) ** 2).sum(dim=1) / c - 0.5, min=0)
    out = (-(logits.max(dim=1).values - logits.min(dim=1).values) + cm + cs).mean()
    print(f"    constraint terms active: mean {int((cm > 0).sum())}/{len(cm)}, std {int((cs > 0).sum())}/{len(cs)}")
    return bn + out_factor * out, bn, out


def write_aug_fixture(gen):
    x = torch.randn(2, 3, 7, 7, generator=gen) * 2.0
    w = torch.randn(2, 3, 4, 4, generator=gen)
    save("aug_x", x)
    save("aug_w", w)
    for name, flip, size, sigma in (("flip_s3", True, 3, 1.25), ("noflip_s5", False, 5, 0.8)):
        xv = x.clone().requires_grad_(True)
        y = augment(xv, flip, size, sigma, 1, 2, 4)
        (y * w).sum().backward()
        save(f"aug_{name}_y", y)
        save(f"aug_{name}_grad", xv.grad)
    for size, sigma in ((1, 1.25), (3, 1.25), (5, 0.8)):
        save(f"smooth_k{size}", gaussian_kernel(size, sigma))


def write_step_fixture(gen):
    s, p, n, bsz = 8, 4, 6, 4
    std_factor, out_factor, lr = 10.0, 0.05, 16.0
    net = small_net(gen)
    for k, v in net.state_dict().items():
        if v.dtype == torch.float32:
            save("net_" + k.replace(".", "_"), v)
    rec = Recorder(net)
    tg = targets(rec)
    images0 = clip(torch.randn(n, 3, s + p, s + p, generator=gen), False)
    save("step_images0", images0)
    cases = {
        "plain": dict(flip=False, size=1, sigma=1.25, top=p // 2, left=p // 2),
        "aug": dict(flip=True, size=3, sigma=1.25, top=1, left=3),
    }
    for case, a in cases.items():
        print(f"case {case}")
        batches = [images0[i:i + bsz].clone() for i in range(0, n, bsz)]
        stats = []
        with torch.no_grad():
            for x in batches:
                f = finalize(x, a["size"], a["sigma"], s)
                net(f)
                stats.append(batch_stats(f, rec))
        for b in (0, 1):
            x = batches[b].requires_grad_(True)
            opt = torch.optim.RAdam([x], lr=lr, betas=(0.9, 0.999), eps=1e-8)
            inp = augment(x, a["flip"], a["size"], a["sigma"], a["top"], a["left"], s)
            logits = net(inp)
            live = batch_stats(inp, rec)
            total, bn, out = losses(stats, b, live, tg, rec, logits, std_factor, out_factor)
            opt.zero_grad()
            total.backward()
            save(f"step_{case}_loss{b}", torch.stack([total, bn, out]).detach())
            save(f"step_{case}_grad{b}", x.grad)
            print(f"    batch {b}: total {total.item():.6f} bn {bn.item():.6f} out {out.item():.6f}")
            opt.step()
            save(f"step_{case}_after{b}", x)
            with torch.no_grad():
                f = finalize(x, a["size"], a["sigma"], s)
                net(f)
                stats[b] = batch_stats(f, rec)
            batches[b] = x.detach()


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20250105)
    write_aug_fixture(gen)
    write_step_fixture(gen)


if __name__ == "__main__":
    main()
