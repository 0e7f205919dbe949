"""Max and average pooling from scratch, with torch's semantics (re-exported by cnnkit.conv).

Windows are a strided view of the padded input, as in im2col. max_pool2d picks the
winning element of each window exactly as torch does (first maximum on ties) and
reads it with ``gather``, so the gradient goes to that one element; avg_pool2d uses
torch's divisor rules. Checked against torch's OpInfo samples in tests/test_conv_opinfo.py.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.conv import IntOrPair, _as_batch, _pair, _unfold
from cnnkit.core import require_int

__all__ = ["pool_output_size", "max_pool2d", "avg_pool2d"]


def pool_output_size(size: int, kernel_size: int, stride: int | None = None,
                     padding: int = 0, dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output side of a pooling layer along one axis (stride defaults to kernel_size).

    O = floor((I + 2P - K_eff) / S) + 1, K_eff = D (K - 1) + 1; the notes' formula is P = 0, D = 1.
    ceil_mode rounds up instead, but (torch's rule) the last window must start inside
    the input or the left padding: if (O - 1) S >= I + P, O is reduced by one.
    Padding may be at most half the kernel (torch's rule, whatever the dilation): P <= K // 2.
    """
    size = require_int(size, "size", minimum=1)
    kernel_size = require_int(kernel_size, "kernel_size", minimum=1)
    stride = kernel_size if stride is None else require_int(stride, "stride", minimum=1)
    padding = require_int(padding, "padding", minimum=0)
    dilation = require_int(dilation, "dilation", minimum=1)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    k_eff = dilation * (kernel_size - 1) + 1
    if padding > kernel_size // 2:  # torch checks the kernel itself, not the dilated window
        raise ValueError(
            f"padding should be at most half of kernel_size, got padding={padding} "
            f"and kernel_size={kernel_size}"
        )
    out = (size + 2 * padding - k_eff + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: drop it
    if out < 1:
        raise ValueError(
            f"kernel_size {kernel_size} (effective {k_eff} with dilation {dilation}) is larger than "
            f"the padded input {size} + 2*{padding} = {size + 2 * padding}: output size would be {out}"
        )
    return out


def _pool_setup(x, kernel_size, stride, padding, dilation, ceil_mode, pad_value):
    """Check the arguments and cut x into windows.

    Returns (x batched, unbatched, windows (N, C, H', W', K_h*K_w) as a view of the padded
    input, flat (H', W', K_h*K_w) = the index h*W + w of each window element in the
    unpadded input, valid (H', W', K_h*K_w) = False where the element is padding, and
    the per-axis (start, end) window bounds for the average's divisor).
    """
    x, unbatched = _as_batch(x, "x")
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = (kh, kw) if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    n, c, h, w = x.shape
    out_h = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    out_w = pool_output_size(w, kw, sw, pw, dw, ceil_mode)

    # With ceil_mode the last window may run past the right padding: pad enough for it.
    bottom = max(ph, (out_h - 1) * sh + dh * (kh - 1) + 1 - h - ph)
    right = max(pw, (out_w - 1) * sw + dw * (kw - 1) + 1 - w - pw)
    xp = F.pad(x, (pw, right, ph, bottom), value=pad_value)
    windows = _unfold(xp, (kh, kw), (sh, sw), (dh, dw), (out_h, out_w))  # (N, C, K_h, K_w, H', W')
    windows = windows.permute(0, 1, 4, 5, 2, 3).reshape(n, c, out_h, out_w, kh * kw)

    dev = x.device
    rows = torch.arange(out_h, device=dev)[:, None] * sh - ph + torch.arange(kh, device=dev) * dh  # (H', K_h)
    cols = torch.arange(out_w, device=dev)[:, None] * sw - pw + torch.arange(kw, device=dev) * dw  # (W', K_w)
    flat = rows[:, None, :, None] * w + cols[None, :, None, :]          # (H', W', K_h, K_w)
    valid = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[None, :, None, :]
    shape = (out_h, out_w, kh * kw)
    return (x, unbatched, windows, flat.reshape(shape), valid.reshape(shape),
            (out_h, out_w), (kh, kw), (sh, sw), (ph, pw))


def max_pool2d(x: torch.Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over each window, like ``F.max_pool2d``: same values, same indices, same gradient.

    (N, C, H, W) or (C, H, W) -> (N, C, H', W'), H' = floor((H + 2P - D(K-1) - 1) / S) + 1
    (ceil with ceil_mode, see pool_output_size); S defaults to K; padding is never the max.
    Ties: the output is one input element, and only that element gets the gradient:
    the FIRST maximum of the window in row-major order (top row first, left to right),
    which is torch's rule (its kernel keeps a value only if it is strictly greater than the
    best so far; tests/test_conv.py checks it on tied inputs). A NaN wins (the last one, as in torch).
    return_indices=True also returns that element's index h * W + w in its (H, W) plane.
    Integer tensors work as in torch; bool raises NotImplementedError as torch does.
    """
    x, unbatched = _as_batch(x, "x")
    if x.dtype == torch.bool:
        raise NotImplementedError('"max_pool2d" not implemented for \'Bool\'')
    if not isinstance(return_indices, bool):
        raise TypeError(f"return_indices must be True or False, got {return_indices!r}")
    lowest = float("-inf") if x.is_floating_point() else torch.iinfo(x.dtype).min   # padding never wins
    x, _, windows, flat, valid, (out_h, out_w), *_ = _pool_setup(
        x, kernel_size, stride, padding, dilation, ceil_mode, lowest)
    n, c, h, w = x.shape

    with torch.no_grad():  # choose WHICH element wins; the value is then read from x itself
        best = windows.masked_fill(~valid, lowest).amax(dim=-1, keepdim=True)   # (N, C, H', W', 1)
        is_best = (windows == best) & valid
        pick = is_best.to(torch.uint8).argmax(dim=-1)                 # first maximum in the window
        if x.is_floating_point():
            is_nan = windows.isnan() & valid
            last_nan = is_nan.shape[-1] - 1 - is_nan.flip(-1).to(torch.uint8).argmax(dim=-1)
            pick = torch.where(is_nan.any(dim=-1), last_nan, pick)
        indices = flat.expand(n, c, *flat.shape).gather(-1, pick.unsqueeze(-1)).squeeze(-1)  # (N, C, H', W')

    # Reading the winners with gather routes the whole gradient to them (scatter-add backward).
    out = x.reshape(n, c, h * w).gather(2, indices.reshape(n, c, -1)).reshape(n, c, out_h, out_w)
    if unbatched:
        out, indices = out[0], indices[0]
    return (out, indices) if return_indices else out


def avg_pool2d(x: torch.Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> torch.Tensor:
    """Mean over each window, like ``F.avg_pool2d``.

    (N, C, H, W) or (C, H, W) -> (N, C, H', W'), sizes as max_pool2d (no dilation).
    The divisor of each window (torch's rule): divisor_override if given; else the window's
    area clipped to the padded input (count_include_pad=True, zero padding counted) or
    to the input itself (count_include_pad=False). int64 input: integer division
    truncated toward zero, as torch; other integer types raise NotImplementedError as torch does.
    """
    if isinstance(x, torch.Tensor) and not (x.is_floating_point() or x.dtype == torch.int64):
        dtype_name = {torch.uint8: "Byte", torch.int8: "Char", torch.int16: "Short",
                      torch.int32: "Int", torch.bool: "Bool"}.get(x.dtype, str(x.dtype))
        raise NotImplementedError(f'"avg_pool2d" not implemented for \'{dtype_name}\'')
    for name, flag in (("count_include_pad", count_include_pad),):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if divisor_override is not None:
        divisor_override = require_int(divisor_override, "divisor_override")
        if divisor_override == 0:
            raise ValueError("divisor_override must not be zero")
    x, unbatched, windows, flat, valid, (out_h, out_w), (kh, kw), (sh, sw), (ph, pw) = _pool_setup(
        x, kernel_size, stride, padding, 1, ceil_mode, 0)
    sums = windows.sum(dim=-1)                                        # (N, C, H', W'); padding adds 0

    if divisor_override is not None:
        divisor = torch.full((out_h, out_w), divisor_override, device=x.device)
    elif count_include_pad:
        # the window clipped to the padded input [-P, I + P): only ceil_mode windows get clipped
        h_start = torch.arange(out_h, device=x.device) * sh - ph
        w_start = torch.arange(out_w, device=x.device) * sw - pw
        h_len = torch.minimum(h_start + kh, torch.tensor(x.shape[2] + ph)) - h_start
        w_len = torch.minimum(w_start + kw, torch.tensor(x.shape[3] + pw)) - w_start
        divisor = h_len[:, None] * w_len[None, :]                     # (H', W')
    else:
        divisor = valid.sum(dim=-1)                                   # real pixels only
    if x.is_floating_point():
        out = sums / divisor.to(x.dtype)
    else:
        out = torch.div(sums, divisor, rounding_mode="trunc")
    return out[0] if unbatched else out
