"""Batch normalization and layer normalization from scratch, checked against PyTorch.

    batch_norm: normalise each feature (channel) over the batch   -- "by columns"
    layer_norm: normalise each example over its features          -- "by rows"

Same signatures and numbers as ``torch.nn.functional.batch_norm`` /
``layer_norm``; the modules have the same ``state_dict`` keys as ``torch.nn``,
so a torch state loads into them.

See: notebooks/03_normalization.ipynb
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from cnnkit.core import require_int

__all__ = ["batch_norm", "layer_norm", "BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _check_param(t, name: str, channels: int) -> None:
    if t is not None and tuple(t.shape) != (channels,):
        raise ValueError(f"{name} must have shape ({channels},) to match the {channels} channels of x, "
                         f"got {tuple(t.shape)}")


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each channel over the batch (and spatial positions), like ``F.batch_norm``.

    x: (N, C), (N, C, L) or (N, C, H, W) -> same shape.
    training=True: use this batch's mean and (biased) variance, and update the
    running statistics in place: r <- (1 - momentum) * r + momentum * batch_stat,
    with the *unbiased* variance for running_var (as PyTorch does).
    training=False: use the running statistics.
    y = (x - mean) / sqrt(var + eps) * weight + bias
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must be (N, C) or (N, C, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_param(t, name, c)
    dims = [0] + list(range(2, x.dim()))              # every axis except the channel axis
    shape = [1, c] + [1] * (x.dim() - 2)              # broadcast a (C,) vector over x
    if training:
        count = x.numel() // c
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{tuple(x.shape)} (use eval mode, or a batch of at least 2)")
        mean = x.mean(dim=dims)                                     # (C,)
        var = x.var(dim=dims, unbiased=False)                        # (C,) biased: used to normalise
        if running_mean is not None or running_var is not None:
            with torch.no_grad():
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                if running_var is not None:
                    unbiased = var.detach() * count / (count - 1)
                    running_var.mul_(1 - momentum).add_(momentum * unbiased)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are needed when training=False")
        mean, var = running_mean, running_var
    y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def layer_norm(x: torch.Tensor, normalized_shape: Union[int, Sequence[int]],
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """Normalise each example over its last dims (``normalized_shape``), like ``F.layer_norm``.

    x: (..., *normalized_shape) -> same shape; statistics are per example, so
    training and evaluation behave the same and the batch size does not matter.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(x.shape[-len(shape):]) != shape or x.dim() < len(shape):
        raise ValueError(f"normalized_shape {shape} must match the last dims of x, got x of shape "
                         f"{tuple(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    dims = list(range(x.dim() - len(shape), x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class _BatchNorm(nn.Module):
    """Shared by BatchNorm1d / BatchNorm2d: parameters, buffers and the forward pass."""

    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        num_features = require_int(num_features, "num_features", minimum=1)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))    # gamma
            self.bias = nn.Parameter(torch.zeros(num_features))     # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if x.dim() not in self._dims:
            raise ValueError(f"{name} expects a {' or '.join(f'{d}-d' for d in self._dims)} input, "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}({self.num_features}) got an input with {x.shape[1]} channels "
                             f"(shape {tuple(x.shape)})")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as in torch
                momentum = 1.0 / float(self.num_batches_tracked)
        # Batch statistics when training, or when there are no running ones to use.
        use_batch = self.training or self.running_mean is None
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          use_batch, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm for (N, C) or (N, C, L) inputs; same state_dict keys as torch.nn.BatchNorm1d."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm for (N, C, H, W) inputs; same state_dict keys as torch.nn.BatchNorm2d."""

    _dims = (4,)


class LayerNorm(nn.Module):
    """Layer norm over the last dims; same state_dict keys as torch.nn.LayerNorm."""

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        self.normalized_shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                                 else tuple(normalized_shape))
        self.eps = eps
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
