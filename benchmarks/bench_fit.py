"""How much does cnnkit.fit add to a plain PyTorch training loop?

Both train the same CNN from the same initial weights over the same DataLoader
(SmallMNIST, batch 64) for the same number of epochs; runs alternate, and the
median of several repeats is compared. Target: ratio <= 1.10.

    .venv/bin/python benchmarks/bench_fit.py [--epochs 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

import cnnkit


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def plain_loop(model, loader, epochs, device):
    """The loop a student writes by hand: forward, loss, backward, step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.to(device).train()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def with_fit(model, loader, epochs, device):
    cnnkit.fit(model, loader, epochs=epochs, device=device, live_plot=False)
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = cnnkit.setup(seed=0, device=args.device)
    loader = torch.utils.data.DataLoader(cnnkit.data.SmallMNIST(train=True), batch_size=64, shuffle=True)
    initial = make_model()
    timings = {"plain": [], "fit": []}
    plain_loop(copy.deepcopy(initial), loader, 1, device)          # warm-up
    for _ in range(args.repeats):
        for name, fn in (("plain", plain_loop), ("fit", with_fit)):
            model = copy.deepcopy(initial)
            start = time.perf_counter()
            fn(model, loader, args.epochs, device)
            timings[name].append(time.perf_counter() - start)
    plain, fit = statistics.median(timings["plain"]), statistics.median(timings["fit"])
    print(f"device {device}, {args.epochs} epochs x {len(loader)} batches, median of {args.repeats}")
    print(f"plain PyTorch loop : {plain:.3f} s")
    print(f"cnnkit.fit         : {fit:.3f} s  (progress bar and metrics on)")
    print(f"fit overhead ratio : {fit / plain:.3f}  (target <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
