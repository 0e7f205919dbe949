"""cnnkit.models against torchvision: parameter counts, state_dict loading, equal outputs, shapes."""

import pytest
import torch
import torchvision
from torch import nn

from cnnkit import models as M

tv = torchvision.models

COUNTS = [  # (cnnkit builder, expected parameters) -- the numbers the lecture quotes
    (M.lenet5, 61_706),
    (M.alexnet, 61_100_840),
    (M.vgg16, 138_357_544),
    (M.googlenet, 6_624_904),
    (lambda: M.googlenet(aux_logits=True), 13_004_888),
    (M.resnet18, 11_689_512),
    (M.resnet50, 25_557_032),
]


@pytest.mark.parametrize("build,expected", COUNTS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_parameter_counts_from_the_papers_and_torchvision(build, expected):
    assert M.count_params(build()) == expected


PAIRS = [  # every architecture whose weights torchvision publishes, built with random init
    ("alexnet", M.alexnet, lambda: tv.alexnet()),
    ("vgg11", M.vgg11, lambda: tv.vgg11()),
    ("vgg13", M.vgg13, lambda: tv.vgg13()),
    ("vgg16", M.vgg16, lambda: tv.vgg16()),
    ("vgg19", M.vgg19, lambda: tv.vgg19()),
    ("vgg11_bn", lambda: M.vgg11(batch_norm=True), lambda: tv.vgg11_bn()),
    ("googlenet", M.googlenet, lambda: tv.googlenet(aux_logits=False, init_weights=False)),
    ("googlenet_aux", lambda: M.googlenet(aux_logits=True), lambda: tv.googlenet(aux_logits=True, init_weights=False)),
    ("resnet18", M.resnet18, lambda: tv.resnet18()),
    ("resnet34", M.resnet34, lambda: tv.resnet34()),
    ("resnet50", M.resnet50, lambda: tv.resnet50()),
    ("resnet101", M.resnet101, lambda: tv.resnet101()),
    ("resnet152", M.resnet152, lambda: tv.resnet152()),
]


@pytest.mark.parametrize("name,ours,theirs", PAIRS, ids=[p[0] for p in PAIRS])
def test_same_parameter_count_and_state_dict_keys_as_torchvision(name, ours, theirs):
    a, b = ours(), theirs()
    assert M.count_params(a) == M.count_params(b)
    assert list(a.state_dict()) == list(b.state_dict())
    for key, value in b.state_dict().items():
        assert a.state_dict()[key].shape == value.shape, key


@pytest.mark.parametrize("name,ours,theirs", [p for p in PAIRS if p[0] in
                                              ("alexnet", "vgg11", "vgg11_bn", "googlenet", "resnet18", "resnet50")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_torchvision_weights_load_and_give_the_same_outputs(name, ours, theirs):
    torch.manual_seed(0)
    b = theirs()
    for m in b.modules():          # non-trivial BN statistics, so eval mode is really tested
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    a = ours()
    a.load_state_dict(b.state_dict())
    a.eval(), b.eval()
    size = 224 if name == "alexnet" else 96      # adaptive pooling: smaller inputs work too
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)
    a.train(), b.train()
    torch.manual_seed(1)
    out_a = a(x)
    torch.manual_seed(1)
    out_b = b(x)
    out_a = out_a[0] if isinstance(out_a, tuple) else out_a
    out_b = out_b[0] if isinstance(out_b, tuple) else out_b
    torch.testing.assert_close(out_a, out_b, rtol=1e-4, atol=1e-5)   # train mode, same dropout draws


@pytest.mark.parametrize("build,sizes", [
    (M.resnet18, [64, 128, 224, 256]),
    (M.googlenet, [96, 160, 224]),
    (M.alexnet, [224, 256]),
    (lambda: M.vgg11(num_classes=7), [32, 64]),
    (M.inception_bn, [96, 224]),
])
def test_output_shapes_for_several_input_sizes(build, sizes):
    model = build().eval()
    classes = model.fc.out_features if hasattr(model, "fc") else model.classifier[-1].out_features
    with torch.no_grad():
        for s in sizes:
            assert model(torch.randn(1, 3, s, s)).shape == (1, classes)


def test_googlenet_aux_heads_only_in_training():
    net = M.googlenet(num_classes=5, aux_logits=True)
    out = net(torch.randn(2, 3, 128, 128))
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 5)] * 3
    net.eval()
    assert net(torch.randn(2, 3, 128, 128)).shape == (2, 5)


