"""Seeding, device selection, argument checks and eval mode, shared by every notebook.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import contextlib
import math
import numbers
import operator
import os
import random
from typing import Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["setup", "get_device", "describe", "seed_everything", "require_int", "require_float", "eval_mode",
           "device_of"]


# ---------------------------------------------------------------------------------------------
# Argument checks. One rule for the whole package: a value of the wrong type raises TypeError,
# a value of the right type but out of range raises ValueError; the message names the argument,
# what was expected and what was received.

def _int_range_words(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an int in [{minimum}, {maximum}]"
    if minimum == 1:
        return "a positive int"
    if minimum == 0:
        return "a non-negative int"
    if minimum is not None:
        return f"an int >= {minimum}"
    if maximum is not None:
        return f"an int <= {maximum}"
    return "an int"


def require_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int, or a TypeError (not an integer) / ValueError (out of range) naming `name`.

    Python ints, NumPy integers and anything with ``__index__`` are accepted; bool is refused
    (True is not a count).

    >>> require_int(np.int64(3), "n", minimum=1)
    3
    """
    expected = _int_range_words(minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    try:
        number = operator.index(value)
    except TypeError:  # e.g. a tensor with more than one element
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


def require_float(value, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """`value` as a finite float, or a TypeError (not a real number) / ValueError (NaN, infinite,
    not positive, or below `minimum`) naming `name`. bool is refused."""
    expected = "a positive number" if positive else (
        f"a number >= {minimum}" if minimum is not None else "a finite number")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0) or (minimum is not None and number < minimum):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return number


@contextlib.contextmanager
def eval_mode(module: nn.Module, *, no_grad: bool = True) -> Iterator[nn.Module]:
    """Inside: `module` and all its submodules in eval mode (dropout off, batch norm uses its
    running statistics) and, unless no_grad=False, autograd off. After: every submodule gets
    back its own training flag (a frozen batch norm stays in eval mode inside a training model).

    >>> with cnnkit.core.eval_mode(model):
    ...     logits = model(x)
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield module
    finally:
        for m, training in flags:
            m.training = training


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


def device_of(model: nn.Module, device=None) -> torch.device:
    """`device` if given, else where the model's parameters are (the CPU if it has none)."""
    if device is not None:
        return torch.device(device)
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def describe(device: torch.device) -> str:
    """One line about a device, e.g. 'cuda (NVIDIA H100)' or 'cpu (4 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators (all devices)."""
    seed = require_int(seed, "seed")
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
