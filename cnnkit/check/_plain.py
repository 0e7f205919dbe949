"""Plain data: the only values that cross between the student's code and the judge.

None, bool, int, float, str, CPU tensors of the exact class torch.Tensor, and
lists, tuples and str-keyed dicts of these. Types are checked exactly
(`type(x) is int`, never isinstance), so an object with its own `__eq__` or
`__float__` is refused before any comparison sees it.

See: cnnkit/check/_core.py
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import torch

__all__ = ["PlainDataError", "to_plain", "describe", "describe_type"]


class PlainDataError(TypeError):
    """A value is not plain data (see the module docstring); `type_name` says what it was."""

    def __init__(self, type_name: str, where: str = ""):
        self.type_name, self.where = type_name, where
        super().__init__(f"{where or 'value'} is a {type_name}, not plain data")


_SCALARS = (type(None), bool, int, float, str)
_MAX_DEPTH, _MAX_ITEMS = 12, 1_000_000


def _type_name(x) -> str:
    t = type(x)
    name = t.__qualname__ if isinstance(getattr(t, "__qualname__", None), str) else "object"
    for base in (bool, int, float, str, list, tuple, dict, torch.Tensor):
        if t is not base and isinstance(x, base):
            return f"{name} (a {base.__name__} subclass)"[:120]
    return name[:120]


def _numpy_scalar(x):
    """numpy scalars and 0-d arrays of exact numpy types -> Python numbers (else None)."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    t = type(x)
    if t is np.ndarray and x.ndim == 0 and x.dtype.kind in "biuf":
        return _numpy_scalar(x[()])
    if t in (np.bool_,):
        return bool(np.bool_.item(x))
    if t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
        return int(np.integer.item(x))
    if t in (np.float16, np.float32, np.float64):
        return float(np.floating.item(x))
    return None


def _plain_tensor(x: torch.Tensor) -> torch.Tensor:
    """A detached CPU copy of exact class torch.Tensor, bypassing any subclass's overrides."""
    with torch._C.DisableTorchFunctionSubclass():
        if x.layout != torch.strided or x.is_meta:
            raise PlainDataError(f"{x.layout} tensor")
        y = torch.Tensor.clone(torch.Tensor.cpu(torch.Tensor.detach(x)))
    y = y.as_subclass(torch.Tensor)
    if type(y) is not torch.Tensor:
        raise PlainDataError(_type_name(x))
    return y


def to_plain(x: Any, _depth: int = 0, _count: list | None = None) -> Any:
    """Convert `x` to plain data or raise PlainDataError; types are checked exactly.

    None/bool/int/float/str pass; numpy scalars become Python numbers; a tensor
    (or tensor subclass such as nn.Parameter) becomes a detached CPU torch.Tensor;
    lists, tuples and dicts with str keys are converted item by item. A subclass
    of int/float/str/list/dict, or any other object, is refused.
    """
    count = [0] if _count is None else _count
    count[0] += 1
    if _depth > _MAX_DEPTH or count[0] > _MAX_ITEMS:
        raise PlainDataError("structure nested too deeply or too large")
    t = type(x)
    if t in _SCALARS:
        return x
    if isinstance(x, torch.Tensor):
        return _plain_tensor(x)
    if t is list or t is tuple:
        items = [to_plain(v, _depth + 1, count) for v in (list.__iter__(x) if t is list else tuple.__iter__(x))]
        return items if t is list else tuple(items)
    if t is dict:
        out = {}
        for k, v in dict.items(x):
            if type(k) is not str:
                raise PlainDataError(f"dict with a {_type_name(k)} key")
            out[k] = to_plain(v, _depth + 1, count)
        return out
    converted = _numpy_scalar(x)
    if converted is not None:
        return converted
    raise PlainDataError(_type_name(x))


def _copy_case(case):
    """A deep copy of a plain case, so an answer that changes its inputs cannot change the reference."""
    return copy.deepcopy(case)



def describe(value, limit: int = 80) -> str:
    """Short description of a plain value for messages: tensors by shape, long values cut."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe_type(got) -> str:
    if isinstance(got, torch.Tensor):
        return f"a tensor of shape {tuple(got.shape)}"
    return "None" if got is None else type(got).__name__
