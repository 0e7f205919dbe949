"""The classic architectures, written to be read: LeNet-5, AlexNet, VGG, GoogLeNet and
Inception-BN. AlexNet and VGG use torchvision's layer names (its state_dicts load),
GoogLeNet has torchvision's parameter counts.

See: notebooks/04_architectures.ipynb
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.core import require_int

__all__ = ["lenet5", "alexnet", "AlexNet", "vgg11", "vgg13", "vgg16", "vgg19", "VGG", "VGG_CONFIGS",
           "googlenet", "inception_bn", "GoogLeNet", "Inception", "InceptionAux", "BasicConv2d",
           "conv_bn_relu", "GOOGLENET_BLOCKS"]


# ----------------------------------------------------------------------------
# LeNet-5 (LeCun et al., 1998): digits on postal envelopes
# ----------------------------------------------------------------------------

def lenet5(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 for (N, 1, 32, 32) inputs: 61,706 parameters with 10 classes.

    C1 conv 5x5 -> S2 pool -> C3 conv 5x5 -> S4 pool -> C5 conv 5x5 -> F6 -> output,
    tanh activations and average pooling (the paper's subsampling layers also had a
    trainable scale and bias, and C3 was sparsely connected; this is the common
    simplification with full connections).
    """
    require_int(num_classes, "num_classes", minimum=1)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),        # C1, S2: (6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),       # C3, S4: (16, 5, 5)
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),        # C5: (120,)
        nn.Linear(120, 84), nn.Tanh(),                         # F6
        nn.Linear(84, num_classes),                            # output
    )


# ----------------------------------------------------------------------------
# AlexNet (Krizhevsky et al., 2012)
# ----------------------------------------------------------------------------

class AlexNet(nn.Module):
    """AlexNet as in torchvision (the one-GPU variant of the paper, 64/192 channels
    in the first layers instead of 96/256): 61,100,840 parameters."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        require_int(num_classes, "num_classes", minimum=1)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),  # 11x11 kernels
            nn.MaxPool2d(kernel_size=3, stride=2),                                        # overlapping pooling
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(           # where most of the parameters live
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                       # (N, 256, H', W')
        x = self.avgpool(x)                        # (N, 256, 6, 6)
        return self.classifier(torch.flatten(x, 1))


def alexnet(num_classes: int = 1000) -> AlexNet:
    """AlexNet; torchvision's state_dict keys (``features.N``, ``classifier.N``)."""
    return AlexNet(num_classes)


# ----------------------------------------------------------------------------
# VGG (Simonyan & Zisserman, 2014): only 3x3 convolutions
# ----------------------------------------------------------------------------

# Numbers are the output channels of 3x3 convolutions, "M" a 2x2 max pooling.
VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG with torchvision's layout: features / avgpool (7x7) / classifier."""

    def __init__(self, config: Sequence, num_classes: int = 1000, batch_norm: bool = False,
                 dropout: float = 0.5):
        super().__init__()
        require_int(num_classes, "num_classes", minimum=1)
        layers, c_in = [], 3
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.Conv2d(c_in, v, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=True))
                c_in = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))         # (N, 512, 7, 7)
        return self.classifier(torch.flatten(x, 1))


def _vgg(depth: int, num_classes: int, batch_norm: bool) -> VGG:
    return VGG(VGG_CONFIGS[depth], num_classes, batch_norm)


