"""Classic CNN architectures, written to be read: LeNet-5, AlexNet, VGG, GoogLeNet,
Inception-BN, ResNet, EfficientNet-Lite0, plus small CPU-scale ResNets for experiments.

One module per family, each short enough to read in one sitting:

    classic.py       LeNet-5, AlexNet, VGG, GoogLeNet / Inception-BN
    resnet.py        ResNet-18 ... 152, and the small CIFAR-style ResNets (depth 6n + 2)
    efficientnet.py  EfficientNet-Lite0 (mobile inverted residual blocks)
    profile.py       parameters, multiply-adds and depth of any model

Every name is importable from here: ``cnnkit.models.resnet18``. AlexNet, VGG and ResNet
use torchvision's layer names, so a torchvision ``state_dict`` (e.g. ImageNet weights)
loads into them and gives the same outputs; GoogLeNet has torchvision's parameter
counts. Nothing is downloaded: ``resnet18(weights="IMAGENET1K_V1")`` reads torchvision's
file from the local torch cache, and ``efficientnet_lite0(pretrained=True)`` reads
ImageNet weights that ship inside a pip package (see ``cnnkit.pretrained``).

See: notebooks/04_architectures.ipynb, notebooks/07_transfer_learning.ipynb
"""

# Every public name of the four modules, as before the split (cnnkit.models.AlexNet, ...); __all__
# below keeps the short list that `from cnnkit.models import *` gave.
from cnnkit.models.classic import (  # noqa: F401
    GOOGLENET_BLOCKS, VGG, VGG_CONFIGS, AlexNet, BasicConv2d, GoogLeNet, Inception, InceptionAux, alexnet,
    conv_bn_relu, googlenet, inception_bn, lenet5, vgg11, vgg13, vgg16, vgg19)
from cnnkit.models.efficientnet import (  # noqa: F401
    LITE0_STAGES, EfficientNetLite, MBConv, SameConv2d, efficientnet_lite0)
from cnnkit.models.profile import compare, count_params, profile, summary
from cnnkit.models.resnet import (  # noqa: F401
    BasicBlock, Bottleneck, ResNet, SmallBlock, ZeroPadShortcut, conv1x1, conv3x3, resnet18, resnet34, resnet50,
    resnet101, resnet152, resnet_small)

__all__ = ["lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "googlenet", "inception_bn",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet_small",
           "efficientnet_lite0", "EfficientNetLite", "MBConv",
           "BasicBlock", "Bottleneck", "Inception", "count_params", "profile", "compare", "summary"]
