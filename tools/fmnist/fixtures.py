#!/usr/bin/python3
"""Fixture for assets/: PyTorch's logits of the embedded resnet20 on the
first test images, and its accuracy on the whole Fashion-MNIST test set.

Run from the repository root after tools/fmnist/train.py:
    /usr/bin/python3 tools/fmnist/fixtures.py
Writes assets/testdata/logits_first64.npy (float32, 64 x 10).
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402


def main():
    torch.set_num_threads(2)
    model = train.ResNet20(1, 10)
    model.load_state_dict(torch.load("assets/resnet20_fmnist.pth"))
    model.eval()
    # The embedded copies, which must be the files training saw.
    x = train.to_input(train.read_idx("assets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
    y = torch.from_numpy(train.read_idx("assets/fashion-mnist/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    print(f"test accuracy {train.evaluate(model, x, y):.4f}")
    with torch.no_grad():
        logits = model(x[:64])
    os.makedirs("assets/testdata", exist_ok=True)
    np.save("assets/testdata/logits_first64.npy", logits.numpy().astype(np.float32))
    print(f"first 64: accuracy {(logits.argmax(1) == y[:64]).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
