"""Code the seminar notebooks 05-07 use, kept here so the cells stay short.

    shapes_cnn()                    the from-scratch CNN of 06 and 07: (N, 3, H, W) -> (N, 5)
    Lite0Upper(base, cut, classes)  the upper blocks of a pretrained Lite0 with a new head (07)
    lite0_features(base, x, cut)    what the frozen part of Lite0 computes, once for all images (07)
    read_scalars(log_dir)           the scalars a TensorBoard run wrote, read back (05)
    mean_std(values)                "67.4% ± 2.9%": mean and sample std of accuracies over seeds
    compare_paired(a, b)            paired differences over seeds, and whether they are within noise
    jpeg(fig)                       a figure of photos embedded as JPEG (keeps the notebook file small)

See: notebooks/05_training.ipynb, 06_augmentation.ipynb, 07_transfer_learning.ipynb
"""

from __future__ import annotations

import copy
import io
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["shapes_cnn", "Lite0Upper", "lite0_features", "read_scalars", "mean_std", "within_noise", "compare_paired", "jpeg"]


def shapes_cnn(width: int = 16, num_classes: int = 5) -> nn.Sequential:
    """Four conv-BN-ReLU blocks, global average pooling, a linear head: (N, 3, H, W) -> (N, num_classes).

    The from-scratch CNN of 06 (on 28x28 crops) and 07 (on 32x32 images); global average
    pooling makes it accept both.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),              # H/2
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),      # H/4
        nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(), nn.MaxPool2d(2),  # H/8
        nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes))


class Lite0Upper(nn.Module):
    """Blocks cut..15, the head convolution and a new linear head of a pretrained EfficientNet-Lite0.

    Copies (the pretrained network is left unchanged). Input: what blocks 0..cut-1 output,
    (N, C_cut, h, w) -> (N, num_classes). The fine-tuned variant of 07 trains this part.
    """

    def __init__(self, pretrained_net: nn.Module, cut: int, num_classes: int):
        super().__init__()
        if not 0 <= cut <= len(pretrained_net._blocks):
            raise ValueError(f"cut must be in [0, {len(pretrained_net._blocks)}], got {cut!r}")
        self.blocks = nn.Sequential(*copy.deepcopy(pretrained_net._blocks[cut:]))
        self.head_conv = copy.deepcopy(pretrained_net._conv_head)
        self.head_bn = copy.deepcopy(pretrained_net._bn1)
        self.fc = nn.Linear(self.head_conv.out_channels, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.head_bn(self.head_conv(self.blocks(h))))     # (N, 1280, h', w')
        return self.fc(h.mean(dim=(2, 3)))                            # (N, num_classes)


@torch.no_grad()
def lite0_features(base: nn.Module, images: torch.Tensor, cut: int, size: int = 64,
                   chunk: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a pretrained Lite0 (eval mode) over `images` (N, 3, H, W) in [0, 1], resized to `size`.

    Returns (low, pooled): the output of blocks 0..cut-1, (N, C_cut, h, w), the input of
    ``Lite0Upper``; and the globally pooled 1280 features, (N, 1280), the input of a linear head.
    Frozen layers give the same output every epoch, so computing them once is exact.
    """
    from cnnkit.pretrained import NORMALIZATION
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATION["efficientnet_lite0"])
    device = next(base.parameters()).device
    was_training = base.training
    base.eval()
    low, pooled = [], []
    try:
        for part in images.split(chunk):
            x = (F.interpolate(part, size=size, mode="bilinear", align_corners=False) - mean) / std
            h = F.relu6(base._bn0(base._conv_stem(x.to(device))))
            for block in base._blocks[:cut]:
                h = block(h)
            low.append(h.cpu())
            for block in base._blocks[cut:]:
                h = block(h)
            pooled.append(F.relu6(base._bn1(base._conv_head(h))).mean(dim=(2, 3)).cpu())
    finally:
        base.train(was_training)
    return torch.cat(low), torch.cat(pooled)


def read_scalars(log_dir: str | os.PathLike) -> dict[str, tuple[list[int], list[float]]]:
    """Read back every scalar a TensorBoard run in `log_dir` wrote: {tag: (steps, values)}.

    The same numbers the dashboard's Scalars tab draws (e.g. "loss/val", "learning_rate").
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    if not os.path.isdir(log_dir):
        raise ValueError(f"log_dir must be a folder with TensorBoard event files, got {str(log_dir)!r}")
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})   # 0: keep every point
    events.Reload()
    return {tag: ([e.step for e in events.Scalars(tag)], [e.value for e in events.Scalars(tag)])
            for tag in events.Tags()["scalars"]}


def mean_std(values: Sequence[float], unit: str = "%") -> str:
    """'mean ± std' of a few measurements (sample std, n - 1).

    unit: "%" for accuracies (0.674 -> "67.4% ± 2.9%"), "pp" for differences of accuracies
    in percentage points (0.012 -> "+1.2 ± 3.4 pp"), "" for plain numbers.
    """
    if unit not in ("%", "pp", ""):
        raise ValueError(f"unit must be '%', 'pp' or '', got {unit!r}")
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values must not be empty")
    t = torch.tensor(values, dtype=torch.float64)
    mean, std = t.mean().item(), (t.std().item() if len(values) > 1 else float("nan"))
    if unit == "%":
        return f"{mean:.1%} ± {std:.1%}"
    if unit == "pp":
        return f"{100 * mean:+.1f} ± {100 * std:.1f} pp"
    return f"{mean:.3g} ± {std:.2g}"


# Two-sided 5% critical values of Student's t with n - 1 degrees of freedom, n = 2..10 seeds.
_T_CRITICAL = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}


def within_noise(differences: Sequence[float]) -> bool:
    """True unless paired differences (one per seed) are clearly away from 0: a paired t-test at the
    5% level (|mean| > t * std / sqrt(n)). The rule the notebooks use before calling a winner."""
    d = torch.tensor([float(v) for v in differences], dtype=torch.float64)
    if len(d) < 2:
        return True
    t = _T_CRITICAL.get(len(d), 2.0)
    return not d.mean().abs().item() > t * d.std().item() / len(d) ** 0.5


def compare_paired(a: Sequence[float], b: Sequence[float], name_a: str = "A", name_b: str = "B") -> str:
    """One line on two methods measured with the same seeds: their paired difference, in how many
    seeds `a` was ahead, and whether the difference is within noise (``within_noise``)."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"a and b must be equally long and non-empty, got {len(a)} and {len(b)}")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    ahead = sum(d > 0 for d in diffs)
    verdict = "within noise" if within_noise(diffs) else f"{name_a if sum(diffs) > 0 else name_b} is better"
    return (f"{name_a} minus {name_b}: {mean_std(diffs, 'pp')} over {len(diffs)} seeds, "
            f"{name_a} ahead in {ahead} of {len(diffs)}: {verdict}")


def jpeg(fig, dpi: int = 72, quality: int = 80):
    """Show a matplotlib figure as an embedded JPEG instead of a PNG.

    Photos compress many times better as JPEG, which keeps a notebook file small; use it
    for figures of photos, not for line plots (JPEG blurs thin lines). Returns an
    IPython Image to be the last line of a cell.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=dpi, pil_kwargs={"quality": quality})
    plt.close(fig)                                   # a pyplot figure would otherwise show twice
    return Image(data=buffer.getvalue(), format="jpeg")
