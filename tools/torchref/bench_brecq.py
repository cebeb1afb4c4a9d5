#!/usr/bin/env python3
"""PyTorch timing of one BRECQ AdaRound step, beside Go's
BenchmarkReconstructionStep (brecq/bench_test.go): the same blocks
(ResNet's, MobileNetV2's, RegNetX-600MF's and MNASNet's) at batch 32, forward with soft-rounded folded weights, |pred - target|^2 summed over
channels and averaged, plus the rounding term at beta 10, backward, Adam.

Run from the repository root with the Go benchmark's thread count:
  /usr/bin/python3 tools/torchref/bench_brecq.py --threads 2 [--steps 5]
"""
import argparse
import time

import torch
import torch.nn.functional as F

from brecq import (InvertedResidual, BasicBlock, Bottleneck, NestedInvertedResidual, ResBottleneckBlock, fold,
                   init_alpha, lp, per_channel_view, rounding_term, search_rows, soft_pairs, soft_weight)


class SoftBlock:
    """A block's convs as (folded weight, bias, alpha, quantizer) plus the
    wiring of the quant block of docs/DESIGN.md, "BRECQ", step 2 in weight-only mode."""

    def __init__(self, blk, bits=4):
        self.blk, self.bits, self.convs = blk, bits, {}
        for name, conv, bn in soft_pairs(blk):
            w, b = fold(conv, bn)
            d, z, _ = search_rows(w, bits)
            dv, zv = per_channel_view(d, w), per_channel_view(z, w)
            alpha = init_alpha(w, dv).requires_grad_(True)
            self.convs[name] = (conv, w, b, alpha, dv, zv)

    def alphas(self):
        return [c[3] for c in self.convs.values()]

    def conv(self, name, x, act):
        conv, w, b, alpha, dv, zv = self.convs[name]
        y = F.conv2d(x, soft_weight(w, alpha, dv, zv, self.bits), b, conv.stride, conv.padding, conv.dilation, conv.groups)
        return act(y) if act is not None else y

    def chain(self, names, x, act):
        """The convs named, act after each but the last."""
        for k, n in enumerate(names):
            x = self.conv(n, x, None if k == len(names) - 1 else act)
        return x

    def forward(self, x):
        b = self.blk
        if isinstance(b, (InvertedResidual, NestedInvertedResidual)):
            y = self.chain(list(self.convs), x, b.act if isinstance(b, NestedInvertedResidual) else F.relu6)
            return x + y if b.use_res else y
        shortcut = [n for n in self.convs if n in ("downsample.0", "proj")]
        y = self.chain([n for n in self.convs if n not in shortcut], x, F.relu)
        s = self.conv(shortcut[0], x, None) if shortcut else x
        return F.relu(y + s)


def bench(name, blk, shape, steps, warmup):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for k, t in blk.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            if t.dim() > 1:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            else:
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    sb = SoftBlock(blk)
    opt = torch.optim.Adam(sb.alphas(), lr=1e-3)
    x = torch.randn(shape, generator=gen)
    with torch.no_grad():
        target = sb.forward(torch.randn(shape, generator=gen))
    beta, weight = 10.0, 0.01

    def step():
        opt.zero_grad()
        out = sb.forward(x)
        rec = lp(out, target, 2.0)
        rnd = sum(rounding_term(a, beta, weight) for a in sb.alphas())
        (rec + rnd).backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    ms = times[len(times) // 2] * 1000
    print("%-22s %9.1f ms/step %8.2f images/s" % (name, ms, shape[0] / (ms / 1000)))


BLOCKS = {
    "resnet18_basicblock": (lambda: BasicBlock(64, 64, 1), (32, 64, 56, 56)),
    "resnet50_bottleneck": (lambda: Bottleneck(64, 64, 1), (32, 64, 56, 56)),
    "mobilenet_v2_invres": (lambda: InvertedResidual(24, 24, 1, 6), (32, 24, 56, 56)),
    "regnetx_600m_s1b1": (lambda: ResBottleneckBlock(32, 48, 2, 2), (32, 32, 112, 112)),
    "regnetx_600m_s2b2": (lambda: ResBottleneckBlock(96, 96, 1, 4), (32, 96, 28, 28)),
    "mnasnet_l8b0": (lambda: NestedInvertedResidual(32, 48, 2, 3, 3, torch.nn.ReLU, False, "layers"),
                     (32, 32, 112, 112)),
    "mnasnet_l9b1": (lambda: NestedInvertedResidual(80, 80, 1, 3, 5, torch.nn.ReLU, False, "layers"),
                     (32, 80, 28, 28)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("blocks", nargs="*", default=list(BLOCKS), help="blocks to time (default: all)")
    a = ap.parse_args()
    for name in a.blocks:
        if name not in BLOCKS:
            ap.error("unknown block %r (known: %s)" % (name, ", ".join(BLOCKS)))
    torch.set_num_threads(a.threads)
    print("torch %s, %d threads, median of %d steps" % (torch.__version__, a.threads, a.steps))
    for name in a.blocks:
        make, shape = BLOCKS[name]
        bench(name, make(), shape, a.steps, a.warmup)


if __name__ == "__main__":
    main()
