"""cnnkit: the small helper package of the CNN course.

Each module belongs to a lesson; its docstring says which one.

    setup()        seeds everything and picks a device      (every notebook)
    core           setup, eval_mode, the argument checks (require_int: TypeError / ValueError)
    data           SmallMNIST and other small real datasets   (data/)
    conv, pooling  convolution and pooling from scratch, torch's semantics (01_convolutions)
    autograd       a scalar autograd engine                   (02_backprop)
    norm, init     batch/layer norm, initialisation schemes   (03_normalization)
    models         LeNet ... ResNet, EfficientNet-Lite0       (04_architectures, 07_transfer_learning)
                   a package: classic, resnet, efficientnet, profile
    tta            test-time augmentation (AlexNet's 10 crops) (06_augmentation)
    pretrained     ImageNet weights offline, preprocessing    (07_transfer_learning)
    transfer       freeze, new head, layer-wise learning rates (07_transfer_learning)
    train          fit / evaluate / predict with live curves  (every notebook; 05_training)
      checkpoint, lr_finder, monitor, batches: fit's helpers (public names also in train)
    plot           image grids, filters, feature maps, curves (every notebook)
    lessons        longer experiment code of lessons 05-07, kept out of the notebooks
    detect, scenes boxes, IoU, NMS, RoI pooling, AP, proposals; scenes with boxes (08_detection)
    check          exercise checks with immediate feedback, one module per lesson (every notebook)
    instructor     release and grading tools, never imported by a lesson: python -m cnnkit
                   (README, "For instructors")

Nothing heavy happens on ``import cnnkit``: each submodule is imported the first
time it is used (``cnnkit.plot``, ``from cnnkit import models``), so a script that
only grades notebooks never imports matplotlib or torchvision (PEP 562).
"""

import importlib

from cnnkit.core import eval_mode, get_device, setup

__version__ = "0.1.0"

# Submodules loaded on first access as attributes: cnnkit.conv, cnnkit.check, ...
_SUBMODULES = ("autograd", "batches", "check", "checkpoint", "conv", "core", "data", "detect", "init",
               "instructor", "lessons", "lr_finder", "models", "monitor", "norm", "plot", "pooling", "pretrained",
               "scenes", "train", "transfer", "tta")
# Names re-exported from a submodule, also loaded on first access: cnnkit.fit is cnnkit.train.fit.
_FROM_SUBMODULE = {"fit": "train", "evaluate": "train", "predict": "train", "History": "train"}

__all__ = [
    "setup", "get_device", "eval_mode", "fit", "evaluate", "predict", "History",
    "check", "conv", "data", "plot", "train", "__version__",
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        try:
            return importlib.import_module(f"cnnkit.{name}")   # also sets cnnkit.<name>
        except ModuleNotFoundError as exc:
            if exc.name != f"cnnkit.{name}":
                raise                                         # a dependency is missing: say which
            raise AttributeError(f"module 'cnnkit' has no attribute {name!r}") from None
    if name in _FROM_SUBMODULE:
        value = getattr(importlib.import_module(f"cnnkit.{_FROM_SUBMODULE[name]}"), name)
        globals()[name] = value                               # next access skips __getattr__
        return value
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES) | set(_FROM_SUBMODULE))
