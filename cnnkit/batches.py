"""From datasets to batches: the small plumbing shared by fit, evaluate, predict,
lr_find and test-time augmentation.

See: notebooks/05_training.ipynb
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch.utils.data import DataLoader, Dataset

from cnnkit.core import require_int

__all__ = ["as_loader", "input_batches", "split_batch", "count_correct"]


def as_loader(data, batch_size: int = 64, shuffle: bool = False,
              name: str = "data") -> DataLoader:
    """A DataLoader as it is, or a Dataset wrapped in one."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                     and not isinstance(data, torch.Tensor)):
        batch_size = require_int(batch_size, "batch_size", minimum=1)
        if len(data) == 0:
            raise ValueError(f"{name} is empty")
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle)
    raise TypeError(f"{name} must be a torch Dataset or DataLoader, got {type(data).__name__}")


def input_batches(data, batch_size: int = 256) -> Iterable[torch.Tensor]:
    """The inputs of `data`, batch by batch, in order: slices of a tensor (N, ...), or the
    first element of each batch of a Dataset / DataLoader of (input, target) pairs."""
    if isinstance(data, torch.Tensor):
        yield from data.split(require_int(batch_size, "batch_size", minimum=1))
        return
    for batch in as_loader(data, batch_size, shuffle=False):
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def split_batch(batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of one batch, moved to `device`."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError("each batch must be a pair (inputs, targets); "
                        f"got {type(batch).__name__}")
    x, y = batch[0], batch[1]
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def count_correct(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Number of right answers (a 0-d tensor), if this is classification with class-index
    targets: output (N, K), target (N,) integers. None otherwise (e.g. regression)."""
    if output.dim() == 2 and target.dim() == 1 and not target.is_floating_point():
        return (output.argmax(dim=1) == target).sum()
    return None
