"""Convolution and pooling from scratch, checked against PyTorch.

Nothing here calls ``F.conv2d``, ``F.unfold`` or ``torch.conv2d``: a convolution
is built from padding, strided views and one matrix product, so you can read
every step. Autograd flows through all of it.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

IntOrPair = Union[int, Sequence[int]]

__all__ = [
    "conv_output_size",
    "pool_output_size",
    "conv_params",
    "im2col",
    "conv2d",
    "conv2d_naive",
    "max_pool2d",
    "avg_pool2d",
    "receptive_field",
]


# ----------------------------------------------------------------------------
# Argument checking: every public function goes through these, so a bad
# argument always gets a message that names it.
# ----------------------------------------------------------------------------

def _pair(value: IntOrPair, name: str, minimum: int) -> tuple[int, int]:
    """Turn an int or a pair of ints into a pair, checking each is >= minimum."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, (tuple, list, torch.Size)) and len(value) == 2:
        pair = tuple(value)
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair  # type: ignore[return-value]


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

def conv_output_size(size: int, kernel_size: int, stride: int = 1,
                     padding: int = 0, dilation: int = 1) -> int:
    """Output side of a convolution along one axis.

    O = floor((I + 2P - K_eff) / S) + 1,  with K_eff = D (K - 1) + 1.
    For D = 1 this is the notes' O = (I - K + 2P) / S + 1.
    """
    for name, value, minimum in (("size", size, 1), ("kernel_size", kernel_size, 1),
                                 ("stride", stride, 1), ("padding", padding, 0),
                                 ("dilation", dilation, 1)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    k_eff = dilation * (kernel_size - 1) + 1
    if size + 2 * padding < k_eff:
        raise ValueError(
            f"kernel_size {kernel_size} (effective {k_eff} with dilation {dilation}) "
            f"is larger than the padded input {size} + 2*{padding} = {size + 2 * padding}"
        )
    return (size + 2 * padding - k_eff) // stride + 1


def pool_output_size(size: int, kernel_size: int, stride: int | None = None,
                     padding: int = 0) -> int:
    """Output side of a pooling layer along one axis (stride defaults to kernel_size).

    O = floor((I + 2P - P_s) / S) + 1; the notes' formula is the case P = 0.
    """
    stride = kernel_size if stride is None else stride
    if isinstance(kernel_size, int) and isinstance(padding, int) and padding * 2 > kernel_size:
        raise ValueError(
            f"padding should be at most half of kernel_size, got padding={padding} "
            f"and kernel_size={kernel_size}"
        )
    return conv_output_size(size, kernel_size, stride, padding, 1)


def conv_params(in_channels: int, out_channels: int, kernel_size: IntOrPair,
                bias: bool = True) -> int:
    """Number of learnable parameters of a Conv2d layer.

    (K_h * K_w * C_in + 1) * C_out with a bias; one kernel spans all input channels
    and yields one output channel, and each output channel has one bias.
    """
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    return (kh * kw * in_channels + int(bool(bias))) * out_channels


# ----------------------------------------------------------------------------
# im2col and convolution
# ----------------------------------------------------------------------------

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

    xp = F.pad(x, (pw, pw, ph, ph)).contiguous()         # (N, C, H + 2P, W + 2P)
    sN, sC, sH, sW = xp.stride()
    # A strided view: patches[n, c, i, j, y, x] = xp[n, c, y*S + i*D, x*S + j*D].
    patches = xp.as_strided(
        size=(n, c, kh, kw, out_h, out_w),
        stride=(sN, sC, sH * dh, sW * dw, sH * sh, sW * sw),
    )                                                    # (N, C, K_h, K_w, H', W')
    return patches.reshape(n, c * kh * kw, out_h * out_w)  # (N, C*K_h*K_w, L)


def _check_conv_args(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    _check_4d(x, "x")
    _check_4d(weight, "weight")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"channel mismatch: x has {x.shape[1]} channels but weight expects "
            f"{weight.shape[1]} (weight shape is (C_out, C_in, K_h, K_w) = {tuple(weight.shape)})"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"bias must have shape ({weight.shape[0]},) to match weight's out channels, "
            f"got {tuple(bias.shape)}"
        )


def _conv_geometry(x, weight, bias, stride, padding, dilation):
    """Check the arguments; return the kernel, stride, padding and dilation pairs and (H', W')."""
    _check_conv_args(x, weight, bias)
    kh, kw = weight.shape[2:]
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    out_h = conv_output_size(x.shape[2], kh, sh, ph, dh)
    out_w = conv_output_size(x.shape[3], kw, sw, pw, dw)
    return (kh, kw), (sh, sw), (ph, pw), (dh, dw), (out_h, out_w)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: IntOrPair = 1, padding: IntOrPair = 0,
           dilation: IntOrPair = 1) -> torch.Tensor:
    """2-d convolution (really cross-correlation, as in PyTorch) via im2col + matmul.

    x: (N, C_in, H, W), weight: (C_out, C_in, K_h, K_w), bias: (C_out,)
    -> (N, C_out, H', W') with H' = floor((H + 2P - D(K-1) - 1) / S) + 1.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (out_h, out_w) = _conv_geometry(
        x, weight, bias, stride, padding, dilation)
    n, c_out = x.shape[0], weight.shape[0]

    cols = im2col(x, (kh, kw), (sh, sw), (ph, pw), (dh, dw))  # (N, C_in*K_h*K_w, L)
    out = weight.reshape(c_out, -1) @ cols                   # (N, C_out, L)
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1)
    return out.reshape(n, c_out, out_h, out_w)                # (N, C_out, H', W')


def conv2d_naive(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride: IntOrPair = 1, padding: IntOrPair = 0,
                 dilation: IntOrPair = 1) -> torch.Tensor:
    """The same convolution with explicit loops over output pixels: slow, for reading.

    out[n, f, y, x] = bias[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, y*S + i*D, x*S + j*D]
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (out_h, out_w) = _conv_geometry(
        x, weight, bias, stride, padding, dilation)
    c_out = weight.shape[0]
    xp = F.pad(x, (pw, pw, ph, ph))

    rows = []
    for y in range(out_h):
        row = []
        for x_ in range(out_w):
            top, left = y * sh, x_ * sw
            patch = xp[:, :, top:top + dh * (kh - 1) + 1:dh,
                       left:left + dw * (kw - 1) + 1:dw]          # (N, C_in, K_h, K_w)
            # every kernel against the same patch: (N, 1, C, Kh, Kw) * (1, F, C, Kh, Kw)
            row.append((patch.unsqueeze(1) * weight.unsqueeze(0)).sum(dim=(2, 3, 4)))  # (N, C_out)
        rows.append(torch.stack(row, dim=-1))                      # (N, C_out, W')
    out = torch.stack(rows, dim=-2)                                # (N, C_out, H', W')
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out


