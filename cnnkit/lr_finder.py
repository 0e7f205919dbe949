"""The learning-rate range test (Smith, 2017): which learning rate to start from.

    finder = cnnkit.train.lr_find(model, train_set)
    finder.suggestion          # where the loss falls fastest
    finder.plot()

See: notebooks/05_training.ipynb
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from cnnkit.batches import as_loader, split_batch
from cnnkit.core import get_device, require_float, require_int

__all__ = ["lr_find", "LRFinderResult"]


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]                     # smoothed training loss at each learning rate

    @property
    def suggestion(self) -> float:
        """The learning rate where the smoothed loss falls fastest (steepest descent)."""
        if len(self.losses) < 3:
            raise ValueError("too few points to suggest a learning rate")
        logs = np.log10(self.lrs)
        slopes = np.gradient(np.asarray(self.losses), logs)
        return float(self.lrs[int(np.argmin(slopes))])

    def plot(self, title: str | None = "learning-rate range test"):
        from cnnkit.plot import new_figure
        fig = new_figure(figsize=(6, 3.8), layout="constrained")
        ax = fig.subplots()
        ax.semilogx(self.lrs, self.losses)
        ax.axvline(self.suggestion, color="tab:red", ls="--", label=f"steepest descent: {self.suggestion:.1e}")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss (smoothed)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        if title:
            ax.set_title(title)
        return fig


def lr_find(model: nn.Module, train, *, start_lr: float = 1e-6, end_lr: float = 1.0, num_iter: int = 100,
            optimizer: torch.optim.Optimizer | None = None, loss_fn: Callable | None = None,
            batch_size: int = 64, device=None, smoothing: float = 0.05, diverge: float = 4.0) -> LRFinderResult:
    """Learning-rate range test (Smith, 2017): raise the learning rate exponentially from
    start_lr to end_lr over num_iter batches, record the loss, stop when it explodes.

    The model and optimizer are restored afterwards. Pick a learning rate a little
    below where the loss falls fastest (``result.suggestion``), well before it blows up.
    """
    start_lr = require_float(start_lr, "start_lr", positive=True)
    end_lr = require_float(end_lr, "end_lr", positive=True)
    if start_lr >= end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    num_iter = require_int(num_iter, "num_iter", minimum=3)
    loader = as_loader(train, batch_size, shuffle=True, name="train")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=start_lr, momentum=0.9)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_opt = optimizer.state_dict()
    factor = (end_lr / start_lr) ** (1 / (num_iter - 1))
    lrs, losses, smooth, best = [], [], None, math.inf
    model.train()
    try:
        batches = iter(loader)
        for i in range(num_iter):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            lr = start_lr * factor ** i
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = split_batch(batch, device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            smooth = value if smooth is None else smoothing * value + (1 - smoothing) * smooth
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            if not math.isfinite(value) or smooth > diverge * best:
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
    return LRFinderResult(lrs, losses)
