"""Seeding and device selection, shared by every notebook.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: cuda > mps > cpu (or `prefer`, if given and available).

    Set the environment variable CNNKIT_DEVICE=cpu to force the CPU.
    """
    prefer = prefer or os.environ.get("CNNKIT_DEVICE")
    if prefer is not None:
        if prefer not in ("cpu", "cuda", "mps"):
            raise ValueError(f"prefer must be 'cpu', 'cuda' or 'mps', got {prefer!r}")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("prefer='cuda' but torch sees no CUDA GPU (torch.cuda.is_available() is False)")
        if prefer == "mps" and not _mps_available():
            raise ValueError("prefer='mps' but this torch has no usable Apple MPS backend")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe(device: torch.device) -> str:
    """One line about a device, e.g. 'cuda (NVIDIA H100)' or 'cpu (4 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators (all devices)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too


def setup(seed: int = 0, device: str | None = None, verbose: bool = True) -> torch.device:
    """Seed python/numpy/torch, pick cuda > mps > cpu, print one line, return the device.

    >>> device = cnnkit.setup(seed=0)
    cnnkit: torch 2.14.1 on cpu (2 threads), seed 0
    """
    seed_everything(seed)
    chosen = get_device(device)
    if verbose:
        print(f"cnnkit: torch {torch.__version__.split('+')[0]} on {describe(chosen)}, seed {seed}")
    return chosen
