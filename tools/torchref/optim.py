#!/usr/bin/python3
"""Reference fixtures for package optim (docs/DESIGN.md, "DGH" and "BRECQ").

Runs torch.optim's SGD, Adam and RAdam for 50 steps on a small problem with
a closed-form gradient, and torch's CosineAnnealingLR / ReduceLROnPlateau
(plus PlateauWithReset, a subclass written here) on fixed loss sequences.
The Go tests replay the same gradients and losses and compare.

Usage: /usr/bin/python3 tools/torchref/optim.py   (from the repository root)

Files written into optim/testdata/:
  opt_<case>_params.npy  float32 [steps+1, n]  all parameters flattened,
                         row 0 = initial values, row t = after step t
  opt_<case>_grads.npy   float32 [steps, n]    gradient handed to step t
                         (zeros where the parameter had none)
  opt_<case>_mask.npy    float32 [steps, P]    1 where parameter p had a
                         gradient at step t, 0 where its .grad was None
  sched_<case>_loss.npy  float64 [steps]       metric given to step t
  sched_<case>_lr.npy    float64 [steps+1]     lr before any step, then after
                         each step
  sched_<case>_best.npy, _bad.npy, _cooldown.npy (plateau schedules only)
                         float64 [steps]       scheduler state after step t
Learning rates are Python floats (float64) in torch, so their fixtures are
float64 to let the Go side compare them bit for bit.
"""
import os

import numpy as np
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "optim", "testdata")
STEPS = 50
SIZES = (6, 4, 3)  # three parameters of different sizes


def quartic_grad(x, centre, scale):
    """Gradient of scale * sum((x-c)^2/2 + (x-c)^4/40): smooth, sign-changing."""
    d = x - centre
    return scale * (d + 0.1 * d ** 3)


