"""ResNet (He et al., 2015): the ImageNet family ResNet-18 ... 152 with torchvision's layer
names (so its ImageNet weights load, offline), and the paper's small CIFAR-style
networks (depth 6n + 2) for experiments on a CPU, with a switch to remove the shortcuts.

See: notebooks/04_architectures.ipynb, notebooks/07_transfer_learning.ipynb
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.core import require_int

__all__ = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "ResNet", "BasicBlock", "Bottleneck",
           "conv3x3", "conv1x1", "resnet_small", "SmallBlock", "ZeroPadShortcut"]


# ----------------------------------------------------------------------------
# ResNet (He et al., 2015)
# ----------------------------------------------------------------------------

def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 (keeps the size at stride 1)."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution: mixes channels; with stride 2 it also downsamples."""
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """out = ReLU(F(x) + shortcut(x)), F = conv3x3 -> BN -> ReLU -> conv3x3 -> BN.

    The block only has to learn the *correction* F(x) to its input.
    """

    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)      # stride 2 here downsamples (no pooling)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = downsample                   # reshapes x when the shape changes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand x4), plus the shortcut: ResNet-50/101/152.

    Stride sits on the 3x3 convolution ("ResNet v1.5", as torchvision; the paper
    put it on the first 1x1).
    """

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(c_in, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ImageNet ResNet with torchvision's layer names (conv1, bn1, layer1..4, fc)."""

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000,
                 zero_init_residual: bool = False):
        super().__init__()
        require_int(num_classes, "num_classes", minimum=1)
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # each block starts as the identity (Goyal et al., 2017)
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.bn3.weight if isinstance(m, Bottleneck) else m.bn2.weight)

    def _make_layer(self, block: type, width: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_channels != width * block.expansion:
            # the shape changes: a strided 1x1 projection on the shortcut
            downsample = nn.Sequential(conv1x1(self.in_channels, width * block.expansion, stride),
                                       nn.BatchNorm2d(width * block.expansion))
        layers = [block(self.in_channels, width, stride, downsample)]
        self.in_channels = width * block.expansion
        layers += [block(self.in_channels, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))   # (N, 64, H/4, W/4)
        x = self.layer1(x)                                     # (N, 64*e, H/4, W/4)
        x = self.layer2(x)                                     # (N, 128*e, H/8, W/8)
        x = self.layer3(x)                                     # (N, 256*e, H/16, W/16)
        x = self.layer4(x)                                     # (N, 512*e, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)                  # (N, 512*e): any input size
        return self.fc(x)


def _resnet(arch: str, block: type, layers: list[int], num_classes: int, weights: str | None) -> ResNet:
    """Build one member of the family and, if asked, load torchvision's ImageNet `weights` from
    the local torch cache ($TORCH_HOME/hub/checkpoints; nothing is downloaded, a clear error
    says how to get them). With num_classes != 1000 the backbone is pretrained and the new
    head `fc` stays randomly initialised."""
    model = ResNet(block, layers, num_classes)
    if weights is not None:
        from cnnkit.pretrained import load_imagenet_state, load_torchvision_weights
        load_imagenet_state(model, load_torchvision_weights(arch, weights), head="fc")
    return model


def resnet18(num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11,689,512 parameters. weights: "IMAGENET1K_V1"."""
    return _resnet("resnet18", BasicBlock, [2, 2, 2, 2], num_classes, weights)


def resnet34(num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3], 21,797,672 parameters. weights: "IMAGENET1K_V1"."""
    return _resnet("resnet34", BasicBlock, [3, 4, 6, 3], num_classes, weights)


def resnet50(num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3], 25,557,032 parameters.
    weights: "IMAGENET1K_V1" or "IMAGENET1K_V2"."""
    return _resnet("resnet50", Bottleneck, [3, 4, 6, 3], num_classes, weights)


def resnet101(num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3], 44,549,160 parameters.
    weights: "IMAGENET1K_V1" or "IMAGENET1K_V2"."""
    return _resnet("resnet101", Bottleneck, [3, 4, 23, 3], num_classes, weights)


def resnet152(num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3], 60,192,808 parameters.
    weights: "IMAGENET1K_V1" or "IMAGENET1K_V2"."""
    return _resnet("resnet152", Bottleneck, [3, 8, 36, 3], num_classes, weights)


# ----------------------------------------------------------------------------
# A small ResNet for CPU experiments (the paper's CIFAR-10 family, 6n + 2 layers)
# ----------------------------------------------------------------------------

class ZeroPadShortcut(nn.Module):
    """Option A shortcut of the paper: subsample by `stride`, pad new channels with zeros.

    No parameters: (N, C, H, W) -> (N, C_out, H / stride, W / stride).
    """

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.extra, self.stride = c_out - c_in, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]               # take every other pixel
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))             # zeros for the new channels


class SmallBlock(nn.Module):
    """A basic block whose shortcut can be switched off (plain=True) for the degradation experiment."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, plain: bool = False):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.plain = plain
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else ZeroPadShortcut(c_in, c_out, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out if self.plain else out + self.shortcut(x))


def resnet_small(depth: int = 20, num_classes: int = 10, in_channels: int = 3, width: int = 16,
                 plain: bool = False) -> nn.Sequential:
    """The CIFAR-style ResNet of the paper: depth = 6n + 2 (20, 32, 44, 56, 110 ...).

    conv3x3 -> 3 stages of n blocks (width, 2*width, 4*width channels; stride 2
    between stages, zero-padded shortcuts) -> global average pooling -> linear.
    plain=True removes every shortcut: the same layers without residual connections.
    Works for any input size thanks to global average pooling.
    """
    if require_int(depth, "depth") < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got {depth!r}")
    require_int(num_classes, "num_classes", minimum=1)
    n = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    c = width
    for stage, c_out in enumerate((width, 2 * width, 4 * width)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(SmallBlock(c, c_out, stride, plain))
            c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model
