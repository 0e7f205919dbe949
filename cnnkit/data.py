"""Small real datasets that ship with the repository (no downloads).

Every file is checked against the SHA-256 recorded in ``data/SHA256SUMS``
before it is read, so a truncated or edited file gives a clear error instead
of silently wrong pixels.

See: notebooks/01_convolutions.ipynb, data/README.md
"""

from __future__ import annotations

import functools
import math
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.core import require_int

__all__ = ["SmallMNIST", "data_dir", "verify_file", "load_mnist5k", "stratified_split",
           "load_photo", "PHOTOS", "toy_2d", "ImageDataset", "Shapes", "make_shapes", "SHAPE_CLASSES",
           "TEXTURES", "load_faces", "FACE_CLASSES"]

MNIST5K_FILE = "mnist5k/mnist_5k.csv.gz"
MNIST_CLASSES = [f"{d} - {w}" for d, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])]


def data_dir() -> Path:
    """The folder with the course data: $CNNKIT_DATA_DIR, else ``data/`` beside cnnkit/."""
    env = os.environ.get("CNNKIT_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


@functools.lru_cache(maxsize=None)
def _checksums(root: Path) -> dict[str, str]:
    """Read ``SHA256SUMS`` (lines '<hex>  <relative path>') into {path: hex}."""
    sums_file = root / "SHA256SUMS"
    if not sums_file.is_file():
        raise FileNotFoundError(
            f"checksum list {sums_file} is missing; restore it with "
            f"`git checkout -- data/SHA256SUMS`"
        )
    sums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return sums


def verify_file(relative: str, root: Path | None = None) -> Path:
    """Return the path of a data file after checking it exists and matches its SHA-256."""
    root = Path(root) if root is not None else data_dir()
    path = root / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"data file {path} is missing. It ships with the repository: restore it with "
            f"`git checkout -- data/{relative}` (or rebuild it with scripts/extract_mnist5k.py), "
            f"or point CNNKIT_DATA_DIR at a folder that has it"
        )
    expected = _checksums(root).get(relative)
    if expected is None:
        raise ValueError(f"data file {path} has no entry in {root / 'SHA256SUMS'}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ValueError(
            f"data file {path} is corrupt: SHA-256 is {digest[:16]}..., expected "
            f"{expected[:16]}...; restore it with `git checkout -- data/{relative}`"
        )
    return path


@functools.lru_cache(maxsize=4)
def _load_mnist5k_cached(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)     # (5000, 785)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)  # (N, 28, 28)
    labels = table[:, -1].astype(np.int64)                        # (N,)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k(root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits: images uint8 (5000, 28, 28) and labels int64 (5000,), class-sorted."""
    return _load_mnist5k_cached(verify_file(MNIST5K_FILE, root))


