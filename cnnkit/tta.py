"""Test-time augmentation: average the model's softmax over several views of each image.

    probs = cnnkit.tta.predict(model, test_images, views=["identity", "hflip"])
    probs = cnnkit.tta.predict(model, test_images, views=cnnkit.tta.ten_crop(32))

A view is a deterministic function of a batch, (N, C, H, W) -> (N, C, H', W'):
the same view for every image, so each costs exactly one forward pass per batch.
AlexNet (Krizhevsky et al., 2012) averaged ten of them: the four corner crops and
the centre crop, each also flipped left-right.

See: notebooks/06_augmentation.ipynb
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.batches import input_batches
from cnnkit.core import device_of, eval_mode, require_int

__all__ = ["predict", "identity", "hflip", "crop", "crop_boxes", "five_crop", "ten_crop", "shifts",
           "View", "VIEWS"]

View = Callable[[torch.Tensor], torch.Tensor]


def identity(x: torch.Tensor) -> torch.Tensor:
    """The image as it is."""
    return x


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror left-right: (N, C, H, W) -> (N, C, H, W)."""
    return x.flip(-1)


def crop(top: int, left: int, height: int, width: int) -> View:
    """A view that cuts the box (top, left, height, width) out of every image."""
    def view(x: torch.Tensor) -> torch.Tensor:
        if top + height > x.shape[-2] or left + width > x.shape[-1]:
            raise ValueError(f"crop box (top={top}, left={left}, height={height}, width={width}) "
                             f"does not fit an image of size {tuple(x.shape[-2:])}")
        return x[..., top:top + height, left:left + width]
    view.__name__ = f"crop({top},{left},{height},{width})"
    return view


def _size_pair(size, name: str = "size") -> tuple[int, int]:
    expected = f"{name} must be a positive int or a pair (height, width), got {size!r}"
    pair = (size, size) if hasattr(type(size), "__index__") else tuple(size) if isinstance(size, (tuple, list)) else None
    if pair is None or len(pair) != 2:
        raise TypeError(expected)
    try:
        return tuple(require_int(s, name, minimum=1) for s in pair)
    except (TypeError, ValueError) as exc:
        raise type(exc)(expected) from None


def crop_boxes(image_size, crop_size) -> list[tuple[int, int, int, int]]:
    """The five AlexNet boxes (top, left, height, width): top-left, top-right, bottom-left,
    bottom-right, centre. The centre rounds like torchvision's ``center_crop``."""
    (h, w), (ch, cw) = _size_pair(image_size, "image_size"), _size_pair(crop_size, "crop_size")
    if ch > h or cw > w:
        raise ValueError(f"crop_size {crop_size!r} is larger than image_size {image_size!r}")
    centre = (int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0)))
    return [(0, 0, ch, cw), (0, w - cw, ch, cw), (h - ch, 0, ch, cw), (h - ch, w - cw, ch, cw),
            (*centre, ch, cw)]


def five_crop(size) -> list[View]:
    """Four corner crops and the centre crop of side `size` (boxes from ``crop_boxes``)."""
    crop_size = _size_pair(size, "size")

    def make(k: int) -> View:
        def view(x: torch.Tensor) -> torch.Tensor:
            return crop(*crop_boxes(tuple(x.shape[-2:]), crop_size)[k])(x)
        view.__name__ = ("top_left", "top_right", "bottom_left", "bottom_right", "centre")[k]
        return view
    return [make(k) for k in range(5)]


def ten_crop(size) -> list[View]:
    """AlexNet's ten views: ``five_crop(size)``, then the same five of the mirrored image
    (the order of torchvision's ``ten_crop``)."""
    def flipped(view: View) -> View:
        def mirrored(x: torch.Tensor) -> torch.Tensor:
            return view(hflip(x))
        mirrored.__name__ = f"hflip+{view.__name__}"
        return mirrored
    crops = five_crop(size)
    return crops + [flipped(v) for v in crops]


def shifts(pixels: int = 2) -> list[View]:
    """The image and four copies moved by `pixels` up, down, left and right (edges repeated)."""
    p = require_int(pixels, "pixels", minimum=1)

    def shift(dy: int, dx: int) -> View:
        def view(x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2:]
            padded = F.pad(x, (p, p, p, p), mode="replicate")           # (N, C, H+2p, W+2p)
            return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]      # content moves by (dy, dx)
        view.__name__ = f"shift({dy},{dx})"
        return view
    return [identity, shift(-p, 0), shift(p, 0), shift(0, -p), shift(0, p)]


# Views by name, for views=["identity", "hflip"]; crops need a size: use ten_crop(size).
VIEWS = {"identity": identity, "hflip": hflip}


def _resolve(views) -> list[View]:
    if isinstance(views, str) or callable(views):
        views = [views]
    if not isinstance(views, Sequence) or len(views) == 0:
        raise ValueError("views must be a non-empty list of views (callables) or names "
                         f"{sorted(VIEWS)}, got {views!r}")
    resolved = []
    for v in views:
        if isinstance(v, str):
            if v not in VIEWS:
                raise ValueError(f"unknown view {v!r}; named views are {sorted(VIEWS)}; "
                                 "for crops and shifts pass cnnkit.tta.ten_crop(size) or shifts(pixels)")
            v = VIEWS[v]
        if not callable(v):
            raise TypeError(f"each view must be callable (batch -> batch) or a name, got {type(v).__name__}")
        resolved.append(v)
    return resolved


def predict(model: nn.Module, data, views: Sequence[View | str] = ("identity",), *,
            device=None, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (N, num_classes), averaged over `views` of every image, on the CPU.

    p(y | x) = (1 / V) * sum_v softmax(model(view_v(x)))

    data: a tensor of images (N, C, H, W), or a Dataset / DataLoader of (image, label).
    views: callables batch -> batch (``hflip``, ``ten_crop(size)``, ``shifts(2)``...) or
    names from ``VIEWS``. One forward pass per view and batch, in eval mode, so V views
    cost V times a plain prediction. With views=["identity"] this is
    ``cnnkit.predict(model, data)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    views = _resolve(views)
    device = device_of(model, device)
    if isinstance(data, torch.Tensor):
        if data.dim() != 4:
            raise ValueError(f"data must be a batch of images (N, C, H, W), got shape {tuple(data.shape)}")
        if len(data) == 0:
            raise ValueError("data is empty: nothing to predict")
    outputs = []
    with eval_mode(model):
        for x in input_batches(data, batch_size):
            x = x.to(device)
            total = None
            for view in views:
                probs = model(view(x)).softmax(dim=1)                   # (N, K)
                total = probs if total is None else total + probs
            outputs.append((total / len(views)).cpu())
    if not outputs:
        raise ValueError("data is empty: nothing to predict")
    return torch.cat(outputs)
