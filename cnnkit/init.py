"""Weight initialisation schemes, and a probe of activation statistics per layer.

    He / Kaiming:  std = gain / sqrt(fan_in),  gain = sqrt(2) for ReLU
                   -> keeps the scale of activations equal across ReLU layers
    Xavier/Glorot: std = gain * sqrt(2 / (fan_in + fan_out))
                   -> for tanh/sigmoid/linear layers

Same arguments and random draws as ``torch.nn.init`` (a test checks equal
values under the same seed).

See: notebooks/03_normalization.ipynb
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["fan_in_and_fan_out", "calculate_gain", "kaiming_normal_", "kaiming_uniform_",
           "xavier_normal_", "xavier_uniform_", "constant_", "init_model", "activation_stats"]


def fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or Conv (out, in, *kernel) weight.

    fan_in = in * kernel area (inputs feeding one output), fan_out = out * kernel area.
    """
    if tensor.dim() < 2:
        raise ValueError(f"fan in/out need a weight with at least 2 dims, got shape {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:]) if tensor.dim() > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that compensates an activation's effect on the variance (as torch.nn.init)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "identity")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _fan(tensor: torch.Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_normal_(tensor: torch.Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: torch.Generator | None = None) -> torch.Tensor:
    """He normal: N(0, std^2) with std = gain / sqrt(fan); for ReLU, sqrt(2 / fan_in)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    with torch.no_grad():
        return tensor.normal_(0, std, generator=generator)


def kaiming_uniform_(tensor: torch.Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: torch.Generator | None = None) -> torch.Tensor:
    """He uniform: U(-b, b) with b = sqrt(3) * std, the same std as kaiming_normal_."""
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Glorot normal: std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    with torch.no_grad():
        return tensor.normal_(0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def constant_(tensor: torch.Tensor, value: float) -> torch.Tensor:
    """Every entry equal to `value` (for weights: the symmetry trap)."""
    with torch.no_grad():
        return tensor.fill_(value)


_SCHEMES = {
    "he_normal": lambda w: kaiming_normal_(w, nonlinearity="relu"),
    "he_uniform": lambda w: kaiming_uniform_(w, nonlinearity="relu"),
    "xavier_normal": xavier_normal_,
    "xavier_uniform": xavier_uniform_,
}


def init_model(model: nn.Module, scheme: str = "he_normal", std: float | None = None) -> nn.Module:
    """Re-initialise every Conv/Linear weight of `model` (biases to 0) and return it.

    scheme: "he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "normal"
    (N(0, std^2), std required) or "constant" (all weights = std).
    """
    if scheme not in (*_SCHEMES, "normal", "constant"):
        raise ValueError(f"scheme must be one of {sorted([*_SCHEMES, 'normal', 'constant'])}, got {scheme!r}")
    if scheme in ("normal", "constant") and std is None:
        raise ValueError(f"scheme {scheme!r} needs std")
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme == "normal":
                with torch.no_grad():
                    m.weight.normal_(0, std)
            elif scheme == "constant":
                constant_(m.weight, std)
            else:
                _SCHEMES[scheme](m.weight)
            if m.bias is not None:
                constant_(m.bias, 0.0)
    return model


def activation_stats(model: nn.Module, x: torch.Tensor, layer_types=(nn.ReLU, nn.Tanh, nn.Sigmoid),
                     keep: int = 20000) -> list[dict]:
    """Run `model` on `x` and record, for each module of `layer_types`, in order:

    name, mean, std, dead (fraction of units that are 0 for every example: dead ReLUs)
    and values (up to `keep` activations, for histograms). The model's mode is kept.
    """
    records, hooks = [], []

    def hook(name):
        def fn(module, inputs, output):
            out = output.detach()
            flat = out.flatten()
            per_unit = out.reshape(out.shape[0], -1)                      # (N, units)
            records.append({
                "name": name, "mean": flat.mean().item(), "std": flat.std().item(),
                "dead": (per_unit == 0).all(dim=0).float().mean().item(),
                "values": flat[torch.linspace(0, flat.numel() - 1, min(keep, flat.numel())).long()].cpu(),
            })
        return fn

    for name, module in model.named_modules():
        if isinstance(module, layer_types):
            hooks.append(module.register_forward_hook(hook(name)))
    if not hooks:
        raise ValueError(f"model has no layers of types {[t.__name__ for t in layer_types]} to record")
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return records
