"""Measuring architectures: parameters, their share in fully connected layers,
multiply-adds and depth, for the comparison table of lecture 04.

See: notebooks/04_architectures.ipynb
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cnnkit.core import eval_mode
from cnnkit.models.classic import Inception, InceptionAux
from cnnkit.models.resnet import BasicBlock, Bottleneck, SmallBlock

__all__ = ["count_params", "profile", "compare", "summary"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (learnable numbers) of a model."""
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------
# Measuring architectures
# ----------------------------------------------------------------------------

def profile(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> dict:
    """Parameters, share in fully connected layers, multiply-adds and depth of a model.

    Runs the model once on the "meta" device (shapes only, no arithmetic, so even
    VGG-19 takes milliseconds). Multiply-adds count Conv2d and Linear layers for
    one input; depth counts the Conv2d and Linear layers on the longest path
    (for Inception, the branches are counted along their deepest branch).
    """
    if len(input_size) != 4:
        raise ValueError(f"input_size must be (N, C, H, W), got {tuple(input_size)}")
    params = count_params(model)
    fc_params = sum(count_params(m) for m in model.modules() if isinstance(m, nn.Linear))
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        if isinstance(output, (tuple, list)):
            output = output[0]
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs += output.numel() // output.shape[0] * per_output
        elif isinstance(module, nn.Linear):
            macs += output.numel() // output.shape[0] * module.in_features

    # The same module, called with meta copies of its weights: no data is copied or computed.
    meta_state = {k: v.to("meta") for k, v in [*model.named_parameters(), *model.named_buffers()]}
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with eval_mode(model):
            torch.func.functional_call(model, meta_state, (torch.empty(*input_size, device="meta"),))
    finally:
        for h in hooks:
            h.remove()
    return {"parameters": params, "fc_share": fc_params / params if params else 0.0,
            "mult_adds": macs // input_size[0], "depth": _depth(model)}


def _depth(module: nn.Module) -> int:
    """Weighted layers on the longest path: parallel branches count once (their max)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return 1
    if isinstance(module, Inception):
        return max(_depth(b) for b in (module.branch1, module.branch2, module.branch3, module.branch4))
    if isinstance(module, (InceptionAux,)):
        return 0                                   # a side head, not on the main path
    if isinstance(module, (BasicBlock, Bottleneck, SmallBlock)):
        main = [c for n, c in module.named_children() if n not in ("downsample", "shortcut")]
        return sum(_depth(c) for c in main)
    return sum(_depth(c) for c in module.children())


def compare(models: dict[str, nn.Module], input_size: Sequence[int] = (1, 3, 224, 224)) -> list[dict]:
    """profile() for several models: one dict per architecture, with its name."""
    return [{"name": name, **profile(model, input_size)} for name, model in models.items()]


def summary(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224), depth: int = 2, **kwargs):
    """torchinfo's layer-by-layer summary (output shapes, parameters, mult-adds)."""
    try:
        import torchinfo
    except ImportError as exc:  # pragma: no cover - torchinfo is in the pinned stack
        raise ImportError("summary needs torchinfo: run `make setup` or `pip install torchinfo`") from exc
    return torchinfo.summary(model, input_size=tuple(input_size), depth=depth, verbose=0,
                             col_names=("output_size", "num_params", "mult_adds"), **kwargs)
