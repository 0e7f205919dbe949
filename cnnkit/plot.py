"""Figures for the notebooks: image grids, filters, feature maps, training curves.

Every function returns a matplotlib Figure (shown as a picture when it is the last
line of a notebook cell; ``fig.savefig("name.png")`` saves it); the ones that take an
`ax` draw into it (``show_matrix`` and ``show_conv_windows`` return None). The figures
are not registered with pyplot, so a cell never shows the same figure twice.
Importing this module changes no matplotlib setting (no style, rcParams or backend).

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib
import matplotlib.patches
import matplotlib.ticker
import numpy as np
import torch
from matplotlib.figure import Figure

from cnnkit.core import eval_mode, require_int

__all__ = ["new_figure", "show_images", "show_filters", "show_feature_maps", "plot_history",
           "compare_histories", "show_matrix", "show_conv_windows", "decision_boundary",
           "layer_diagram", "block_diagram", "show_augmentations"]


def new_figure(**kwargs) -> Figure:
    """A matplotlib Figure(**kwargs) that a notebook shows as a picture when a cell returns it.

    The Figure is not registered with pyplot, so a cell never shows it twice. IPython knows
    how to draw a Figure only once pyplot's inline backend has started (otherwise a cell shows
    the text "<Figure size ...>"), so in a notebook the first call registers the PNG formatter
    for Figures, unless one is registered already. Nothing happens at import time.
    """
    _register_png_formatter()
    return Figure(**kwargs)


def _register_png_formatter() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    formatters = shell.display_formatter.formatters
    if any(Figure in formatters[mime].type_printers for mime in ("image/png", "image/svg+xml", "image/jpeg",
                                                                 "application/pdf") if mime in formatters):
        return                                        # %matplotlib inline (or the user) did it already
    from IPython.core.pylabtools import select_figure_formats
    select_figure_formats(shell, {"png"}, bbox_inches="tight")


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
    fig = new_figure(figsize=(cell * ncols, cell * nrows + extra_h), layout="constrained")
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


def show_augmentations(image: torch.Tensor, transforms, n: int = 7, seed: int = 0,
                       title: str | None = None, cell: float = 1.3) -> Figure:
    """`n` random augmentations of one image, one row per transform, the original first.

    image: (C, H, W) in [0, 1]. transforms: a callable (e.g. a torchvision.transforms.v2
    transform) or a dict {row name: transform}. The draws come from `seed` and leave the
    global random state as it was, so the figure is the same every time.
    See: notebooks/06_augmentation.ipynb
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ValueError(f"image must be a tensor (C, H, W), got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    rows = transforms if isinstance(transforms, dict) else {"augmented": transforms}
    if not rows or not all(callable(t) for t in rows.values()):
        raise TypeError("transforms must be a callable or a non-empty dict of callables")
    n = require_int(n, "n", minimum=1)
    aspect = image.shape[-2] / image.shape[-1]
    fig = new_figure(figsize=(cell * (n + 1) + 1.2, (cell * aspect + 0.1) * len(rows) + 0.3 + (0.4 if title else 0.0)),
                 layout="constrained")
    axes = fig.subplots(len(rows), n + 1, squeeze=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for r, (name, transform) in enumerate(rows.items()):
            views = [image] + [transform(image) for _ in range(n)]
            for c, (ax, view) in enumerate(zip(axes[r], views)):
                im = _to_numpy_images(view.detach().clamp(0, 1)[None])[0]    # views may differ in size
                ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1)
                ax.set_xticks([]); ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center")
                if r == 0:
                    ax.set_title("original" if c == 0 else f"draw {c}", fontsize=8)
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
    fig = new_figure(figsize=(10, 3.6), layout="constrained")
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
        _epoch_axis(ax, history.epochs)
    if title:
        fig.suptitle(title)
    return fig


def _epoch_axis(ax, n_epochs: int) -> None:
    """Whole-number epoch ticks, with half an epoch of margin (one epoch reads "1", not 0.95-1.05)."""
    if n_epochs:
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))


def compare_histories(histories: dict, metric: str = "val_acc", title: str | None = None) -> Figure:
    """One curve of `metric` per run, e.g. {"with BN": h1, "without": h2}."""
    fig = new_figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    for name, h in histories.items():
        values = getattr(h, metric)
        ax.plot(np.arange(1, len(values) + 1), values, "o-", label=name)
    _epoch_axis(ax, max((len(getattr(h, metric)) for h in histories.values()), default=0))
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
        fig = new_figure(figsize=(4.5, 4), layout="constrained")
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


def _box(ax, x, y, text, w=1.6, h=0.6, color="#dbe9f6"):
    ax.add_patch(matplotlib.patches.FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03",
                                                   facecolor=color, edgecolor="0.3"))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, start, end, **kw):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="0.35", lw=1.2, **kw))


