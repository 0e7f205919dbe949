"""cnnkit: the small helper package of the CNN course.

Each module belongs to a lesson; its docstring says which one.

    setup()        seeds everything and picks a device      (every notebook)
    data           SmallMNIST and other small real datasets   (data/)
    conv           convolution and pooling from scratch       (01_convolutions)
    autograd       a scalar autograd engine                   (02_backprop)
    norm, init     batch/layer norm, initialisation schemes   (03_normalization)
    models         LeNet ... ResNet, EfficientNet-Lite0       (04_architectures, 07_transfer_learning)
    tta            test-time augmentation (AlexNet's 10 crops) (06_augmentation)
    pretrained     ImageNet weights offline, preprocessing    (07_transfer_learning)
    transfer       freeze, new head, layer-wise learning rates (07_transfer_learning)
    train          fit / evaluate / predict with live curves  (every notebook; 05_training)
    plot           image grids, filters, feature maps, curves (every notebook)
    check          exercise checks with immediate feedback    (every notebook)
    grading        release and grading tools: python -m cnnkit (README, "For instructors")

The lesson modules are imported on demand: ``from cnnkit import models``.
"""

from cnnkit import check, conv, data, plot, train
from cnnkit.core import get_device, setup
from cnnkit.train import History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "setup", "get_device", "fit", "evaluate", "predict", "History",
    "check", "conv", "data", "plot", "train", "__version__",
]