def stratified_split(labels: np.ndarray, test_fraction: float = 0.2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with the same class proportions in both, shuffled by `seed`."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


class SmallMNIST(Dataset):
    """5,000 real MNIST digits (4,000 train / 1,000 test, 10% per class), offline.

    Behaves like ``torchvision.datasets.MNIST``: ``.data`` is uint8 (N, 28, 28),
    ``.targets`` int64 (N,), ``.classes`` the class names; an item is
    ``(image, label)`` with image a float tensor (1, 28, 28) in [0, 1] (before
    ``transform``) and label an int. The split is stratified with a fixed seed,
    so every run and every student sees the same digits.
    """

    SPLIT_SEED = 0

    def __init__(self, train: bool = True, transform=None, *, target_transform=None,
                 root: str | Path | None = None):
        if not isinstance(train, bool):
            raise TypeError(f"train must be True or False, got {train!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        images, labels = load_mnist5k(Path(root) if root is not None else None)
        train_idx, test_idx = stratified_split(labels, 0.2, seed=self.SPLIT_SEED)
        idx = train_idx if train else test_idx                    # shuffled, not class-sorted
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self.classes = list(MNIST_CLASSES)
        self.data = torch.from_numpy(images[idx].copy())          # (N, 28, 28) uint8
        self.targets = torch.from_numpy(labels[idx].copy())       # (N,) int64
        # Scaled once here rather than on every __getitem__.
        self._images = self.data.unsqueeze(1).float().div_(255)   # (N, 1, 28, 28) in [0, 1]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image, label = self._images[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"SmallMNIST(split={split}, n={len(self)}, transform={self.transform!r})"


# Photos bundled with scikit-image (no download): name -> (description, licence).
PHOTOS = {
    "camera": ("the 'cameraman', grayscale 512x512", "CC0 (Lav Varshney)"),
    "astronaut": ("astronaut Eileen Collins, RGB 512x512", "public domain (NASA)"),
    "chelsea": ("Chelsea the cat, RGB 300x451", "CC0 (Stefan van der Walt)"),
    "coffee": ("a cup of espresso, RGB 400x600", "CC0 (Rachel Michetti)"),
    "coins": ("Greek coins, grayscale 303x384", "CC0 / public domain (Walters Art Museum)"),
    "brick": ("a brick wall texture, grayscale 512x512", "CC0 (Stefan van der Walt)"),
}


def load_photo(name: str = "camera", gray: bool = False) -> torch.Tensor:
    """A real photo bundled with scikit-image as a float tensor (C, H, W) in [0, 1].

    gray=True converts RGB photos to one channel (ITU-R 601 luma weights).
    Names: see ``cnnkit.data.PHOTOS`` (each with its licence).
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {sorted(PHOTOS)}")
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - scikit-image is in the pinned stack
        raise ImportError("load_photo needs scikit-image: run `make setup` "
                          "or `pip install scikit-image`") from exc
    image = torch.from_numpy(getattr(skimage.data, name)().copy()).float().div_(255)
    image = image.unsqueeze(0) if image.dim() == 2 else image.permute(2, 0, 1)  # (C, H, W)
    if gray and image.shape[0] == 3:
        image = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)
    return image


def toy_2d(kind: str = "moons", n: int = 200, noise: float = 0.1,
           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2-D two-class toy dataset: X float (n, 2), y int64 (n,) in {0, 1}.

    kind: "blobs" (linearly separable), "moons", "circles" or "xor" (not separable
    by one line). Generated from `seed`, so it is the same everywhere.
    """
    kinds = ("blobs", "moons", "circles", "xor")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    n = require_int(n, "n", minimum=2)
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2                                          # balanced classes
    if kind == "blobs":
        centres = torch.tensor([[-1.0, -0.5], [1.0, 0.5]])
        x = centres[y] + 0.6 * torch.randn(n, 2, generator=gen)
    elif kind == "moons":
        t = torch.rand(n, generator=gen) * math.pi
        upper = torch.stack([torch.cos(t), torch.sin(t)], 1)
        lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
        x = torch.where(y[:, None] == 0, upper, lower) - torch.tensor([0.5, 0.25])
    elif kind == "circles":
        t = torch.rand(n, generator=gen) * 2 * math.pi
        radius = torch.where(y == 0, 1.0, 0.45)
        x = radius[:, None] * torch.stack([torch.cos(t), torch.sin(t)], 1)
    else:  # xor: four clusters, opposite corners share a class
        corner = torch.randint(0, 2, (n,), generator=gen)
        signs = torch.stack([2.0 * corner - 1, (2.0 * corner - 1) * (1 - 2.0 * y)], 1)
        x = signs * 0.8
    x = x + noise * torch.randn(n, 2, generator=gen)
    return x.float(), y.long()


# ----------------------------------------------------------------------------
# Images in memory with a per-sample transform; the Shapes dataset
# ----------------------------------------------------------------------------

class ImageDataset(Dataset):
    """Images (N, C, H, W) and int labels (N,) in memory; `transform` is applied per item.

    The transform runs every time an item is read, so a random transform gives a
    new view of each image in every epoch (online augmentation).
    See: notebooks/06_augmentation.ipynb
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform=None):
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError(f"images must be a tensor (N, C, H, W), got "
                             f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        targets = torch.as_tensor(targets)
        if targets.shape != (len(images),):
            raise ValueError(f"targets must have shape ({len(images)},) to match images, got {tuple(targets.shape)}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.images, self.targets, self.transform = images, targets.long(), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, image shape={tuple(self.images.shape[1:])}, transform={self.transform!r})"


SHAPE_CLASSES = ("circle", "ring", "square", "triangle", "cross")
# Grayscale texture photos bundled with scikit-image (CC0), used as backgrounds.
TEXTURES = ("brick", "grass", "gravel")


@functools.lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    import skimage.data
    return getattr(skimage.data, name)().astype(np.float32) / 255.0      # (512, 512)


def _shape_mask(kind: str, size: int, cy: float, cx: float, r: float, angle: float,
                supersample: int = 4) -> np.ndarray:
    """Coverage in [0, 1] of one shape on a size x size grid (anti-aliased by supersampling)."""
    s = supersample
    coords = (np.arange(size * s, dtype=np.float32) + 0.5) / s               # pixel centres
    y, x = np.meshgrid(coords - cy, coords - cx, indexing="ij")
    u = x * math.cos(angle) + y * math.sin(angle)                            # rotated frame
    v = -x * math.sin(angle) + y * math.cos(angle)
    if kind == "circle":
        inside = u ** 2 + v ** 2 <= r ** 2
    elif kind == "ring":
        inside = ((0.55 * r) ** 2 <= u ** 2 + v ** 2) & (u ** 2 + v ** 2 <= r ** 2)
    elif kind == "square":
        inside = (np.abs(u) <= 0.8 * r) & (np.abs(v) <= 0.8 * r)
    elif kind == "triangle":                     # equilateral: three half-planes
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = math.pi / 2 + 2 * math.pi * k / 3
            inside &= u * math.cos(a) + v * math.sin(a) <= 0.5 * r
    elif kind == "cross":
        inside = (((np.abs(u) <= 0.3 * r) & (np.abs(v) <= r))
                  | ((np.abs(v) <= 0.3 * r) & (np.abs(u) <= r)))
    else:
        raise ValueError(f"unknown shape {kind!r}; choose one of {SHAPE_CLASSES}")
    return inside.reshape(size, s, size, s).mean(axis=(1, 3))


def _luma(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def make_shapes(n: int, *, size: int = 36, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` colour images of shapes on real textures: images (n, 3, size, size) in [0, 1], labels (n,).

    Each image: a crop of a texture photo (``TEXTURES``, bundled with scikit-image,
    CC0) tinted a random colour, with one shape of class ``SHAPE_CLASSES[label]`` at a
    random position, size, rotation and colour drawn on it. Classes are balanced.
    The label survives flips, rotations, small shifts and colour changes, which is
    what makes the set useful for augmentation (digits are not: a 6 turned over is a 9).
    Generated from `seed` alone, so the same everywhere.
    See: notebooks/06_augmentation.ipynb
    """
    n = require_int(n, "n", minimum=1)
    size = require_int(size, "size", minimum=16, maximum=128)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(SHAPE_CLASSES))
    images = np.empty((n, 3, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        texture = _texture(TEXTURES[rng.integers(len(TEXTURES))])
        scale = int(rng.integers(1, 4))                                  # texture zoom: 1x..3x coarser
        span = size * scale
        top, left = rng.integers(0, texture.shape[0] - span, size=2)
        patch = texture[top:top + span:scale, left:left + span:scale]   # (size, size)
        patch = (patch - patch.mean()) / (patch.std() + 1e-6)
        background_colour = rng.uniform(0.15, 0.85, size=3)
        while True:                                                     # a shape colour that stands out
            shape_colour = rng.uniform(0.0, 1.0, size=3)
            if abs(_luma(shape_colour) - _luma(background_colour)) > 0.25:
                break
        r = rng.uniform(0.22, 0.34) * size
        cy, cx = rng.uniform(r + 1, size - r - 1, size=2)
        mask = _shape_mask(SHAPE_CLASSES[label], size, cy, cx, r, rng.uniform(0, 2 * math.pi))
        shading = 1 + 0.12 * patch                                      # the texture shows through
        image = (background_colour[:, None, None] * (1 + 0.2 * patch) * (1 - mask)
                 + shape_colour[:, None, None] * shading * mask)
        image += rng.normal(0, 0.02, size=image.shape)                  # sensor noise
        images[i] = np.clip(image, 0, 1)
    return torch.from_numpy(images), torch.from_numpy(labels).long()


class Shapes(ImageDataset):
    """Shapes on real textures (see ``make_shapes``): 5 classes, RGB, generated from `seed`.

    Use different seeds for training and test sets. `transform` is applied per item.
    See: notebooks/06_augmentation.ipynb
    """

    classes = SHAPE_CLASSES

    def __init__(self, n: int = 1000, *, seed: int = 0, size: int = 36, transform=None):
        images, targets = make_shapes(n, size=size, seed=seed)
        super().__init__(images, targets, transform)
        self.seed = seed

    def __repr__(self) -> str:
        return f"Shapes(n={len(self)}, seed={self.seed}, size={self.images.shape[-1]}, transform={self.transform!r})"


# ----------------------------------------------------------------------------
# Faces / non-faces: 200 real 25x25 crops bundled with scikit-image
# ----------------------------------------------------------------------------

FACE_CLASSES = ("not a face", "face")


def load_faces() -> tuple[torch.Tensor, torch.Tensor]:
    """200 grayscale 25x25 crops bundled with scikit-image (``skimage.data.lfw_subset``):
    100 faces from Labeled Faces in the Wild and 100 non-face patches.

    Returns images float (200, 1, 25, 25) in [0, 1] and labels int64 (200,), 1 = face,
    names in ``FACE_CLASSES``. Offline; LFW is free for research use (see data/README.md).
    See: notebooks/07_transfer_learning.ipynb
    """
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - scikit-image is in the pinned stack
        raise ImportError("load_faces needs scikit-image: run `make setup`") from exc
    images = torch.from_numpy(np.asarray(skimage.data.lfw_subset(), dtype=np.float32).copy())
    if images.shape != (200, 25, 25):
        raise ValueError(f"skimage.data.lfw_subset() has shape {tuple(images.shape)}, expected (200, 25, 25); "
                         "is scikit-image the pinned version? run `make setup`")
    images = (images - images.min()) / (images.max() - images.min())
    labels = torch.cat([torch.ones(100), torch.zeros(100)]).long()     # the first 100 are faces
    return images.unsqueeze(1), labels


# Detection scenes live in their own module (lecture 08), which builds on the helpers above;
# re-exported here with the other datasets, on first use (PEP 562), so that either module
# can be imported first without a circular import.
__all__ += ["ShapeScenes"]


def __getattr__(name: str):
    if name == "ShapeScenes":
        from cnnkit.scenes import ShapeScenes
        return ShapeScenes
    raise AttributeError(f"module 'cnnkit.data' has no attribute {name!r}")