# ----------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------

def _pool_windows(x: torch.Tensor, kernel_size: IntOrPair, stride: IntOrPair | None,
                  padding: IntOrPair, pad_value: float) -> torch.Tensor:
    """All pooling windows as a view: (N, C, H, W) -> (N, C, H', W', K_h * K_w)."""
    _check_4d(x)
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"padding should be at most half of kernel_size, got padding={padding!r} "
            f"and kernel_size={kernel_size!r}"
        )
    n, c, h, w = x.shape
    out_h = pool_output_size(h, kh, sh, ph)
    out_w = pool_output_size(w, kw, sw, pw)
    xp = F.pad(x, (pw, pw, ph, ph), value=pad_value).contiguous()
    sN, sC, sH, sW = xp.stride()
    windows = xp.as_strided(
        size=(n, c, out_h, out_w, kh, kw),
        stride=(sN, sC, sH * sh, sW * sw, sH, sW),
    )                                                    # (N, C, H', W', K_h, K_w)
    return windows.reshape(n, c, out_h, out_w, kh * kw)


def max_pool2d(x: torch.Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
               padding: IntOrPair = 0) -> torch.Tensor:
    """Max over each window, like ``F.max_pool2d`` (padding counts as -inf).

    (N, C, H, W) -> (N, C, H', W'), H' = floor((H + 2P - K) / S) + 1, S defaults to K.
    """
    return _pool_windows(x, kernel_size, stride, padding, float("-inf")).amax(dim=-1)


def avg_pool2d(x: torch.Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
               padding: IntOrPair = 0) -> torch.Tensor:
    """Mean over each window, like ``F.avg_pool2d`` (zero padding counted in the mean).

    (N, C, H, W) -> (N, C, H', W'), H' = floor((H + 2P - K) / S) + 1, S defaults to K.
    """
    return _pool_windows(x, kernel_size, stride, padding, 0.0).mean(dim=-1)


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
