"""Convolution and pooling from scratch, checked against PyTorch.

Nothing here calls ``F.conv2d``, ``F.unfold`` or ``torch.conv2d``: a convolution
is built from padding, strided views and one matrix product, so you can read
every step. Autograd flows through all of it. The semantics are torch's, argument
for argument (groups, 'same'/'valid' padding, unbatched input, ceil_mode,
return_indices, count_include_pad, divisor_override, integer dtypes), checked
against torch's own OpInfo samples in tests/test_conv_opinfo.py. Pooling is in
cnnkit/pooling.py and re-exported here (conv.max_pool2d, conv.avg_pool2d).

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.core import require_int

IntOrPair = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int], str]

__all__ = [
    "conv_output_size",
    "conv_params",
    "im2col",
    "conv2d",
    "conv2d_naive",
    "receptive_field",
    # from cnnkit.pooling (see __getattr__ at the end)
    "pool_output_size",
    "max_pool2d",
    "avg_pool2d",
]


# ----------------------------------------------------------------------------
# Argument checking: every public function goes through these, so a bad
# argument always gets a message that names it. Anything torch accepts as an
# int (Python ints, NumPy integers) is accepted; bools and floats are not
# (cnnkit.core.require_int).
# ----------------------------------------------------------------------------

def _pair(value: IntOrPair, name: str, minimum: int) -> tuple[int, int]:
    """An int, or a sequence of one or two ints (torch's rule), as a pair of ints >= minimum."""
    items = tuple(value) if isinstance(value, (tuple, list, torch.Size)) else (value, value)
    if len(items) not in (1, 2):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    try:
        first, second = (require_int(v, name) for v in items * (3 - len(items)))  # (a,) -> (a, a)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if min(first, second) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return first, second


def _as_batch(x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, bool]:
    """(N, C, H, W) stays; (C, H, W) becomes (1, C, H, W). Returns the tensor and whether it was unbatched."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(
            f"{name} must be 3-d (C, H, W) or 4-d (N, C, H, W), got shape {tuple(x.shape)}"
        )
    if 0 in x.shape[-3:]:
        raise ValueError(f"{name} must have non-zero channels, height and width, got shape {tuple(x.shape)}")
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


def _check_4d(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{name} must be 4-d (N, C, H, W), got shape {tuple(x.shape)}; "
            f"for a single image use {name}.unsqueeze(0)"
        )


# ----------------------------------------------------------------------------
# Sizes and parameter counts
# ----------------------------------------------------------------------------

def _same_padding(kernel_size: int, dilation: int) -> tuple[int, int]:
    """padding='same' along one axis: (before, after). An even total puts the extra pixel after (torch's rule)."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel_size: int, stride: int = 1,
                     padding: int | str = 0, dilation: int = 1) -> int:
    """Output side of a convolution along one axis.

    O = floor((I + 2P - K_eff) / S) + 1,  with K_eff = D (K - 1) + 1.
    For D = 1 this is the notes' O = (I - K + 2P) / S + 1. padding='valid' is P = 0;
    padding='same' (stride 1 only) pads D (K - 1) in total, so O = I.
    """
    size = require_int(size, "size", minimum=1)
    kernel_size = require_int(kernel_size, "kernel_size", minimum=1)
    stride = require_int(stride, "stride", minimum=1)
    dilation = require_int(dilation, "dilation", minimum=1)
    before, after = _resolve_padding(padding, (kernel_size,), (stride,), (dilation,))[0]
    k_eff = dilation * (kernel_size - 1) + 1
    if size + before + after < k_eff:
        raise ValueError(
            f"kernel_size {kernel_size} (effective {k_eff} with dilation {dilation}) "
            f"is larger than the padded input {size} + {before} + {after} = {size + before + after}"
        )
    return (size + before + after - k_eff) // stride + 1


def conv_params(in_channels: int, out_channels: int, kernel_size: IntOrPair,
                bias: bool = True, groups: int = 1) -> int:
    """Number of learnable parameters of a Conv2d layer.

    (K_h * K_w * C_in / G + 1) * C_out with a bias: each of the C_out kernels spans the
    C_in / G channels of its group (all of them when G = 1) and has one bias.
    A depthwise convolution is G = C_in: one K_h x K_w kernel per channel.
    """
    in_channels = require_int(in_channels, "in_channels", minimum=1)
    out_channels = require_int(out_channels, "out_channels", minimum=1)
    groups = require_int(groups, "groups", minimum=1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
            f"divisible by groups ({groups})"
        )
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    return (kh * kw * (in_channels // groups) + int(bool(bias))) * out_channels


# ----------------------------------------------------------------------------
# im2col and convolution
# ----------------------------------------------------------------------------

def _resolve_padding(padding: Padding, kernel: Sequence[int], stride: Sequence[int],
                     dilation: Sequence[int]) -> list[tuple[int, int]]:
    """padding as (before, after) per axis: an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * len(kernel)
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1 (as in torch), got stride={tuple(stride)}")
            return [_same_padding(k, d) for k, d in zip(kernel, dilation)]
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    if len(kernel) == 1:
        p = require_int(padding, "padding", minimum=0)
        return [(p, p)]
    return [(p, p) for p in _pair(padding, "padding", 0)]


def _unfold(xp: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], out_hw: tuple[int, int]) -> torch.Tensor:
    """Windows of an already padded input as a strided view: (N, C, Hp, Wp) -> (N, C, K_h, K_w, H', W')."""
    xp = xp.contiguous()
    sN, sC, sH, sW = xp.stride()
    # view[n, c, i, j, y, x] = xp[n, c, y*S + i*D, x*S + j*D]
    return xp.as_strided(
        size=(xp.shape[0], xp.shape[1], *kernel, *out_hw),
        stride=(sN, sC, sH * dilation[0], sW * dilation[1], sH * stride[0], sW * stride[1]),
    )


def im2col(x: torch.Tensor, kernel_size: IntOrPair, stride: IntOrPair = 1,
           padding: IntOrPair = 0, dilation: IntOrPair = 1) -> torch.Tensor:
    """Unfold every receptive-field patch into a column, exactly like ``F.unfold``.

    x: (N, C, H, W) -> (N, C * K_h * K_w, L), L = H' * W' patches.
    Row index c * K_h * K_w + i * K_w + j holds channel c at kernel offset (i, j).
    """
    _check_4d(x)
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    n, c, h, w = x.shape
    out_h = conv_output_size(h, kh, sh, ph, dh)
    out_w = conv_output_size(w, kw, sw, pw, dw)
    xp = F.pad(x, (pw, pw, ph, ph))                                     # (N, C, H + 2P, W + 2P)
    patches = _unfold(xp, (kh, kw), (sh, sw), (dh, dw), (out_h, out_w))  # (N, C, K_h, K_w, H', W')
    return patches.reshape(n, c * kh * kw, out_h * out_w)               # (N, C*K_h*K_w, L)


def _conv_setup(x, weight, bias, stride, padding, dilation, groups):
    """Check every argument; return the batched, padded input and the geometry.

    Returns (xp, unbatched, (K_h, K_w), (S_h, S_w), (D_h, D_w), (H', W'), groups).
    """
    x, unbatched = _as_batch(x, "x")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be 4-d (C_out, C_in / groups, K_h, K_w), got shape {tuple(weight.shape)}")
    if weight.dtype != x.dtype or (bias is not None and isinstance(bias, torch.Tensor) and bias.dtype != x.dtype):
        raise TypeError(
            f"x, weight and bias must have the same dtype, got {x.dtype}, {weight.dtype}"
            + (f", {bias.dtype}" if isinstance(bias, torch.Tensor) else "")
        )
    groups = require_int(groups, "groups", minimum=1)
    c_out, c_in_per_group, kh, kw = weight.shape
    if c_out % groups:
        raise ValueError(f"weight's out channels ({c_out}) must be divisible by groups ({groups})")
    if c_in_per_group * groups != x.shape[1]:
        raise ValueError(
            f"channel mismatch: x has {x.shape[1]} channels but weight expects "
            f"{c_in_per_group} x groups {groups} = {c_in_per_group * groups} "
            f"(weight shape is (C_out, C_in / groups, K_h, K_w) = {tuple(weight.shape)})"
        )
    if 0 in weight.shape:
        raise ValueError(f"weight must not be empty, got shape {tuple(weight.shape)}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},) to match weight's out channels, got {tuple(bias.shape)}")
    stride = _pair(stride, "stride", 1)
    dilation = _pair(dilation, "dilation", 1)
    (top, bottom), (left, right) = _resolve_padding(padding, (kh, kw), stride, dilation)
    out_h = conv_output_size(x.shape[2] + top + bottom, kh, stride[0], 0, dilation[0])
    out_w = conv_output_size(x.shape[3] + left + right, kw, stride[1], 0, dilation[1])
    xp = F.pad(x, (left, right, top, bottom))             # (N, C_in, H + P_t + P_b, W + P_l + P_r)
    return xp, unbatched, (kh, kw), stride, dilation, (out_h, out_w), groups


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: IntOrPair = 1, padding: Padding = 0, dilation: IntOrPair = 1,
           groups: int = 1) -> torch.Tensor:
    """2-d convolution (really cross-correlation, as in PyTorch) via im2col + matmul.

    x: (N, C_in, H, W) or unbatched (C_in, H, W), weight: (C_out, C_in / G, K_h, K_w),
    bias: (C_out,) -> (N, C_out, H', W') (or (C_out, H', W')),
    H' = floor((H + 2P - D(K-1) - 1) / S) + 1. padding: int, pair, 'valid' or 'same'.
    groups G splits the channels into G independent convolutions; G = C_in is a
    depthwise convolution (one kernel per channel).
    """
    xp, unbatched, (kh, kw), stride, dilation, (out_h, out_w), g = _conv_setup(
        x, weight, bias, stride, padding, dilation, groups)
    n, c_out = xp.shape[0], weight.shape[0]

    cols = _unfold(xp, (kh, kw), stride, dilation, (out_h, out_w))  # (N, C_in, K_h, K_w, H', W')
    cols = cols.reshape(n, g, -1, out_h * out_w)                     # (N, G, C_in/G*K_h*K_w, L)
    w = weight.reshape(g, c_out // g, -1)                            # (G, C_out/G, C_in/G*K_h*K_w)
    out = w @ cols                                                   # (N, G, C_out/G, L)
    out = out.reshape(n, c_out, out_h, out_w)                        # (N, C_out, H', W')
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out[0] if unbatched else out


def conv2d_naive(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: IntOrPair = 1, padding: Padding = 0, dilation: IntOrPair = 1,
                 groups: int = 1) -> torch.Tensor:
    """The same convolution with explicit loops over groups and output pixels: slow, for reading.

    out[n, f, y, x] = bias[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, g*C_g + c, y*S + i*D, x*S + j*D],
    where g = f // (C_out / G) is the group of output channel f and C_g = C_in / G.
    """
    xp, unbatched, (kh, kw), (sh, sw), (dh, dw), (out_h, out_w), g = _conv_setup(
        x, weight, bias, stride, padding, dilation, groups)
    c_out = weight.shape[0]
    c_in_g, c_out_g = xp.shape[1] // g, c_out // g

    groups_out = []
    for group in range(g):
        xg = xp[:, group * c_in_g:(group + 1) * c_in_g]               # (N, C_in/G, Hp, Wp)
        wg = weight[group * c_out_g:(group + 1) * c_out_g]            # (C_out/G, C_in/G, K_h, K_w)
        rows = []
        for y in range(out_h):
            row = []
            for x_ in range(out_w):
                top, left = y * sh, x_ * sw
                patch = xg[:, :, top:top + dh * (kh - 1) + 1:dh,
                           left:left + dw * (kw - 1) + 1:dw]          # (N, C_in/G, K_h, K_w)
                # every kernel of the group against the same patch
                row.append((patch.unsqueeze(1) * wg.unsqueeze(0)).sum(dim=(2, 3, 4)))  # (N, C_out/G)
            rows.append(torch.stack(row, dim=-1))                     # (N, C_out/G, W')
        groups_out.append(torch.stack(rows, dim=-2))                  # (N, C_out/G, H', W')
    out = torch.cat(groups_out, dim=1)                                # (N, C_out, H', W')
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out[0] if unbatched else out


# ----------------------------------------------------------------------------
# Receptive field
# ----------------------------------------------------------------------------

# Layers that act on each position separately leave the receptive field alone.
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softplus,
    nn.Identity, nn.Dropout, nn.Dropout2d, nn.BatchNorm2d, nn.InstanceNorm2d,
)


def _as_int(value, name: str, layer: nn.Module) -> int:
    """Square layers only: (3, 3) -> 3; (3, 5) raises."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(
                f"receptive_field handles square layers only; {layer} has {name}={value}"
            )
        value = value[0]
    return int(value)


def receptive_field(layers: Iterable[nn.Module]) -> int:
    """Side of the receptive field of one output unit of a stack of layers.

    Walking forward, with jump J (distance in input pixels between neighbouring
    units) starting at 1 and field R starting at 1, each layer does
        R <- R + (K_eff - 1) * J,   J <- J * S.
    Accepts an nn.Sequential or a list of Conv2d / MaxPool2d / AvgPool2d and
    element-wise layers (activations, BatchNorm, Dropout); raises ValueError
    for anything else (a Linear or Flatten sees the whole input, for instance).
    """
    if isinstance(layers, nn.Module) and not isinstance(layers, nn.Sequential):
        layers = [layers]
    field, jump = 1, 1
    for layer in layers:
        field, jump = _step(layer, field, jump)
    return field


def _step(layer: nn.Module, field: int, jump: int) -> tuple[int, int]:
    """One layer's effect on (receptive field, jump); nested Sequentials are walked."""
    if isinstance(layer, nn.Sequential):
        for sub in layer:
            field, jump = _step(sub, field, jump)
        return field, jump
    if isinstance(layer, _ELEMENTWISE):
        return field, jump
    if isinstance(layer, nn.Conv2d):
        k = _as_int(layer.kernel_size, "kernel_size", layer)
        s = _as_int(layer.stride, "stride", layer)
        d = _as_int(layer.dilation, "dilation", layer)
    elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _as_int(layer.kernel_size, "kernel_size", layer)
        s = _as_int(layer.stride if layer.stride is not None else layer.kernel_size,
                    "stride", layer)
        d = _as_int(getattr(layer, "dilation", 1), "dilation", layer)
    else:
        raise ValueError(
            f"receptive_field cannot reason about {type(layer).__name__}; it understands "
            "Conv2d, MaxPool2d, AvgPool2d and element-wise layers (activations, "
            "BatchNorm2d, Dropout)"
        )
    k_eff = d * (k - 1) + 1
    return field + (k_eff - 1) * jump, jump * s


def __getattr__(name: str):
    """Pooling lives in cnnkit/pooling.py; cnnkit.conv.max_pool2d etc. still work (PEP 562)."""
    if name in ("pool_output_size", "max_pool2d", "avg_pool2d"):
        from cnnkit import pooling
        return getattr(pooling, name)
    raise AttributeError(f"module 'cnnkit.conv' has no attribute {name!r}")