def run_optimizer(name, make, init_scale, centre_scale, grad_scale, skip_every, seed):
    """Runs make(params) for STEPS steps. Parameter 1 gets no gradient on
    steps where t % skip_every == skip_every-1 (skip_every 0: never), which
    exercises the per-parameter step counters and lazy state."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(n, generator=g) * init_scale) for n in SIZES]
    centres = [torch.rand(n, generator=g) * 2 * centre_scale - centre_scale for n in SIZES]
    opt = make(params)
    rows_p = [torch.cat([p.detach().clone() for p in params])]
    rows_g, rows_m = [], []
    for t in range(STEPS):
        grads, mask = [], []
        for i, (p, c) in enumerate(zip(params, centres)):
            skip = i == 1 and skip_every and t % skip_every == skip_every - 1
            if skip:
                p.grad = None
                grads.append(torch.zeros_like(p))
            else:
                p.grad = quartic_grad(p.detach(), c, grad_scale).clone()
                grads.append(p.grad.clone())
            mask.append(0.0 if skip else 1.0)
        opt.step()
        rows_p.append(torch.cat([p.detach().clone() for p in params]))
        rows_g.append(torch.cat(grads))
        rows_m.append(mask)
    save(f"opt_{name}_params", torch.stack(rows_p).numpy().astype(np.float32))
    save(f"opt_{name}_grads", torch.stack(rows_g).numpy().astype(np.float32))
    save(f"opt_{name}_mask", np.array(rows_m, dtype=np.float32))


def optimizer_cases():
    sgd = torch.optim.SGD
    adam = torch.optim.Adam
    radam = torch.optim.RAdam
    # (name, constructor, init scale, centre scale, gradient scale, skip_every, seed)
    return [
        ("sgd_plain", lambda p: sgd(p, lr=0.05, foreach=False), 1.0, 2.0, 1.0, 0, 1),
        ("sgd_momentum", lambda p: sgd(p, lr=0.02, momentum=0.9, dampening=0.1, weight_decay=0.01, foreach=False),
         1.0, 2.0, 1.0, 3, 2),
        ("sgd_nesterov", lambda p: sgd(p, lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.05, foreach=False),
         1.0, 2.0, 1.0, 4, 3),
        ("adam", lambda p: adam(p, lr=0.05, foreach=False), 1.0, 2.0, 1.0, 0, 4),
        ("adam_wd", lambda p: adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, foreach=False),
         1.0, 2.0, 1.0, 3, 5),
        ("adam_amsgrad", lambda p: adam(p, lr=0.03, weight_decay=0.01, amsgrad=True, foreach=False),
         1.0, 2.0, 1.0, 5, 6),
        # DGH's setting (docs/DESIGN.md, "DGH"): lr 16 on pixel-like values with small gradients.
        ("radam_lr16", lambda p: radam(p, lr=16, betas=(0.9, 0.999), eps=1e-8, foreach=False),
         1.0, 30.0, 1e-3, 0, 7),
        ("radam_lr1e-3", lambda p: radam(p, lr=1e-3, foreach=False), 1.0, 2.0, 1.0, 3, 8),
        ("radam_wd", lambda p: radam(p, lr=0.05, betas=(0.85, 0.995), eps=1e-6, weight_decay=0.02, foreach=False),
         1.0, 2.0, 1.0, 4, 9),
    ]


class DummyOptimizer(torch.optim.SGD):
    """A one-parameter SGD whose only job is to carry the learning rate."""

    def __init__(self, lr):
        super().__init__([torch.nn.Parameter(torch.zeros(1))], lr=lr)


class PlateauWithReset(ReduceLROnPlateau):
    """docs/DESIGN.md, "DGH": ReduceLROnPlateau that also forgets its best value
    (and bad-epoch count) every time it decides to lower the rate."""

    def _reduce_lr(self, epoch):
        super()._reduce_lr(epoch)
        self.best = self.mode_worse
        self.num_bad_epochs = 0


def plateau_with_reset(opt, iterations):
    return PlateauWithReset(opt, mode="min", factor=0.5, patience=iterations // 50,
                            threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=1e-4)


def loss_sequence(kind, n, seed):
    rng = np.random.RandomState(seed)
    if kind == "mixed":
        # decrease, long plateau, tiny (sub-threshold) improvements, jump, noisy decrease
        a = list(np.linspace(10.0, 5.0, 10))
        a += [5.0] * 12
        a += [5.0 * (1 - 5e-5 * k) for k in range(1, 9)]   # below the 1e-4 relative threshold
        a += [5.0 * (1 - 2e-4 * k) for k in range(1, 5)]   # above it
        a += [7.0] * 6
        a += list(4.0 + 0.3 * rng.rand(n - len(a)) - 0.004 * np.arange(n - len(a)))
        return np.array(a[:n], dtype=np.float64)
    if kind == "flat":
        return np.concatenate([np.linspace(3.0, 2.0, 5), np.full(n - 5, 2.0)])
    if kind == "noisy":
        return 1.0 / (1.0 + 0.05 * np.arange(n)) + 0.05 * rng.randn(n)
    if kind == "negative":
        return -1.0 - 0.01 * np.arange(n) + 0.02 * rng.randn(n)
    if kind == "staircase":
        # levels 30 steps long with noise well inside the relative threshold
        level = 8.0 * 0.7 ** (np.arange(n) // 30)
        return level * (1 + 2e-5 * rng.randn(n))
    if kind == "rising":
        return np.concatenate([np.linspace(0.0, 1.0, n // 2), np.full(n - n // 2, 1.0) + 0.01 * rng.rand(n - n // 2)])
    raise ValueError(kind)


def schedule_cases():
    def rop(**kw):
        return lambda o: ReduceLROnPlateau(o, **kw)

    # (name, initial lr, make scheduler, loss kind, steps, seed)
    return [
        ("cosine_t20", 0.1, lambda o: CosineAnnealingLR(o, T_max=20), "mixed", 70, 11),
        ("cosine_t7_min", 1.0, lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.05), "mixed", 60, 12),
        ("cosine_t50", 4e-4, lambda o: CosineAnnealingLR(o, T_max=50), "mixed", 60, 13),
        ("plateau_default", 0.1, rop(), "mixed", 80, 21),
        ("plateau_p2_cool", 1.0, rop(factor=0.5, patience=2, cooldown=3, min_lr=0.05), "mixed", 80, 22),
        ("plateau_abs", 1.0, rop(factor=0.3, patience=1, threshold=0.01, threshold_mode="abs"), "noisy", 60, 23),
        ("plateau_eps", 1e-6, rop(factor=0.5, patience=0, eps=1e-7), "flat", 60, 24),
        ("plateau_max", 0.5, rop(mode="max", factor=0.2, patience=3, threshold=1e-3), "rising", 60, 25),
        ("plateau_negative", 0.2, rop(factor=0.5, patience=3), "negative", 60, 26),
        ("reset_t1000", 16.0, lambda o: plateau_with_reset(o, 1000), "staircase", 150, 31),
        ("reset_t100", 16.0, lambda o: plateau_with_reset(o, 100), "flat", 100, 32),
        ("reset_t200_noisy", 16.0, lambda o: plateau_with_reset(o, 200), "noisy", 80, 33),
    ]


def run_schedule(name, lr, make, kind, steps, seed):
    opt = DummyOptimizer(lr)
    sched = make(opt)
    losses = loss_sequence(kind, steps, seed)
    lrs = [opt.param_groups[0]["lr"]]
    best, bad, cool = [], [], []
    plateau = isinstance(sched, ReduceLROnPlateau)
    for loss in losses:
        opt.step()
        if plateau:
            sched.step(float(loss))
            best.append(sched.best)
            bad.append(sched.num_bad_epochs)
            cool.append(sched.cooldown_counter)
        else:
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    save(f"sched_{name}_loss", losses.astype(np.float64))
    save(f"sched_{name}_lr", np.array(lrs, dtype=np.float64))
    if plateau:
        save(f"sched_{name}_best", np.array(best, dtype=np.float64))
        save(f"sched_{name}_bad", np.array(bad, dtype=np.float64))
        save(f"sched_{name}_cooldown", np.array(cool, dtype=np.float64))


def save(stem, arr):
    np.save(os.path.join(OUT, stem + ".npy"), arr)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for case in optimizer_cases():
        run_optimizer(*case)
    for case in schedule_cases():
        run_schedule(*case)


if __name__ == "__main__":
    main()