def test_lenet5_shapes_and_small_resnets():
    assert M.lenet5()(torch.randn(4, 1, 32, 32)).shape == (4, 10)
    for depth in (8, 20, 32):
        for plain in (False, True):
            net = M.resnet_small(depth, num_classes=10, in_channels=1, width=8, plain=plain)
            assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
            assert M.profile(net, (1, 1, 28, 28))["depth"] == depth
    resnet20 = M.resnet_small(20)
    assert M.count_params(resnet20) == 269_722       # the paper's ResNet-20: 0.27M


def test_zero_padded_shortcut_has_no_parameters_and_keeps_the_input():
    block = M.SmallBlock(8, 16, stride=2)
    assert sum(p.numel() for p in block.shortcut.parameters()) == 0
    x = torch.randn(1, 8, 6, 6)
    short = block.shortcut(x)
    assert short.shape == (1, 16, 3, 3)
    assert torch.equal(short[:, :8], x[:, :, ::2, ::2]) and torch.equal(short[:, 8:], torch.zeros(1, 8, 3, 3))


def test_profile_numbers():
    alex = M.profile(M.alexnet())
    assert alex["parameters"] == 61_100_840 and round(alex["fc_share"], 4) == 0.9596
    assert alex["mult_adds"] == 714_188_480 and alex["depth"] == 8
    vgg = M.profile(M.vgg16())
    assert round(vgg["fc_share"], 4) == 0.8936 and vgg["depth"] == 16
    assert abs(vgg["mult_adds"] / 1e9 - 15.47) < 0.01
    r50 = M.profile(M.resnet50())
    assert r50["depth"] == 50 and abs(r50["mult_adds"] / 1e9 - 4.09) < 0.01
    assert M.profile(M.googlenet())["depth"] == 22
    table = M.compare({"a": M.lenet5()}, (1, 1, 32, 32))
    assert table[0]["name"] == "a" and table[0]["parameters"] == 61_706


def test_profile_does_not_touch_the_weights():
    net = M.resnet18()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    M.profile(net)
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_summary_uses_torchinfo():
    stats = M.summary(M.lenet5(), (1, 1, 32, 32))
    assert stats.total_params == 61_706


@pytest.mark.parametrize("call,match", [
    (lambda: M.resnet_small(21), "6n \\+ 2"),
    (lambda: M.resnet_small(2), "6n \\+ 2"),
    (lambda: M.alexnet(num_classes=0), "num_classes"),
    (lambda: M.resnet18(num_classes=-3), "num_classes"),
    (lambda: M.profile(M.lenet5(), (1, 32, 32)), "input_size"),
    (lambda: M.Inception(8, 1, 1, 1, 1, 1, 1, five="7x7"), "five"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_wrong_type_is_a_type_error():
    # One rule for the package (cnnkit.core.require_int): a float is not a number of classes.
    with pytest.raises(TypeError, match="num_classes must be a positive int, got float 2.5"):
        M.resnet18(num_classes=2.5)
    with pytest.raises(TypeError, match="depth"):
        M.resnet_small(20.0)


# Every public name of the former single-file models.py, still importable as cnnkit.models.X.
FORMER_PUBLIC_NAMES = ["AlexNet", "BasicBlock", "BasicConv2d", "Bottleneck", "EfficientNetLite", "GOOGLENET_BLOCKS",
                       "GoogLeNet", "Inception", "InceptionAux", "MBConv", "ResNet", "SameConv2d", "SmallBlock", "VGG",
                       "VGG_CONFIGS", "ZeroPadShortcut", "alexnet", "compare", "conv1x1", "conv3x3", "conv_bn_relu",
                       "count_params", "efficientnet_lite0", "googlenet", "inception_bn", "lenet5", "profile",
                       "resnet101", "resnet152", "resnet18", "resnet34", "resnet50", "resnet_small", "summary",
                       "vgg11", "vgg13", "vgg16", "vgg19"]


def test_every_former_public_name_is_still_in_cnnkit_models():
    assert [name for name in FORMER_PUBLIC_NAMES if not hasattr(M, name)] == []
