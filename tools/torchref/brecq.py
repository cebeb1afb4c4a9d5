#!/usr/bin/env python3
"""PyTorch oracle for package brecq (docs/DESIGN.md, "BRECQ").

Our own torch implementation of the pieces of docs/DESIGN.md, "BRECQ", written from
the specification. Writes small float32 .npy fixtures into brecq/testdata/:

  fold_*.npy                 conv weight / bias and BN statistics, and the
                             folded weight and bias (with and without conv bias)
  search_{t,s,c}_x.npy       inputs of the "mse" scale search: a post-ReLU
                             tensor, a signed tensor, a [rows, ...] weight
  search_{t,s,c}_b{bits}.npy [delta, zp] (per tensor) or [rows, 2] (per
                             channel) for 2, 4 and 8 bits
  ada_*.npy                  AdaRound on a small weight: initial alpha and
                             soft targets, soft and hard weights for a given
                             alpha, the rounding term and its gradient
  temp.npy                   [t, beta, active] of the temperature schedule
  lsq_*.npy                  fake quantization with the LSQ step gradient
  block_{case}/...           a residual block: its state_dict entries, input,
                             quantizer settings (weight steps per module, the
                             activation steps in forward order), outputs
                             float / weights quantized / fully quantized, and
                             one reconstruction step's loss and gradients:
                             AdaRound alphas (p = 2) and LSQ steps (p = 2.4);
                             for the basic blocks lsq_steps_{loss,delta}: 40
                             steps of the activation phase (loss per step,
                             activation steps after each)

Run from the repository root: /usr/bin/python3 tools/torchref/brecq.py
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "brecq", "testdata")
P_SEARCH = 2.4
LSQ_STEPS = 40


def save(name, t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    path = os.path.join(OUT, name + ".npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, a.astype(np.float32))


# ---- docs/DESIGN.md, "BRECQ", step 1: BN folding ------------------------------------------------

def fold(conv, bn):
    std = torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight / std
    w = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    b = bn.bias - bn.weight * bn.running_mean / std
    if conv.bias is not None:
        b = b + bn.weight * conv.bias / std
    return w.detach(), b.detach()


# ---- docs/DESIGN.md, "BRECQ", step 3: quantizer and scale search ---------------------------------

def quant(x, delta, zp, bits):
    return (torch.clamp(torch.round(x / delta) + zp, 0, 2 ** bits - 1) - zp) * delta


def search(x, bits):
    """Least sum |x - q(x)|^2.4 over the 80 shrinking candidates."""
    x = x.detach().float()
    hi0, lo0 = x.max(), x.min()
    cands = []
    for i in range(80):
        f = torch.tensor(1 - i * 0.01, dtype=torch.float32)
        hi, lo = hi0 * f, lo0 * f
        delta = (hi - lo) / (2 ** bits - 1)
        if not delta > 0:
            continue
        zp = torch.round(-lo / delta)
        err = (x - quant(x, delta, zp, bits)).abs().double().pow(P_SEARCH).sum().item()
        cands.append((err, i, delta, zp))
    best = min(cands, key=lambda c: (c[0], c[1]))
    # A near tie would let float summation order pick the other one.
    others = [c[0] for c in cands if c[1] != best[1] and (c[2] != best[2] or c[3] != best[3])]
    margin = min(others) / best[0] - 1 if others and best[0] > 0 else 1.0
    return best[2], best[3], margin


def search_rows(w, bits):
    ds, zs, margin = [], [], 1.0
    for r in range(w.shape[0]):
        d, z, m = search(w[r].reshape(-1), bits)
        ds.append(d)
        zs.append(z)
        margin = min(margin, m)
    return torch.stack(ds), torch.stack(zs), margin


def tie_distance(x, delta):
    """Smallest distance of x/delta to a rounding tie (k + 0.5)."""
    s = (x.detach() / delta).double()
    return ((s - torch.floor(s)) - 0.5).abs().min().item()


# ---- docs/DESIGN.md, "BRECQ", step 4: AdaRound -----------------------------------------------------

def h_of(alpha):
    return torch.clamp(torch.sigmoid(alpha) * 1.2 - 0.1, 0, 1)


def init_alpha(w, delta):
    s = w / delta
    rest = s - torch.floor(s)
    return -torch.log(1.2 / (rest + 0.1) - 1)


def soft_weight(w, alpha, delta, zp, bits):
    return (torch.clamp(torch.floor(w / delta) + h_of(alpha) + zp, 0, 2 ** bits - 1) - zp) * delta


def hard_weight(w, alpha, delta, zp, bits):
    up = (alpha >= 0).float()
    return (torch.clamp(torch.floor(w / delta) + up + zp, 0, 2 ** bits - 1) - zp) * delta


def rounding_term(alpha, beta, weight):
    return weight * (1 - (2 * h_of(alpha) - 1).abs().pow(beta)).sum()


def temperature(t, iters, warmup, b_start, b_end):
    start = warmup * iters
    if t < start:
        return b_start, 0.0
    rel = (t - start) / (iters - start)
    return b_end + (b_start - b_end) * max(0.0, 1 - rel), 1.0


def per_channel_view(v, w):
    return v.view(-1, *([1] * (w.dim() - 1)))


# ---- docs/DESIGN.md, "BRECQ", step 6: LSQ fake quantization ----------------------------------------

def round_ste(x):
    return x + (torch.round(x) - x).detach()


def lsq_quant(x, delta, zp, bits):
    return (torch.clamp(round_ste(x / delta) + zp, 0, 2 ** bits - 1) - zp) * delta


# ---- docs/DESIGN.md, "BRECQ", step 2: quant blocks -------------------------------------------------

class QState:
    """Quantizer settings of a block; act steps are searched on first use."""

    def __init__(self, w_bits, a_bits):
        self.w_bits, self.a_bits = w_bits, a_bits
        self.w = {}     # module name -> (delta, zp)
        self.acts = []  # [delta, zp] in forward order
        self.pos = 0
        self.margin = 1.0
        self.alpha = None  # module name -> AdaRound alpha: soft rounding
        self.lsq = None    # act steps as leaf tensors: LSQ

    def weight(self, name, w, on):
        if not on:
            return w
        if name not in self.w:
            d, z, m = search_rows(w, self.w_bits)
            self.margin = min(self.margin, m, tie_distance(w, per_channel_view(d, w)))
            self.w[name] = (d, z)
        d, z = self.w[name]
        dv, zv = per_channel_view(d, w), per_channel_view(z, w)
        if self.alpha is not None:
            # floor(w/delta) must not sit on an integer either
            s = (w / dv).double()
            self.margin = min(self.margin, (s - torch.round(s)).abs().min().item())
            return soft_weight(w, self.alpha[name], dv, zv, self.w_bits)
        return quant(w, dv, zv, self.w_bits)

    def act(self, x, on):
        if not on:
            return x
        if self.pos == len(self.acts):
            d, z, m = search(x.reshape(-1), self.a_bits)
            self.margin = min(self.margin, m)
            self.acts.append((d, z))
        d, z = self.acts[self.pos]
        if self.lsq is not None:
            d = self.lsq[self.pos]  # the learned step, where the ties are
        self.margin = min(self.margin, tie_distance(x, d))
        self.pos += 1
        if self.lsq is not None:
            return lsq_quant(x, d, z, self.a_bits)
        return quant(x, d, z, self.a_bits)


def qconv(qs, name, conv, bn, act, quant_out, x, wq, aq):
    w, b = fold(conv, bn)
    y = F.conv2d(x, qs.weight(name, w, wq), b, conv.stride, conv.padding, conv.dilation, conv.groups)
    if act is not None:
        y = act(y)
    if quant_out:
        y = qs.act(y, aq)
    return y


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def qforward(self, qs, x, wq, aq):
        y = qconv(qs, "conv1", self.conv1, self.bn1, F.relu, True, x, wq, aq)
        y = qconv(qs, "conv2", self.conv2, self.bn2, None, False, y, wq, aq)
        s = x
        if self.downsample is not None:
            s = qconv(qs, "downsample.0", self.downsample[0], self.downsample[1], None, False, x, wq, aq)
        return qs.act(F.relu(y + s), aq)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def qforward(self, qs, x, wq, aq):
        y = qconv(qs, "conv1", self.conv1, self.bn1, F.relu, True, x, wq, aq)
        y = qconv(qs, "conv2", self.conv2, self.bn2, F.relu, True, y, wq, aq)
        y = qconv(qs, "conv3", self.conv3, self.bn3, None, False, y, wq, aq)
        s = x
        if self.downsample is not None:
            s = qconv(qs, "downsample.0", self.downsample[0], self.downsample[1], None, False, x, wq, aq)
        return qs.act(F.relu(y + s), aq)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        if expand == 1:
            self.conv = nn.Sequential(
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        else:
            self.conv = nn.Sequential(
                nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.use_res = stride == 1 and cin == cout

    def qforward(self, qs, x, wq, aq):
        mods = list(self.conv)
        convs = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
        y = x
        for k, i in enumerate(convs):
            last = k == len(convs) - 1
            act = None if last else F.relu6
            y = qconv(qs, "conv.%d" % i, mods[i], mods[i + 1], act, not last, y, wq, aq)
        if self.use_res:
            y = x + y
        return qs.act(y, aq)


def lp(pred, tgt, p):
    return (pred - tgt).abs().pow(p).sum(1).mean()


def soft_pairs(blk):
    """(name, conv, bn) of every conv of a block, as qforward names them."""
    if isinstance(blk, InvertedResidual):
        mods = list(blk.conv)
        return [("conv.%d" % i, mods[i], mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
    names = ["conv1", "conv2"] + (["conv3"] if isinstance(blk, Bottleneck) else [])
    out = [(n, getattr(blk, n), getattr(blk, "bn" + n[-1])) for n in names]
    if blk.downsample is not None:
        out.append(("downsample.0", blk.downsample[0], blk.downsample[1]))
    return out


def randomize(m, gen):
    for name, t in m.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        elif name.endswith("running_mean") or name.endswith("bias"):
            t.copy_((torch.rand(t.shape, generator=gen) - 0.5) * 0.4)
        elif t.dim() == 1:
            t.copy_(torch.rand(t.shape, generator=gen) * 0.7 + 0.5)
        else:
            fan_in = t[0].numel()
            t.copy_(torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5)


def block_case(name, make, in_shape):
    """Draws seeds until no quantizer input sits within 1e-4 of a rounding
    tie and no scale search has a near tie, so float differences between
    torch and Go cannot flip a level."""
    for seed in range(1, 200):
        gen = torch.Generator().manual_seed(seed)
        blk = make()
        randomize(blk, gen)
        x = torch.randn(in_shape, generator=gen)
        with torch.no_grad():
            qs = QState(4, 4)
            y_q = blk.qforward(qs, x, True, True)
            qs.pos = 0
            y_w = blk.qforward(qs, x, True, False)
            y_f = blk.qforward(qs, x, False, False)
        # One reconstruction step's gradients (docs/DESIGN.md, "BRECQ", steps 4 and 6): AdaRound's
        # alphas (near their initial values) under the p = 2 loss of the
        # weight phase, the activation steps under the p = 2.4 loss.
        qs.alpha = {}
        for mod, conv, bn in soft_pairs(blk):
            w, _ = fold(conv, bn)
            wd, _ = qs.w[mod]
            a = init_alpha(w, per_channel_view(wd, w)) + torch.randn(w.shape, generator=gen) * 0.5
            qs.alpha[mod] = a.requires_grad_(True)
        ada_loss = lp(blk.qforward(qs, x, True, False), y_f, 2.0)
        ada_loss.backward()
        qs.alpha_grads = {k: a.grad for k, a in qs.alpha.items()}
        qs.alpha_vals = {k: a.detach() for k, a in qs.alpha.items()}
        qs.alpha = None
        qs.lsq = [d.clone().requires_grad_(True) for d, _ in qs.acts]
        qs.pos = 0
        lsq_loss = lp(blk.qforward(qs, x, True, True), y_f, 2.4)
        lsq_loss.backward()
        if qs.margin > 1e-4:
            break
    else:
        raise RuntimeError("no seed keeps %s away from rounding ties" % name)
    d = "block_" + name + "/"
    for k, t in blk.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            save(d + k, t)
    save(d + "x", x)
    for mod, (wd, wz) in qs.w.items():
        save(d + "wq_" + mod, torch.stack([wd, wz], 1))
    save(d + "aq", torch.tensor([[a, b] for a, b in qs.acts]))
    save(d + "y_float", y_f)
    save(d + "y_weights", y_w)
    save(d + "y_quant", y_q)
    for mod, a in qs.alpha_vals.items():
        save(d + "alpha_" + mod, a)
        save(d + "alpha_grad_" + mod, qs.alpha_grads[mod])
    save(d + "ada_loss", ada_loss.reshape(1))
    save(d + "lsq_loss", lsq_loss.reshape(1))
    save(d + "lsq_grad", torch.stack([t.grad for t in qs.lsq]))
    return blk, x, qs, y_f


def lsq_steps(name, blk, x, qs, y_f):
    """The activation phase of docs/DESIGN.md, "BRECQ", step 6 on one unit for LSQ_STEPS steps:
    Adam (lr 4e-4) on the activation steps, cosine annealing to 0 over the
    steps, the Lp loss (p = 2.4) of the fully quantized block (round-to-
    nearest weights) against the float output, the whole input as the
    mini-batch. Saves the loss of every step and the steps after it."""
    qs.lsq = [d.clone().requires_grad_(True) for d, _ in qs.acts]
    opt = torch.optim.Adam(qs.lsq, lr=4e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=LSQ_STEPS, eta_min=0)
    qs.margin = 1.0
    losses, steps = [], []
    for _ in range(LSQ_STEPS):
        opt.zero_grad()
        qs.pos = 0
        loss = lp(blk.qforward(qs, x, True, True), y_f, 2.4)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        steps.append(torch.stack([t.detach().clone() for t in qs.lsq]))
    # Go must meet the same levels all the way, not only at the start (the
    # other blocks' steps pass within 1e-5 of a rounding tie on the way).
    assert qs.margin > 1e-4, (name, qs.margin)
    d = "block_" + name + "/"
    save(d + "lsq_steps_loss", torch.tensor(losses))
    save(d + "lsq_steps_delta", torch.stack(steps))


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    # docs/DESIGN.md, "BRECQ", step 1
    conv = nn.Conv2d(4, 6, 3, bias=True)
    bn = nn.BatchNorm2d(6)
    randomize(conv, gen)
    randomize(bn, gen)
    with torch.no_grad():
        conv.bias.copy_(torch.randn(6, generator=gen))
    for k, t in conv.state_dict().items():
        save("fold_conv_" + k, t)
    for k, t in bn.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            save("fold_bn_" + k, t)
    w, b = fold(conv, bn)
    save("fold_w", w)
    save("fold_b_bias", b)
    conv.bias = None
    _, b = fold(conv, bn)
    save("fold_b_nobias", b)

    # docs/DESIGN.md, "BRECQ", step 3
    x_t = torch.relu(torch.randn(600, generator=gen)) * 1.7
    x_t[17] = 9.0  # an outlier the search should clip
    x_s = torch.randn(500, generator=gen) * 0.8 + 0.3
    x_c = torch.randn(6, 2, 3, 3, generator=gen) * torch.tensor([0.1, 0.5, 1, 2, 0.05, 3]).view(6, 1, 1, 1)
    save("search_t_x", x_t)
    save("search_s_x", x_s)
    save("search_c_x", x_c)
    for bits in (2, 4, 8):
        for tag, x in (("t", x_t), ("s", x_s)):
            d, z, m = search(x, bits)
            assert m > 1e-9, (tag, bits, m)
            save("search_%s_b%d" % (tag, bits), torch.stack([d, z]))
        d, z, m = search_rows(x_c, bits)
        assert m > 1e-9, ("c", bits, m)
        save("search_c_b%d" % bits, torch.stack([d, z], 1))

    # docs/DESIGN.md, "BRECQ", step 4
    w = torch.randn(4, 3, 3, 3, generator=gen) * 0.3
    d, z, _ = search_rows(w, 4)
    dv, zv = per_channel_view(d, w), per_channel_view(z, w)
    alpha0 = init_alpha(w, dv)
    save("ada_w", w)
    save("ada_delta", d)
    save("ada_zp", z)
    save("ada_alpha0", alpha0)
    save("ada_h0", h_of(alpha0))
    save("ada_soft0", soft_weight(w, alpha0, dv, zv, 4))
    alpha = (torch.randn(w.shape, generator=gen) * 2).requires_grad_(True)
    save("ada_alpha", alpha)
    save("ada_soft", soft_weight(w, alpha, dv, zv, 4))
    save("ada_hard", hard_weight(w, alpha, dv, zv, 4))
    for beta in (20.0, 7.5, 2.0):
        alpha.grad = None
        reg = rounding_term(alpha, beta, 0.01)
        reg.backward()
        save("ada_reg_b%g" % beta, reg.reshape(1))
        save("ada_reg_grad_b%g" % beta, alpha.grad)
    sched = []
    for t in range(1, 51):
        beta, active = temperature(t, 50, 0.2, 20.0, 2.0)
        sched.append([t, beta, active])
    save("temp", torch.tensor(sched, dtype=torch.float64))

    # docs/DESIGN.md, "BRECQ", step 6
    x = torch.randn(3, 4, 5, generator=gen) * 2
    x = x.requires_grad_(True)
    delta = torch.tensor(0.3, requires_grad=True)
    zp = torch.tensor(7.0)
    assert tie_distance(x, delta) > 1e-4
    dy = torch.randn(x.shape, generator=gen)
    y = lsq_quant(x, delta, zp, 4)
    (y * dy).sum().backward()
    save("lsq_x", x)
    save("lsq_dy", dy)
    save("lsq_y", y)
    save("lsq_dx", x.grad)
    save("lsq_ddelta", delta.grad.reshape(1))

    # docs/DESIGN.md, "BRECQ", step 2
    lsq_steps("basic_ds", *block_case("basic_ds", lambda: BasicBlock(4, 8, 2), (2, 4, 6, 6)))
    lsq_steps("basic_id", *block_case("basic_id", lambda: BasicBlock(8, 8, 1), (2, 8, 5, 5)))
    block_case("bottleneck_ds", lambda: Bottleneck(8, 4, 2), (2, 8, 6, 6))
    block_case("invres_res", lambda: InvertedResidual(8, 8, 1, 6), (1, 8, 5, 5))
    block_case("invres_e1", lambda: InvertedResidual(8, 4, 1, 1), (2, 8, 5, 5))


if __name__ == "__main__":
    main()