def vgg11(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG-11 (configuration A): 132,863,336 parameters."""
    return _vgg(11, num_classes, batch_norm)


def vgg13(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG-13 (configuration B): 133,047,848 parameters."""
    return _vgg(13, num_classes, batch_norm)


def vgg16(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG-16 (configuration D): 138,357,544 parameters."""
    return _vgg(16, num_classes, batch_norm)


def vgg19(num_classes: int = 1000, batch_norm: bool = False) -> VGG:
    """VGG-19 (configuration E): 143,667,240 parameters."""
    return _vgg(19, num_classes, batch_norm)


# ----------------------------------------------------------------------------
# GoogLeNet / Inception (Szegedy et al., 2014) and Inception-BN (Ioffe & Szegedy, 2015)
# ----------------------------------------------------------------------------

class BasicConv2d(nn.Module):
    """Conv (no bias: BN has its own shift) -> BatchNorm -> ReLU, named like torchvision's."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0) -> BasicConv2d:
    """Conv -> BatchNorm -> ReLU, the unit every GoogLeNet layer is made of."""
    return BasicConv2d(c_in, c_out, kernel_size, stride, padding)


class Inception(nn.Module):
    """Four parallel branches, concatenated along channels:

        1x1  |  1x1 -> 3x3  |  1x1 -> 5x5 (or two 3x3)  |  3x3 max pool -> 1x1

    The 1x1 convolutions before the 3x3/5x5 ones are *bottlenecks*: they shrink the
    channels first, so the expensive convolutions see fewer inputs.
    """

    def __init__(self, c_in: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int,
                 pool_proj: int, five: str = "3x3"):
        super().__init__()
        self.branch1 = conv_bn_relu(c_in, c1, 1)
        self.branch2 = nn.Sequential(conv_bn_relu(c_in, c3_reduce, 1), conv_bn_relu(c3_reduce, c3, 3, padding=1))
        if five == "5x5":
            third = [conv_bn_relu(c5_reduce, c5, 5, padding=2)]
        elif five == "3x3":
            # torchvision's GoogLeNet uses a 3x3 here where the paper has 5x5 (kept for
            # compatibility with its pretrained weights; pytorch/vision issue #906).
            third = [conv_bn_relu(c5_reduce, c5, 3, padding=1)]
        elif five == "double3x3":
            # Inception-BN: a 5x5 field from two stacked 3x3 convolutions, fewer parameters.
            third = [conv_bn_relu(c5_reduce, c5, 3, padding=1), conv_bn_relu(c5, c5, 3, padding=1)]
        else:
            raise ValueError(f"five must be '5x5', '3x3' or 'double3x3', got {five!r}")
        self.branch3 = nn.Sequential(conv_bn_relu(c_in, c5_reduce, 1), *third)
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     conv_bn_relu(c_in, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, dim=1)          # (N, c1 + c3 + c5 + pool_proj, H, W)


class InceptionAux(nn.Module):
    """An auxiliary classifier on an intermediate layer: extra gradient for the lower
    layers during training, dropped at test time."""

    def __init__(self, c_in: int, num_classes: int, dropout: float = 0.7):
        super().__init__()
        self.conv = conv_bn_relu(c_in, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.adaptive_avg_pool2d(x, (4, 4)))   # (N, 128, 4, 4)
        x = self.dropout(F.relu(self.fc1(torch.flatten(x, 1)), inplace=True))
        return self.fc2(x)


# (c1, c3_reduce, c3, c5_reduce, c5, pool_proj) of the nine Inception blocks
GOOGLENET_BLOCKS = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """GoogLeNet with batch norm in every convolution (as torchvision builds it):
    6,624,904 parameters, 13,004,888 with the two auxiliary classifiers; torchvision's
    layer names, so its state_dict loads."""

    def __init__(self, num_classes: int = 1000, aux_logits: bool = False, five: str = "3x3",
                 dropout: float = 0.2):
        super().__init__()
        require_int(num_classes, "num_classes", minimum=1)
        self.conv1 = conv_bn_relu(3, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv_bn_relu(64, 64, 1)
        self.conv3 = conv_bn_relu(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        c, blocks = 192, {}
        for name, widths in GOOGLENET_BLOCKS.items():
            blocks[name] = Inception(c, *widths, five=five)
            c = blocks[name].out_channels
        self.inception3a, self.inception3b = blocks["3a"], blocks["3b"]
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a, self.inception4b, self.inception4c = blocks["4a"], blocks["4b"], blocks["4c"]
        self.inception4d, self.inception4e = blocks["4d"], blocks["4e"]
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a, self.inception5b = blocks["5a"], blocks["5b"]
        self.aux_logits = aux_logits
        self.aux1 = InceptionAux(512, num_classes) if aux_logits else None   # after 4a
        self.aux2 = InceptionAux(528, num_classes) if aux_logits else None   # after 4d
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))    # global average pooling: any input size
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor):
        x = self.maxpool1(self.conv1(x))                               # (N, 64, H/4, W/4)
        x = self.maxpool2(self.conv3(self.conv2(x)))                   # (N, 192, H/8, W/8)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))       # (N, 480, H/16, W/16)
        x = self.inception4a(x)                                        # (N, 512, ...)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))   # (N, 528, ...)
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))                         # (N, 832, H/32, W/32)
        x = self.inception5b(self.inception5a(x))                      # (N, 1024, ...)
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))  # (N, num_classes)
        if aux1 is not None:
            return x, aux2, aux1            # torchvision's order: logits, aux2, aux1
        return x


def googlenet(num_classes: int = 1000, aux_logits: bool = False) -> GoogLeNet:
    """GoogLeNet / Inception v1 (torchvision's parameter counts); aux heads optional."""
    return GoogLeNet(num_classes, aux_logits)


def inception_bn(num_classes: int = 1000) -> GoogLeNet:
    """An Inception-BN variant: GoogLeNet's layout with batch norm everywhere and the
    5x5 branch replaced by two stacked 3x3 convolutions (as in Ioffe & Szegedy 2015;
    the paper's BN-Inception also changes some widths and pooling, not reproduced)."""
    return GoogLeNet(num_classes, aux_logits=False, five="double3x3")
