"""Figures for the notebooks: image grids, filters, feature maps, training curves.

Every function returns a matplotlib Figure (shown when it is the last line of
a notebook cell; ``fig.savefig("name.png")`` saves it). The figures are not
registered with pyplot, so a cell never shows the same figure twice.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt  # noqa: F401  (sets up inline display of Figures in notebooks)
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["show_images", "show_filters", "show_feature_maps", "plot_history",
           "compare_histories", "show_matrix", "show_conv_windows", "decision_boundary"]


def _to_numpy_images(images) -> np.ndarray:
    """Tensor/array (N, C, H, W), (N, H, W) or list of (C, H, W) -> (N, H, W) or (N, H, W, 3)."""
    if isinstance(images, (list, tuple)):
        images = torch.stack([torch.as_tensor(np.asarray(im)) for im in images])
    arr = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4:
        if arr.shape[1] == 1:
            arr = arr[:, 0]
        elif arr.shape[1] == 3:
            arr = arr.transpose(0, 2, 3, 1)
        elif arr.shape[-1] in (1, 3):
            arr = arr[..., 0] if arr.shape[-1] == 1 else arr
        else:
            raise ValueError(f"images must have 1 or 3 channels, got shape {images.shape}")
    if arr.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got shape {tuple(arr.shape)}")
    return arr


def _grid(n: int, ncols: int, cell: float = 1.4, extra_h: float = 0.0):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell * ncols, cell * nrows + extra_h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def show_images(images, labels: Sequence | None = None, preds: Sequence | None = None,
                classes: Sequence[str] | None = None, ncols: int = 8,
                title: str | None = None, cmap: str = "gray",
                vmin: float | None = None, vmax: float | None = None) -> Figure:
    """A grid of images with optional labels; with `preds`, wrong ones are titled in red.

    images: (N, 1 or 3, H, W), (N, H, W), or a list of such images.
    """
    arr = _to_numpy_images(images)
    n = len(arr)
    if n == 0:
        raise ValueError("images is empty")
    fig, axes = _grid(n, ncols, extra_h=0.4 if title else 0.0)
    name = (lambda k: classes[int(k)]) if classes is not None else (lambda k: str(int(k)))
    for i, (ax, im) in enumerate(zip(axes, arr)):
        ax.imshow(im, cmap=cmap if im.ndim == 2 else None, vmin=vmin, vmax=vmax)
        if labels is not None and preds is not None:
            ok = int(labels[i]) == int(preds[i])
            ax.set_title(f"{name(preds[i])}" if ok else f"{name(preds[i])} (true {name(labels[i])})",
                         fontsize=8, color="black" if ok else "red")
        elif labels is not None:
            ax.set_title(name(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def show_filters(weight: torch.Tensor, ncols: int = 8, title: str | None = None,
                 cmap: str = "RdBu_r") -> Figure:
    """Convolution kernels (C_out, C_in, K_h, K_w): one panel per output channel.

    RGB kernels (C_in = 3) are shown in colour, rescaled to [0, 1]; otherwise
    the first input channel is shown with a diverging colour map centred at 0.
    """
    w = weight.detach().cpu().float()
    if w.dim() != 4:
        raise ValueError(f"weight must be (C_out, C_in, K_h, K_w), got shape {tuple(w.shape)}")
    fig, axes = _grid(w.shape[0], ncols, cell=1.0, extra_h=0.4 if title else 0.0)
    for ax, k in zip(axes, w):
        if k.shape[0] == 3:
            k = (k - k.min()) / (k.max() - k.min() + 1e-8)
            ax.imshow(k.permute(1, 2, 0).numpy())
        else:
            lim = float(k[0].abs().max()) or 1.0
            ax.imshow(k[0].numpy(), cmap=cmap, vmin=-lim, vmax=lim)
    if title:
        fig.suptitle(title)
    return fig


def show_feature_maps(maps: torch.Tensor, ncols: int = 8, title: str | None = None,
                      cmap: str = "viridis") -> Figure:
    """Activations of one image, (C, H, W) or (1, C, H, W): one panel per channel."""
    m = maps.detach().cpu().float()
    if m.dim() == 4 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 3:
        raise ValueError(f"maps must be (C, H, W) or (1, C, H, W), got shape {tuple(maps.shape)}")
    fig, axes = _grid(m.shape[0], ncols, cell=1.2, extra_h=0.4 if title else 0.0)
    for c, (ax, fmap) in enumerate(zip(axes, m)):
        ax.imshow(fmap.numpy(), cmap=cmap)
        ax.set_title(f"ch {c}", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_history(history, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, train vs validation, from a cnnkit History."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = np.arange(1, history.epochs + 1)
    ax_loss.plot(epochs, history.train_loss, "o-", label="train")
    ax_acc.plot(epochs, history.train_acc, "o-", label="train")
    if history.val_loss:
        ax_loss.plot(epochs[:len(history.val_loss)], history.val_loss, "s-", label="validation")
        ax_acc.plot(epochs[:len(history.val_acc)], history.val_acc, "s-", label="validation")
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
        if history.epochs:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return fig


def compare_histories(histories: dict, metric: str = "val_acc", title: str | None = None) -> Figure:
    """One curve of `metric` per run, e.g. {"with BN": h1, "without": h2}."""
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    for name, h in histories.items():
        values = getattr(h, metric)
        ax.plot(np.arange(1, len(values) + 1), values, "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def show_matrix(ax, matrix, title: str | None = None, cmap: str = "Blues",
                fmt: str = "{:g}", highlight=None) -> None:
    """Draw a small matrix with its numbers in the cells (for worked examples).

    highlight: optional (top, left, height, width) box drawn in red.
    """
    m = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, dtype=float)
    finite = m[~np.isnan(m)] if np.isfinite(m).any() else np.zeros(1)
    ax.imshow(m, cmap=cmap, vmin=min(finite.min(), 0), vmax=finite.max() * 1.6 + 1e-9)
    for (i, j), v in np.ndenumerate(m):
        if not np.isnan(v):  # NaN cells are left blank ("not computed yet")
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    if highlight is not None:
        top, left, h, w = highlight
        ax.add_patch(matplotlib.patches.Rectangle((left - 0.5, top - 0.5), w, h, fill=False,
                                                  edgecolor="red", linewidth=2.5))
    if title:
        ax.set_title(title)


def show_conv_windows(ax, size: int = 7, kernel_size: int = 3, stride: int = 1,
                      padding: int = 0, dilation: int = 1, windows: int = 2) -> None:
    """Draw a size x size input (grey), its zero padding (white) and the pixels
    read by the first `windows` kernel positions along the top row (coloured dots)."""
    from cnnkit.conv import conv_output_size
    full = size + 2 * padding
    for r in range(full):
        for c in range(full):
            inside = padding <= r < padding + size and padding <= c < padding + size
            ax.add_patch(matplotlib.patches.Rectangle(
                (c - 0.5, r - 0.5), 1, 1, facecolor="0.8" if inside else "white",
                edgecolor="0.5", linestyle="-" if inside else ":", linewidth=0.8))
    colours, markers = ["tab:red", "tab:blue", "tab:green"], ["o", "s", "^"]
    for w in range(windows):
        for u in range(kernel_size):
            for v in range(kernel_size):
                ax.plot(w * stride + v * dilation + 0.15 * (w - (windows - 1) / 2), u * dilation,
                        markers[w % 3], color=colours[w % 3], markersize=7,
                        label=f"window {w + 1}" if u == v == 0 else None)
    out = conv_output_size(size, kernel_size, stride, padding, dilation)
    ax.set_xlim(-0.6, full - 0.4)
    ax.set_ylim(full - 0.4, -0.6)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"K={kernel_size}, S={stride}, P={padding}, D={dilation}\n"
                 f"{size}x{size} -> {out}x{out}", fontsize=10)


def decision_boundary(predict, x: torch.Tensor, y: torch.Tensor, ax=None, title: str | None = None,
                      resolution: int = 150, margin: float = 0.5):
    """Shade P(class 1) over the plane, draw the 0.5 contour and the points.

    predict: a function from a (M, 2) float tensor to M probabilities of class 1.
    Returns the Figure (a new one unless `ax` is given).
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    lo, hi = x.min(0).values - margin, x.max(0).values + margin
    g0, g1 = torch.meshgrid(torch.linspace(float(lo[0]), float(hi[0]), resolution),
                            torch.linspace(float(lo[1]), float(hi[1]), resolution), indexing="xy")
    grid = torch.stack([g0.flatten(), g1.flatten()], 1)                   # (M, 2)
    with torch.no_grad():
        p = torch.as_tensor(predict(grid), dtype=torch.float32).reshape(g0.shape)
    fig = None
    if ax is None:
        fig = Figure(figsize=(4.5, 4), layout="constrained")
        ax = fig.subplots()
    ax.contourf(g0, g1, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.35)
    ax.contour(g0, g1, p, levels=[0.5], colors="k", linewidths=1.5)
    ax.scatter(x[:, 0], x[:, 1], c=np.asarray(y), cmap="bwr", edgecolors="k", s=18, linewidths=0.5)
    ax.set_xlim(float(lo[0]), float(hi[0]))
    ax.set_ylim(float(lo[1]), float(hi[1]))
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure
