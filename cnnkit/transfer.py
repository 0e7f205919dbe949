"""Transfer learning recipes: freeze, replace the head, learning rates growing towards the output.

The lecture notes' recipe (torchvision's tutorial), for any model whose last layer is a Linear:

    model = cnnkit.models.efficientnet_lite0(pretrained=True)
    freeze_all_but_head(model)                    # requires_grad=False everywhere else
    replace_head(model, num_classes=2)            # a new, trainable Linear
    optimizer = torch.optim.SGD(head_of(model).parameters(), lr=0.001, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)

With more data, fine-tune the upper layers too, each group at its own learning rate:

    groups = layerwise_lr_groups(model, head_lr=1e-3, decay=0.3)   # lr shrinks towards the input
    cnnkit.fit(model, train, val, param_groups=groups)

See: notebooks/07_transfer_learning.ipynb
"""

from __future__ import annotations

from torch import nn

from cnnkit.core import require_int

__all__ = ["head_name", "head_of", "replace_head", "freeze_all_but_head", "freeze", "unfreeze", "freeze_batchnorm",
           "trainable_params", "stages", "layerwise_lr_groups"]


def head_name(model: nn.Module) -> str:
    """Attribute path of the model's last nn.Linear (its classifier), e.g. 'fc' or '_fc'."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to use as the head")
    return names[-1]


def head_of(model: nn.Module) -> nn.Linear:
    """The model's classifier: its last nn.Linear."""
    return model.get_submodule(head_name(model))


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Put a new nn.Linear(in_features, num_classes) (trainable, freshly initialised) in place
    of the model's last Linear; returns it."""
    num_classes = require_int(num_classes, "num_classes", minimum=1)
    name = head_name(model)
    old = model.get_submodule(name)
    new = nn.Linear(old.in_features, num_classes).to(old.weight.device)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return new


def freeze(module: nn.Module) -> nn.Module:
    """requires_grad=False for every parameter of `module` (they will not be trained)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """requires_grad=True for every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(True)
    return module


def freeze_all_but_head(model: nn.Module) -> nn.Module:
    """Freeze every parameter except the classifier's (step 1 of the notes' recipe).

    Frozen layers still run batch norm in train mode during fit; for small data put them
    in eval mode too, or precompute their features once (the notebook does).
    """
    freeze(model)
    unfreeze(head_of(model))
    return model


def trainable_params(model: nn.Module) -> int:
    """Number of parameters that an optimizer would update (requires_grad=True)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers from input to output, coarse enough to give each its own learning rate:
    its top-level children in order, with containers of blocks (a ModuleList, or a Sequential
    of blocks of one type, such as ResNet's layer1..4 or EfficientNet's _blocks) split into
    their blocks.
    Children without parameters are left out."""
    result = []
    for name, child in model.named_children():
        blocks = list(child.children())
        repeated = len(blocks) > 1 and len({type(b) for b in blocks}) == 1    # e.g. ResNet's layer1
        if isinstance(child, nn.ModuleList) or (isinstance(child, nn.Sequential) and repeated):
            result += [(f"{name}.{i}", block) for i, block in enumerate(blocks)]
        else:
            result.append((name, child))
    return [(name, module) for name, module in result if any(True for _ in module.parameters())]


def layerwise_lr_groups(model: nn.Module, head_lr: float, decay: float = 0.5,
                        trainable_only: bool = True) -> list[dict]:
    """Optimizer parameter groups with learning rates growing towards the output:
    the last stage (the head) gets `head_lr`, the one before `head_lr * decay`, and so on.

    Returns [{"params": [...], "lr": ..., "name": ...}, ...], input side first, for
    torch.optim.SGD/Adam(groups) or ``cnnkit.fit(..., param_groups=groups)``. Frozen
    parameters (requires_grad=False) are left out when trainable_only.
    """
    if not (isinstance(head_lr, (int, float)) and head_lr > 0):
        raise ValueError(f"head_lr must be a positive number, got {head_lr!r}")
    if not (isinstance(decay, (int, float)) and 0 < decay <= 1):
        raise ValueError(f"decay must be in (0, 1], got {decay!r}")
    layers = stages(model)
    groups = []
    for depth_from_output, (name, module) in enumerate(reversed(layers)):
        params = [p for p in module.parameters() if p.requires_grad or not trainable_only]
        if params:
            groups.append({"params": params, "lr": head_lr * decay ** depth_from_output, "name": name})
    if not groups:
        raise ValueError("the model has no trainable parameters: unfreeze some layers first")
    return groups[::-1]


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d by torchvision's FrozenBatchNorm2d with the same statistics.

    requires_grad=False does not stop batch norm: in train mode it still normalises with
    the batch's statistics and overwrites its running averages, which on a tiny target
    set ruins what was learned on the large one. Frozen, it always uses the stored ones.
    """
    from torchvision.ops import FrozenBatchNorm2d
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(model, name, frozen.to(child.weight.device))
        else:
            freeze_batchnorm(child)
    return model
