"""Helpers for a check's cases() and run(): random cases from a seed, a seeded block.

See: cnnkit/check/_core.py (the Check protocol)
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch

__all__ = ["random_cases", "seeded"]


def random_cases(seed: int, n: int, make: Callable[[torch.Generator], dict], fixed: Iterable = ()) -> list:
    """The fixed cases, then `make(gen)` until there are n, all drawn from one generator seeded with `seed`.

    The fixed cases are all kept even when there are more than n.
    """
    gen, cases = torch.Generator().manual_seed(seed), list(fixed)
    while len(cases) < n:
        cases.append(make(gen))
    return cases


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with torch's global generator seeded, restoring the caller's state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