def layer_diagram(model, input_size, title: str | None = None, max_layers: int = 30) -> Figure:
    """A left-to-right block diagram of a Sequential-like model: one box per top-level
    layer with its type and output shape (from one forward pass on zeros)."""
    children = list(model.named_children())
    if not children or len(children) > max_layers:
        raise ValueError(f"layer_diagram draws models with 1..{max_layers} top-level layers, got {len(children)}")
    shapes, hooks = {}, []
    for name, child in children:
        hooks.append(child.register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))))
    try:
        with eval_mode(model):
            model(torch.zeros(*input_size))
    finally:
        for h in hooks:
            h.remove()
    colours = {"Conv2d": "#f4c7a1", "Linear": "#c9e4c5", "MaxPool2d": "#dbe9f6", "AvgPool2d": "#dbe9f6",
               "AdaptiveAvgPool2d": "#dbe9f6"}
    fig = new_figure(figsize=(1.25 * len(children) + 1.2, 2.4), layout="constrained")
    ax = fig.subplots()
    _box(ax, 0, 0, "input\n" + "x".join(map(str, input_size[1:])), w=1.05, h=1.1, color="white")
    for k, (name, child) in enumerate(children, start=1):
        kind = type(child).__name__
        shape = "x".join(map(str, shapes.get(name, ())))
        _box(ax, 1.25 * k, 0, f"{kind}\n{shape}", w=1.05, h=1.1, color=colours.get(kind, "#eeeeee"))
        _arrow(ax, (1.25 * (k - 1) + 0.53, 0), (1.25 * k - 0.53, 0))
    ax.set_xlim(-0.7, 1.25 * len(children) + 0.7)
    ax.set_ylim(-0.9, 0.9)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def block_diagram(kind: str, title: str | None = None, ax=None):
    """Hand-laid diagrams of the blocks in lecture 04: "inception", "residual" or "bottleneck".

    Draws into `ax` if given; returns the Figure.
    """
    if ax is None:
        fig = new_figure(figsize=(7.5, 4.2) if kind == "inception" else (4.2, 5.2), layout="constrained")
        ax = fig.subplots()
    if kind == "inception":
        _box(ax, 3, 4, "previous layer", w=2.4, color="white")
        columns = [["1x1 conv"], ["1x1 conv\n(bottleneck)", "3x3 conv"], ["1x1 conv\n(bottleneck)", "5x5 conv"],
                   ["3x3 max pool", "1x1 conv"]]
        for c, ops in enumerate(columns):
            x = 0.75 + 1.5 * c
            for r, op in enumerate(ops):
                y = 2.9 - 1.0 * r - (0.5 if len(ops) == 1 else 0)
                _box(ax, x, y, op, w=1.3, h=0.65, color="#c9e4c5" if "1x1" in op else "#f4c7a1")
            _arrow(ax, (3, 3.7), (x, 2.9 + 0.33 - (0.5 if len(ops) == 1 else 0)))
            if len(ops) == 2:
                _arrow(ax, (x, 2.57), (x, 2.23))
            _arrow(ax, (x, 1.57 if len(ops) == 2 else 2.07), (3, 0.83))
        _box(ax, 3, 0.5, "concatenate along channels", w=3.2, color="#dbe9f6")
        ax.set_xlim(-0.2, 6.2)
        ax.set_ylim(0, 4.5)
    elif kind in ("residual", "bottleneck"):
        ops = (["3x3 conv, BN, ReLU", "3x3 conv, BN"] if kind == "residual"
               else ["1x1 conv (reduce), BN, ReLU", "3x3 conv, BN, ReLU", "1x1 conv (expand x4), BN"])
        _box(ax, 1.5, 5.3, "x", w=1.0, color="white")
        y = 4.3
        _arrow(ax, (1.5, 5.0), (1.5, y + 0.3))
        for op in ops:
            _box(ax, 1.5, y, op, w=2.4, color="#f4c7a1" if "3x3" in op else "#c9e4c5")
            y -= 1.0
            _arrow(ax, (1.5, y + 0.7), (1.5, y + 0.3))
        _box(ax, 1.5, y, "+", w=0.6, h=0.5, color="#fde2c8")
        ax.annotate("", xy=(1.8, y), xytext=(1.75, 5.3), arrowprops=dict(
            arrowstyle="->", color="tab:red", lw=2, connectionstyle="arc3,rad=-0.6"))
        ax.text(3.25, (5.3 + y) / 2, "identity\nshortcut", color="tab:red", fontsize=9, ha="center")
        _arrow(ax, (1.5, y - 0.25), (1.5, y - 0.65))
        _box(ax, 1.5, y - 0.95, "ReLU", w=1.0, h=0.5, color="white")
        ax.set_xlim(-0.2, 3.9)
        ax.set_ylim(y - 1.4, 5.7)
    else:
        raise ValueError(f"kind must be 'inception', 'residual' or 'bottleneck', got {kind!r}")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure
