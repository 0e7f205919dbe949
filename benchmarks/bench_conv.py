"""Speed of cnnkit.conv (im2col + matmul; pooling) relative to torch.nn.functional.

Prints, for a few layer shapes (grouped and depthwise included), the time ratio
im2col / F.conv2d for the forward pass and for forward + backward, then the same
for max and average pooling (best of several runs each).

    .venv/bin/python benchmarks/bench_conv.py [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import cnnkit
from cnnkit import conv

SHAPES = [  # (N, C_in, H, W), C_out, kernel, stride, padding, groups
    ((16, 3, 32, 32), 32, 3, 1, 1, 1),
    ((16, 32, 32, 32), 64, 3, 1, 1, 1),
    ((16, 64, 16, 16), 128, 3, 2, 1, 1),
    ((8, 3, 64, 64), 16, 7, 2, 3, 1),
    ((16, 64, 16, 16), 64, 1, 1, 0, 1),
    ((16, 64, 16, 16), 64, 3, 1, 1, 64),   # depthwise (MobileNet / EfficientNet blocks)
    ((16, 64, 16, 16), 64, 3, 1, 1, 8),    # grouped (ResNeXt)
]


def best_time(fn, device, repeats=7) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = cnnkit.setup(seed=0, device=args.device)
    print(f"{'input':>18s} {'C_out':>5s} {'K':>2s} {'S':>2s} {'G':>3s} | {'F.conv2d':>9s} {'im2col':>9s} "
          f"{'ratio':>6s} | {'fwd+bwd ratio':>13s}")
    for shape, c_out, k, s, p, g in SHAPES:
        x = torch.randn(shape, device=device, requires_grad=True)
        w = torch.randn(c_out, shape[1] // g, k, k, device=device, requires_grad=True)
        args = dict(stride=s, padding=p, groups=g)
        with torch.no_grad():
            t_ref = best_time(lambda: F.conv2d(x, w, **args), device)
            t_our = best_time(lambda: conv.conv2d(x, w, **args), device)
        t_ref_b = best_time(lambda: F.conv2d(x, w, **args).sum().backward(), device)
        t_our_b = best_time(lambda: conv.conv2d(x, w, **args).sum().backward(), device)
        print(f"{str(shape):>18s} {c_out:5d} {k:2d} {s:2d} {g:3d} | {t_ref * 1e3:7.2f}ms {t_our * 1e3:7.2f}ms "
              f"{t_our / t_ref:6.2f} | {t_our_b / t_ref_b:13.2f}")
    x = torch.randn(16, 64, 32, 32, device=device, requires_grad=True)
    for name, ours, ref in (("max_pool2d 3x3/2", conv.max_pool2d, F.max_pool2d),
                            ("avg_pool2d 3x3/2", conv.avg_pool2d, F.avg_pool2d)):
        t_ref = best_time(lambda: ref(x, 3, 2, 1).sum().backward(), device)
        t_our = best_time(lambda: ours(x, 3, 2, 1).sum().backward(), device)
        print(f"{name:>18s} on (16, 64, 32, 32), fwd+bwd: torch {t_ref * 1e3:7.2f}ms, "
              f"cnnkit {t_our * 1e3:7.2f}ms, ratio {t_our / t_ref:6.2f}")
    print("ratio = im2col time / F.conv2d time (higher = im2col slower)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
