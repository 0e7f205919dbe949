"""Scenes of several shapes on real textures, with ground-truth boxes: a detection dataset.

Each scene is a texture photo (bundled with scikit-image, CC0) tinted a random
colour, with 1-4 shapes of the ``Shapes`` classes drawn on it at random places,
sizes, rotations and colours. Shapes may overlap partly (a later one hides part of
an earlier one) and may be cut by the border. An item reads like a torchvision
detection dataset: ``(image float (3, H, W) in [0, 1], {"boxes": float (K, 4),
"labels": int64 (K,)})`` with boxes ``(x1, y1, x2, y2)`` in pixels around the
visible part of each shape.

See: notebooks/08_detection.ipynb
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data import SHAPE_CLASSES, TEXTURES, _luma, _shape_mask, _texture

__all__ = ["ShapeScenes", "make_scenes", "SCENE_SPLITS"]

# The fixed splits used by lecture 08: name -> (number of scenes, seed).
SCENE_SPLITS = {"train": (300, 1800), "test": (200, 1801)}


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")


def _draw_scene(rng: np.random.Generator, size: int, n_objects: int):
    """One scene: image (3, size, size) float32, boxes (K, 4) float32, labels (K,) int64."""
    texture = _texture(TEXTURES[rng.integers(len(TEXTURES))])
    scale = int(rng.integers(1, 3))                                   # texture zoom 1x or 2x
    span = size * scale
    top, left = rng.integers(0, texture.shape[0] - span, size=2)
    patch = texture[top:top + span:scale, left:left + span:scale]     # (size, size)
    patch = (patch - patch.mean()) / (patch.std() + 1e-6)
    background = rng.uniform(0.15, 0.85, size=3)
    image = background[:, None, None] * (1 + 0.2 * patch)             # (3, size, size)
    owner = np.full((size, size), -1)                                 # which shape each pixel shows
    full_area, labels = [], []
    for k in range(n_objects):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        while True:                                                   # a colour that stands out
            colour = rng.uniform(0.0, 1.0, size=3)
            if abs(_luma(colour) - _luma(background)) > 0.25:
                break
        r = rng.uniform(0.09, 0.2) * size
        cy, cx = rng.uniform(0.3 * r, size - 0.3 * r, size=2)           # may be cut by the border
        # Draw in a padded window around the shape only (cheaper than the whole image).
        m = int(math.ceil(r)) + 2
        y0, x0 = int(cy) - m, int(cx) - m
        window = _shape_mask(SHAPE_CLASSES[label], 2 * m, cy - y0, cx - x0, r, rng.uniform(0, 2 * math.pi))
        mask = np.zeros((size, size), dtype=np.float32)
        ys, xs = slice(max(y0, 0), min(y0 + 2 * m, size)), slice(max(x0, 0), min(x0 + 2 * m, size))
        mask[ys, xs] = window[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        shading = 1 + 0.12 * patch
        image = image * (1 - mask) + colour[:, None, None] * shading * mask
        owner[mask >= 0.5] = k
        full_area.append(window.sum())
        labels.append(label)
    image += rng.normal(0, 0.02, size=image.shape)                    # sensor noise
    boxes, kept = [], []
    for k in range(n_objects):
        ys, xs = np.nonzero(owner == k)
        # A shape mostly hidden by later ones or by the border is not labelled.
        if len(ys) < 0.4 * full_area[k] or len(ys) < 20:
            continue
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])   # pixel edges, x2/y2 exclusive
        kept.append(labels[k])
    return (np.clip(image, 0, 1).astype(np.float32), np.array(boxes, dtype=np.float32).reshape(-1, 4),
            np.array(kept, dtype=np.int64))


def make_scenes(n: int, *, size: int = 128, seed: int = 0, min_objects: int = 1,
                max_objects: int = 4) -> tuple[torch.Tensor, list[dict]]:
    """`n` scenes: images (n, 3, size, size) in [0, 1] and one target dict per scene.

    Each target is ``{"boxes": float (K, 4) as (x1, y1, x2, y2), "labels": int64 (K,)}``
    with labels indexing ``SHAPE_CLASSES``. Generated from `seed` alone.
    """
    _check_int("n", n, 1)
    _check_int("size", size, 32, 512)
    _check_int("min_objects", min_objects, 1)
    _check_int("max_objects", max_objects, min_objects)
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    targets = []
    for i in range(n):
        while True:                                       # at least one labelled object per scene
            image, boxes, labels = _draw_scene(rng, size, int(rng.integers(min_objects, max_objects + 1)))
            if len(labels) > 0:
                break
        images[i] = image
        targets.append({"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)})
    return torch.from_numpy(images), targets


class ShapeScenes(Dataset):
    """Detection scenes of shapes on real textures (see ``make_scenes``), generated from `seed`.

    ``ShapeScenes.split("train")`` / ``split("test")`` give the fixed 300 / 200 scenes
    of lecture 08. An item is ``(image (3, H, W), {"boxes": (K, 4), "labels": (K,)})``.
    See: notebooks/08_detection.ipynb
    """

    classes = SHAPE_CLASSES

    def __init__(self, n: int = 300, size: int = 128, seed: int = 0, min_objects: int = 1,
                 max_objects: int = 4):
        self.images, self.targets = make_scenes(n, size=size, seed=seed, min_objects=min_objects,
                                                max_objects=max_objects)
        self.seed = seed

    @classmethod
    def split(cls, name: str, size: int = 128) -> "ShapeScenes":
        """The fixed split `name` ("train": 300 scenes, "test": 200 scenes)."""
        if name not in SCENE_SPLITS:
            raise ValueError(f"name must be one of {sorted(SCENE_SPLITS)}, got {name!r}")
        n, seed = SCENE_SPLITS[name]
        return cls(n, size=size, seed=seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        target = self.targets[index]
        return self.images[index], {"boxes": target["boxes"].clone(), "labels": target["labels"].clone()}

    def __repr__(self) -> str:
        objects = sum(len(t["labels"]) for t in self.targets)
        return f"ShapeScenes(n={len(self)}, seed={self.seed}, size={self.images.shape[-1]}, objects={objects})"
