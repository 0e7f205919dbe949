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

__all__ = ["SmallMNIST", "data_dir", "verify_file", "load_mnist5k", "stratified_split",
           "load_photo", "PHOTOS", "toy_2d"]

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
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
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
