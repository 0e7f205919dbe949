"""cnnkit.norm and cnnkit.init against PyTorch: values, gradients, running statistics, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit import init, norm

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)
D = torch.float64


@st.composite
def bn_case(draw):
    dims = draw(st.sampled_from([2, 3, 4]))
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 5))
    spatial = [draw(st.integers(1, 5)) for _ in range(dims - 2)]
    if n * math.prod(spatial) < 2:
        n = 2
    return dict(shape=(n, c, *spatial), affine=draw(st.booleans()), momentum=draw(st.floats(0.01, 0.9)),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), seed=draw(st.integers(0, 10**6)))


def tensors(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    c = cfg["shape"][1]
    x = (torch.randn(cfg["shape"], generator=gen, dtype=D) * 3 + 1).requires_grad_()
    w = torch.randn(c, generator=gen, dtype=D, requires_grad=True) if cfg["affine"] else None
    b = torch.randn(c, generator=gen, dtype=D, requires_grad=True) if cfg["affine"] else None
    rm, rv = torch.randn(c, generator=gen, dtype=D), torch.rand(c, generator=gen, dtype=D) + 0.5
    return x, w, b, rm, rv


@SETTINGS
@given(bn_case(), st.booleans())
def test_batch_norm_matches_torch_values_gradients_and_running_stats(cfg, training):
    x, w, b, rm, rv = tensors(cfg)
    rm2, rv2 = rm.clone(), rv.clone()
    ours = norm.batch_norm(x, rm, rv, w, b, training, cfg["momentum"], cfg["eps"])
    ref = F.batch_norm(x, rm2, rv2, w, b, training, cfg["momentum"], cfg["eps"])
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(rm, rm2, rtol=1e-12, atol=1e-12)   # updated in place, exactly like torch
    torch.testing.assert_close(rv, rv2, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    inputs = [t for t in (x, w, b) if t is not None]
    for a, r in zip(torch.autograd.grad(ours, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(a, r)


@st.composite
def ln_case(draw):
    shape = [draw(st.integers(1, 5)) for _ in range(draw(st.integers(2, 4)))]
    k = draw(st.integers(1, len(shape) - 1))
    return dict(shape=tuple(shape), normalized=tuple(shape[-k:]), affine=draw(st.booleans()),
                eps=draw(st.sampled_from([1e-5, 1e-2])), seed=draw(st.integers(0, 10**6)))


@SETTINGS
@given(ln_case())
def test_layer_norm_matches_torch_values_and_gradients(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = (torch.randn(cfg["shape"], generator=gen, dtype=D) * 2 - 1).requires_grad_()
    w = torch.randn(cfg["normalized"], generator=gen, dtype=D, requires_grad=True) if cfg["affine"] else None
    b = torch.randn(cfg["normalized"], generator=gen, dtype=D, requires_grad=True) if cfg["affine"] else None
    ours = norm.layer_norm(x, cfg["normalized"], w, b, cfg["eps"])
    ref = F.layer_norm(x, cfg["normalized"], w, b, cfg["eps"])
    torch.testing.assert_close(ours, ref)
    g = torch.randn_like(ref)
    inputs = [t for t in (x, w, b) if t is not None]
    for a, r in zip(torch.autograd.grad(ours, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(a, r)


def test_gradcheck_batch_norm_and_layer_norm():
    x = torch.randn(4, 3, 2, 2, dtype=D, requires_grad=True)
    w = torch.randn(3, dtype=D, requires_grad=True)
    b = torch.randn(3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: norm.batch_norm(x, None, None, w, b, True), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: norm.layer_norm(x, (3, 2, 2)), (x,))


PAIRS = [(norm.BatchNorm1d, nn.BatchNorm1d, (8, 5)), (norm.BatchNorm1d, nn.BatchNorm1d, (8, 5, 7)),
         (norm.BatchNorm2d, nn.BatchNorm2d, (6, 5, 4, 3))]


@pytest.mark.parametrize("ours_cls,torch_cls,shape", PAIRS)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
def test_batchnorm_modules_follow_torch_over_many_steps(ours_cls, torch_cls, shape, momentum, affine, track):
    torch.manual_seed(0)
    ref = torch_cls(shape[1], momentum=momentum, affine=affine, track_running_stats=track).double()
    ours = ours_cls(shape[1], momentum=momentum, affine=affine, track_running_stats=track).double()
    if affine:
        with torch.no_grad():
            ref.weight.normal_(); ref.bias.normal_()
    ours.load_state_dict(ref.state_dict())                      # same keys, so a torch state loads
    assert list(ours.state_dict()) == list(ref.state_dict())
    for step in range(5):
        x = torch.randn(shape, dtype=D) * (step + 1) + step
        for m in (ours, ref):
            m.train()
        torch.testing.assert_close(ours(x), ref(x))
        for m in (ours, ref):
            m.eval()
        torch.testing.assert_close(ours(x), ref(x))
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)


def test_layernorm_module_loads_torch_state_and_matches():
    ref = nn.LayerNorm((4, 3)).double()
    with torch.no_grad():
        ref.weight.normal_(); ref.bias.normal_()
    ours = norm.LayerNorm((4, 3)).double()
    ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == ["weight", "bias"]
    x = torch.randn(5, 2, 4, 3, dtype=D)
    torch.testing.assert_close(ours(x), ref(x))


def test_batchnorm_eval_uses_running_statistics_not_the_batch():
    bn = norm.BatchNorm1d(3)
    for _ in range(200):
        bn(torch.randn(64, 3) * 2 + 5)
    bn.eval()
    assert torch.allclose(bn.running_mean, torch.full((3,), 5.0), atol=0.3)
    single = bn(torch.full((1, 3), 5.0))                       # one example is fine in eval mode
    assert torch.allclose(single, torch.zeros(1, 3), atol=0.2)


@pytest.mark.parametrize("call,match", [
    (lambda: norm.BatchNorm2d(3)(torch.randn(2, 4, 5, 5)), "channels"),
    (lambda: norm.BatchNorm2d(3)(torch.randn(2, 3, 5)), "4-d"),
    (lambda: norm.BatchNorm1d(3)(torch.randn(2, 3, 5, 5)), "2-d or 3-d"),
    (lambda: norm.BatchNorm1d(3)(torch.randn(1, 3)), "more than 1 value per channel"),
    (lambda: norm.BatchNorm2d(3)(torch.randn(1, 3, 1, 1)), "more than 1 value per channel"),
    (lambda: norm.BatchNorm1d(0), "num_features"),
    (lambda: norm.batch_norm(torch.randn(4), None, None, training=True), "at least 2 dims"),
    (lambda: norm.batch_norm(torch.randn(4, 3), torch.zeros(2), torch.ones(3)), "running_mean"),
    (lambda: norm.batch_norm(torch.randn(4, 3), torch.zeros(3), torch.ones(3), torch.ones(4)), "weight"),
    (lambda: norm.batch_norm(torch.randn(4, 3), None, None, training=False), "training=False"),
    (lambda: norm.layer_norm(torch.randn(4, 3), (4,)), "normalized_shape"),
    (lambda: norm.layer_norm(torch.randn(4, 3), 3, torch.ones(4)), "weight"),
    (lambda: norm.LayerNorm(5)(torch.randn(2, 4)), "normalized_shape"),
    (lambda: init.kaiming_normal_(torch.empty(5)), "at least 2 dims"),
    (lambda: init.kaiming_normal_(torch.empty(3, 3), mode="fan_middle"), "mode"),
    (lambda: init.calculate_gain("swish"), "nonlinearity"),
    (lambda: init.init_model(nn.Linear(2, 2), "lecun"), "scheme"),
    (lambda: init.init_model(nn.Linear(2, 2), "normal"), "std"),
    (lambda: init.activation_stats(nn.Linear(2, 2), torch.randn(3, 2)), "no layers"),
])
def test_errors_are_value_errors_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_torch_agrees_that_one_value_per_channel_is_an_error():
    with pytest.raises(ValueError):
        nn.BatchNorm1d(3)(torch.randn(1, 3))


@pytest.mark.parametrize("ours,theirs,kwargs", [
    (init.kaiming_normal_, nn.init.kaiming_normal_, {}),
    (init.kaiming_normal_, nn.init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu")),
    (init.kaiming_uniform_, nn.init.kaiming_uniform_, dict(a=math.sqrt(5))),
    (init.kaiming_uniform_, nn.init.kaiming_uniform_, dict(nonlinearity="relu")),
    (init.xavier_normal_, nn.init.xavier_normal_, dict(gain=2.0)),
    (init.xavier_uniform_, nn.init.xavier_uniform_, {}),
])
@pytest.mark.parametrize("shape", [(64, 32), (16, 8, 3, 3), (10, 3, 5, 1)])
def test_initialisers_draw_exactly_what_torch_draws(ours, theirs, kwargs, shape):
    a, b = torch.empty(shape), torch.empty(shape)
    ours(a, **kwargs, generator=torch.Generator().manual_seed(1))
    theirs(b, **kwargs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_he_normal_has_std_sqrt_2_over_fan_in():
    w = init.kaiming_normal_(torch.empty(512, 256, 3, 3), nonlinearity="relu")
    assert w.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.01)
    assert init.fan_in_and_fan_out(w) == (256 * 9, 512 * 9)
    assert torch.equal(init.constant_(torch.empty(3, 3), 0.5), torch.full((3, 3), 0.5))


def test_he_init_keeps_the_scale_of_relu_activations():
    torch.manual_seed(0)
    layers = []
    for _ in range(30):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    net = init.init_model(nn.Sequential(*layers), "he_normal")
    stats = init.activation_stats(net, torch.randn(512, 256))
    assert len(stats) == 30
    rms = [math.sqrt(s["std"] ** 2 + s["mean"] ** 2) for s in stats]
    assert 0.5 < rms[-1] / rms[0] < 2.0                              # no explosion, no vanishing
    small = init.activation_stats(init.init_model(nn.Sequential(*layers), "normal", std=0.01),
                                  torch.randn(512, 256))
    assert small[-1]["std"] < 1e-20                                  # vanishes without He
    assert all(0 <= s["dead"] <= 1 for s in stats) and len(stats[0]["values"]) == 20000
