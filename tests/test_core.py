"""cnnkit.core: the argument-check helpers (one rule: TypeError for a wrong type, ValueError
for a bad value) and the eval_mode context manager."""

import numpy as np
import pytest
import torch
from torch import nn

import cnnkit
from cnnkit.core import eval_mode, require_float, require_int


@pytest.mark.parametrize("value, expected", [(3, 3), (np.int64(3), 3), (np.uint8(3), 3), (torch.tensor(3), 3)])
def test_require_int_accepts_integers_of_any_kind_and_returns_a_python_int(value, expected):
    got = require_int(value, "n", minimum=1)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 2.0, np.float32(2.0), "3", None, torch.tensor([1, 2]),
                                   torch.tensor(2.0)])
def test_require_int_refuses_other_types_with_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^batch_size must be a positive int, got "):
        require_int(value, "batch_size", minimum=1)


@pytest.mark.parametrize("kwargs, value, words", [
    ({"minimum": 1}, 0, "a positive int"),
    ({"minimum": 0}, -1, "a non-negative int"),
    ({"minimum": 2}, 1, "an int >= 2"),
    ({"minimum": 16, "maximum": 128}, 129, r"an int in \[16, 128\]"),
])
def test_require_int_out_of_range_is_a_value_error_with_the_expected_range(kwargs, value, words):
    with pytest.raises(ValueError, match=rf"^n must be {words}, got {value}$"):
        require_int(value, "n", **kwargs)


def test_require_float():
    assert require_float(np.float32(0.5), "lr", positive=True) == 0.5
    assert require_float(0, "weight_decay", minimum=0) == 0.0
    with pytest.raises(TypeError, match="lr must be a positive number"):
        require_float("0.1", "lr", positive=True)
    with pytest.raises(TypeError, match="lr"):
        require_float(True, "lr", positive=True)
    for bad in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr must be a positive number"):
            require_float(bad, "lr", positive=True)


def test_eval_mode_restores_each_submodules_own_flag_and_turns_off_autograd():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a frozen batch norm inside a training model
    with eval_mode(model) as inside:
        assert inside is model
        assert not any(m.training for m in model.modules())
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    assert [m.training for m in model.modules()] == [True, True, False, True]


def test_eval_mode_restores_flags_after_an_exception_and_can_keep_autograd():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(model):
            raise RuntimeError("boom")
    assert model.training and model[0].training
    with eval_mode(model, no_grad=False):
        assert torch.is_grad_enabled() and not model.training
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        with eval_mode("model"):
            pass


# One rule across the package: every argument that used a hand-written isinstance check now goes
# through require_int. Before, these wrong *types* raised ValueError in most modules.
def _calls_with_a_wrong_type():
    from cnnkit import data, models, norm, plot, train, transfer, tta
    image = torch.rand(3, 16, 16)
    return {
        "models.lenet5": lambda: models.lenet5(num_classes=10.0),
        "models.resnet_small depth": lambda: models.resnet_small(depth="20"),
        "norm.BatchNorm2d": lambda: norm.BatchNorm2d(4.0),
        "data.toy_2d": lambda: data.toy_2d(n=100.0),
        "data.Shapes size": lambda: data.Shapes(n=4, size=32.0),
        "plot.show_augmentations": lambda: plot.show_augmentations(image, lambda x: x, n=True),
        "train.fit epochs": lambda: train.fit(nn.Linear(2, 2), [(torch.zeros(2), 0)], epochs=1.5, progress=False),
        "train.fit patience": lambda: train.fit(nn.Linear(2, 2), [(torch.zeros(2), 0)], [(torch.zeros(2), 0)],
                                                patience=True, progress=False),
        "train.fit lr": lambda: train.fit(nn.Linear(2, 2), [(torch.zeros(2), 0)], lr="0.1", progress=False),
        "train.as_loader": lambda: train.as_loader([(torch.zeros(2), 0)], batch_size=8.0),
        "transfer.replace_head": lambda: transfer.replace_head(nn.Linear(2, 2), num_classes=None),
        "tta.shifts": lambda: tta.shifts(1.5),
        "tta.five_crop": lambda: tta.five_crop((8.0, 8)),
        "core.seed_everything": lambda: cnnkit.core.seed_everything(0.5),
    }


def _calls_with_a_bad_value():
    from cnnkit import data, models, norm, train, transfer, tta
    return {
        "models.lenet5": lambda: models.lenet5(num_classes=0),
        "models.resnet_small depth": lambda: models.resnet_small(depth=21),
        "norm.BatchNorm2d": lambda: norm.BatchNorm2d(0),
        "data.toy_2d": lambda: data.toy_2d(n=1),
        "data.Shapes size": lambda: data.Shapes(n=4, size=8),
        "train.fit epochs": lambda: train.fit(nn.Linear(2, 2), [(torch.zeros(2), 0)], epochs=-1, progress=False),
        "train.fit lr": lambda: train.fit(nn.Linear(2, 2), [(torch.zeros(2), 0)], lr=0.0, progress=False),
        "transfer.replace_head": lambda: transfer.replace_head(nn.Linear(2, 2), num_classes=0),
        "tta.shifts": lambda: tta.shifts(0),
        "tta.five_crop": lambda: tta.five_crop((8, 0)),
    }


@pytest.mark.parametrize("name", sorted(_calls_with_a_wrong_type()))
def test_a_wrong_type_raises_type_error_everywhere(name):
    with pytest.raises(TypeError):
        _calls_with_a_wrong_type()[name]()


@pytest.mark.parametrize("name", sorted(_calls_with_a_bad_value()))
def test_a_bad_value_raises_value_error_everywhere(name):
    with pytest.raises(ValueError):
        _calls_with_a_bad_value()[name]()
