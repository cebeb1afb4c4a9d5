#!/usr/bin/python3
"""Train the embedded default model: a CIFAR-style resnet20 on Fashion-MNIST.

docs/DESIGN.md, "Models and checkpoints" (resnet20) and "Command line" (the embedded default). The state_dict
key names follow torchvision's ResNet (conv1, bn1, layerX.Y.conv1/bn1/conv2/bn2,
layerX.0.downsample.0/1, fc) so layers/zoo loads the checkpoint without renaming.

Input: the Fashion-MNIST IDX files shipped by Debian's dataset-fashion-mnist
package (/usr/share/datasets/fashion-mnist). Output: a zip-format state_dict.

Usage:
    /usr/bin/python3 tools/fmnist/train.py [--epochs 3] [--out assets/resnet20_fmnist.pth]
    /usr/bin/python3 tools/fmnist/fixtures.py   # then refresh assets/testdata

The committed checkpoint came from the defaults (3 epochs, seed 0, torch
1.13.1 from Debian, 2 threads; 48 minutes on a shared 2-core machine):
test accuracy 0.9150 (after each epoch: 0.8320, 0.8668, 0.9150).
"""

import argparse
import gzip
import os
import struct
import time

# Sleep rather than spin while waiting for the other thread: the machine is
# shared, and spinning OpenMP threads starve everyone, this run included.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# Mean and std of the 60000 training images' pixels in [0, 1], computed once
# with --stats; assets/ and the Go side use exactly these numbers.
FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """Read an IDX file (gzip) into a uint8 numpy array of the stored shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet20(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._layer(16, 16, 1)
        self.layer2 = self._layer(16, 32, 2)
        self.layer3 = self._layer(32, 64, 2)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _layer(inplanes, planes, stride):
        return nn.Sequential(
            BasicBlock(inplanes, planes, stride),
            BasicBlock(planes, planes, 1),
            BasicBlock(planes, planes, 1),
        )

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def augment(x, gen):
    """Random crop with zero padding 2 (in pixel space, i.e. padded with the
    normalised value of black) and horizontal flip, per sample."""
    n = x.shape[0]
    black = (0.0 - FMNIST_MEAN) / FMNIST_STD
    padded = F.pad(x, (2, 2, 2, 2), value=black)
    dy = torch.randint(0, 5, (n,), generator=gen)
    dx = torch.randint(0, 5, (n,), generator=gen)
    rows = (dy.view(n, 1) + torch.arange(28).view(1, 28)).view(n, 1, 28, 1).expand(n, 1, 28, 32)
    padded = torch.gather(padded, 2, rows)
    cols = (dx.view(n, 1) + torch.arange(28).view(1, 28)).view(n, 1, 1, 28).expand(n, 1, 28, 28)
    out = torch.gather(padded, 3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def to_input(u8):
    return (torch.from_numpy(u8.astype(np.float32) / 255.0).unsqueeze(1) - FMNIST_MEAN) / FMNIST_STD


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            correct += (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="assets/resnet20_fmnist.pth")
    ap.add_argument("--stats", action="store_true", help="print the training set mean/std and exit")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    train_x = read_idx(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz"))
    train_y = read_idx(os.path.join(DATA_DIR, "train-labels-idx1-ubyte.gz"))
    test_x = read_idx(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz"))
    test_y = read_idx(os.path.join(DATA_DIR, "t10k-labels-idx1-ubyte.gz"))
    if args.stats:
        px = train_x.astype(np.float64) / 255.0
        print(f"mean {px.mean():.6f} std {px.std():.6f}")
        return

    xtr, ytr = to_input(train_x), torch.from_numpy(train_y.astype(np.int64))
    xte, yte = to_input(test_x), torch.from_numpy(test_y.astype(np.int64))

    model = ResNet20(1, 10)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps_per_epoch = (xtr.shape[0] + args.batch - 1) // args.batch
    # One-cycle schedule: a short warm-up then cosine decay, which reaches a
    # good accuracy in few epochs.
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        total, seen = 0.0, 0
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch : (step + 1) * args.batch]
            xb, yb = augment(xtr[idx], gen), ytr[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.shape[0]
            seen += idx.shape[0]
            if step % 25 == 0:
                print(f"epoch {epoch} step {step}/{steps_per_epoch} loss {total / seen:.4f} "
                      f"elapsed {time.time() - start:.0f}s", flush=True)
        acc = evaluate(model, xte, yte)
        print(f"epoch {epoch} train loss {total / seen:.4f} test acc {acc:.4f} "
              f"elapsed {time.time() - start:.0f}s", flush=True)

    acc = evaluate(model, xte, yte)
    print(f"final test accuracy {acc:.4f}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
