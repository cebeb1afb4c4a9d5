#!/usr/bin/python3
"""Time PyTorch CPU inference for comparison with BenchmarkForward (layers/zoo).

Same work as the Go benchmark: batch 8 of 224x224 images through resnet18,
resnet50 and mobilenet_v2 (the architectures of tools/torchref/zoo.py, with
random weights), eval mode, no autograd, float32, torch.set_num_threads(N).

Usage: /usr/bin/python3 tools/torchref/bench_forward.py --threads 2 [--seconds 10]
       [--models resnet18,resnet50,mobilenet_v2]
Prints one line per model: images/s and ms per batch.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402  (the architectures, shared with the fixture script)

BATCH = 8

BUILDERS = {
    "resnet18": lambda: zoo.ResNet(zoo.BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], 3, 1000, True),
    "resnet50": lambda: zoo.ResNet(zoo.Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], 3, 1000, True),
    "mobilenet_v2": lambda: zoo.MobileNetV2(1000),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads (match GOMAXPROCS)")
    ap.add_argument("--seconds", type=float, default=10.0, help="minimum timed time per model")
    ap.add_argument("--models", default=",".join(BUILDERS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(BATCH, 3, 224, 224)
    for name in args.models.split(","):
        model = BUILDERS[name]().eval()
        with torch.inference_mode():
            model(x)  # warm-up
            runs, start = 0, time.perf_counter()
            while True:
                model(x)
                runs += 1
                elapsed = time.perf_counter() - start
                if elapsed >= args.seconds:
                    break
        print(f"{name}: {BATCH * runs / elapsed:.2f} images/s, {1000 * elapsed / runs:.1f} ms/batch "
              f"({runs} runs, {args.threads} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
