"""cnnkit.conv against PyTorch: values and gradients on many random configurations."""

import ast
import inspect

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit import conv

DOUBLE = dict(dtype=torch.float64)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)


@st.composite
def conv_config(draw, max_side=12):
    """A random but valid convolution: shapes, stride, padding, dilation (ints or pairs)."""
    n = draw(st.integers(1, 3))
    c_in = draw(st.integers(1, 4))
    c_out = draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), max_side))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), max_side))
    as_pair = draw(st.booleans())
    pick = (lambda a, b: (a, b)) if as_pair else (lambda a, b: a)
    if not as_pair:  # int arguments mean square settings
        kw, sw, pw, dw = kh, sh, ph, dh
        w = max(w, dh * (kh - 1) + 1 - 2 * ph)
    return dict(shape=(n, c_in, h, w), weight=(c_out, c_in, kh, kw), bias=draw(st.booleans()),
                stride=pick(sh, sw), padding=pick(ph, pw), dilation=pick(dh, dw),
                seed=draw(st.integers(0, 2**31 - 1)))


def make_inputs(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn(cfg["shape"], generator=gen, **DOUBLE, requires_grad=True)
    w = torch.randn(cfg["weight"], generator=gen, **DOUBLE, requires_grad=True)
    b = torch.randn(cfg["weight"][0], generator=gen, **DOUBLE, requires_grad=True) if cfg["bias"] else None
    return x, w, b


def kwargs(cfg):
    return dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"])


@SETTINGS
@given(conv_config())
def test_im2col_matches_unfold(cfg):
    x, w, _ = make_inputs(cfg)
    k = cfg["weight"][2:]
    ours = conv.im2col(x, k, **kwargs(cfg))
    ref = F.unfold(x, k, **kwargs(cfg))
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    g = torch.randn_like(ref)
    (gx_ours,) = torch.autograd.grad(ours, x, g)
    (gx_ref,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(gx_ours, gx_ref)


@SETTINGS
@given(conv_config())
def test_conv2d_values_and_gradients_match_torch(cfg):
    x, w, b = make_inputs(cfg)
    ours = conv.conv2d(x, w, b, **kwargs(cfg))
    ref = F.conv2d(x, w, b, **kwargs(cfg))
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    inputs = [t for t in (x, w, b) if t is not None]
    grads_ours = torch.autograd.grad(ours, inputs, g)
    grads_ref = torch.autograd.grad(ref, inputs, g)
    for a, r in zip(grads_ours, grads_ref):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(conv_config(max_side=8))
def test_naive_loop_conv_agrees_with_im2col_and_torch(cfg):
    x, w, b = make_inputs(cfg)
    naive = conv.conv2d_naive(x, w, b, **kwargs(cfg))
    torch.testing.assert_close(naive, conv.conv2d(x, w, b, **kwargs(cfg)))
    torch.testing.assert_close(naive, F.conv2d(x, w, b, **kwargs(cfg)))
    (gw,) = torch.autograd.grad(naive.sum(), w)
    (gw_ref,) = torch.autograd.grad(F.conv2d(x, w, b, **kwargs(cfg)).sum(), w)
    torch.testing.assert_close(gw, gw_ref)


def test_conv2d_float32_and_gradcheck():
    x = torch.randn(2, 3, 9, 7)
    w = torch.randn(4, 3, 3, 2)
    torch.testing.assert_close(conv.conv2d(x, w, stride=(2, 1), padding=(1, 0)),
                               F.conv2d(x, w, stride=(2, 1), padding=(1, 0)), rtol=1e-5, atol=1e-5)
    xd = torch.randn(1, 2, 5, 6, **DOUBLE, requires_grad=True)
    wd = torch.randn(3, 2, 2, 3, **DOUBLE, requires_grad=True)
    bd = torch.randn(3, **DOUBLE, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: conv.conv2d(a, b, c, stride=2, padding=1, dilation=(1, 2)),
                                    (xd, wd, bd))


def test_conv2d_on_non_contiguous_input():
    x = torch.randn(2, 6, 5, 3).permute(0, 3, 1, 2)        # (2, 3, 6, 5), not contiguous
    w = torch.randn(2, 3, 3, 3)
    torch.testing.assert_close(conv.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1),
                               rtol=1e-5, atol=1e-5)


@st.composite
def pool_config(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h, w = draw(st.integers(kh, 12)), draw(st.integers(kw, 12))
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w),
                kernel_size=(kh, kw), stride=stride, padding=(ph, pw), seed=draw(st.integers(0, 10**6)))


@SETTINGS
@given(pool_config())
@pytest.mark.parametrize("ours, ref", [(conv.max_pool2d, F.max_pool2d), (conv.avg_pool2d, F.avg_pool2d)])
def test_pooling_values_and_gradients_match_torch(ours, ref, cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    # distinct values, so the max (and its gradient) is unique
    x = torch.randperm(torch.Size(cfg["shape"]).numel(), generator=gen).to(torch.float64)
    x = x.reshape(cfg["shape"]).requires_grad_()
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"])
    out, expected = ours(x, *args), ref(x, *args)
    torch.testing.assert_close(out, expected)
    g = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(expected, x, g)[0])


def test_worked_examples_from_the_notes():
    image = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1],
                          [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.float32)
    kernel = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
    out = conv.conv2d(image[None, None], kernel[None, None])[0, 0]
    assert out.tolist() == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    pool_in = torch.tensor([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3],
                            [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]], dtype=torch.float32)
    assert conv.max_pool2d(pool_in[None, None], 3, 1)[0, 0].tolist() == [[3, 3, 3], [3, 3, 3], [3, 2, 3]]


@pytest.mark.parametrize("size,k,s,p,d", [
    (i, k, s, p, d) for i in (1, 5, 7, 28, 32) for k in (1, 2, 3, 5) for s in (1, 2, 3)
    for p in (0, 1, 2) for d in (1, 2) if i + 2 * p >= d * (k - 1) + 1])
def test_conv_output_size_matches_real_layer(size, k, s, p, d):
    layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    assert conv.conv_output_size(size, k, s, p, d) == layer(torch.zeros(1, 1, size, size)).shape[-1]


@pytest.mark.parametrize("size,k,s,p", [
    (i, k, s, p) for i in (2, 5, 7, 28, 31) for k in (1, 2, 3) for s in (None, 1, 2, 3)
    for p in range(0, k // 2 + 1) if i + 2 * p >= k])
def test_pool_output_size_matches_real_layer(size, k, s, p):
    layer = nn.MaxPool2d(k, stride=s, padding=p)
    assert conv.pool_output_size(size, k, s, p) == layer(torch.zeros(1, 1, size, size)).shape[-1]


@pytest.mark.parametrize("c_in,c_out,k,bias", [
    (64, 128, 3, True), (3, 64, 11, True), (1, 6, 5, False), (5, 7, (3, 5), True), (8, 8, (1, 1), False)])
def test_conv_params_matches_real_layer(c_in, c_out, k, bias):
    expected = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k, bias=bias).parameters())
    assert conv.conv_params(c_in, c_out, k, bias) == expected


def test_conv_params_notes_example():
    assert conv.conv_params(64, 128, 3) == (3 * 3 * 64 + 1) * 128 == 73_856


@pytest.mark.parametrize("layers,expected", [
    ([nn.Conv2d(1, 1, 3)], 3),
    ([nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3)], 5),
    ([nn.Conv2d(1, 1, 3)] * 3, 7),
    ([nn.Conv2d(1, 1, 5)], 5),
    ([nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3)], 8),
    ([nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3)], 15),
    ([nn.Conv2d(1, 1, 3, dilation=2)], 5),
    (nn.Sequential(nn.Conv2d(1, 1, 7, stride=2, padding=3), nn.BatchNorm2d(1), nn.ReLU(),
                   nn.MaxPool2d(3, 2, 1)), 11),
    (nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU()), nn.AvgPool2d(2)), 4),
    ([], 1),
])
def test_receptive_field_known_stacks(layers, expected):
    assert conv.receptive_field(layers) == expected


@pytest.mark.parametrize("seed", range(25))
def test_receptive_field_by_gradient(seed):
    """Measure the field empirically: which input pixels have a non-zero gradient for the centre unit."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(int(torch.randint(1, 5, (1,), generator=gen))):
        k = int(torch.randint(1, 4, (1,), generator=gen))
        s = int(torch.randint(1, 3, (1,), generator=gen))
        if torch.rand(1, generator=gen) < 0.3:
            layers.append(nn.MaxPool2d(max(k, 2), s))
        else:
            layers += [nn.Conv2d(1, 1, k, stride=s), nn.ReLU()]
    net = nn.Sequential(*layers).double()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 1.0)
    x = torch.rand(1, 1, 64, 64, dtype=torch.float64, generator=gen, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    measured = int(rows.max() - rows.min() + 1)
    # Max pooling passes gradient to one pixel per window, so the measured span can be
    # smaller than the field, never larger; with convolutions only it is exact.
    field = conv.receptive_field(net)
    assert measured <= field
    if not any(isinstance(m, nn.MaxPool2d) for m in layers):
        assert measured == field


@pytest.mark.parametrize("layer", [nn.Linear(3, 3), nn.Flatten(), nn.AdaptiveAvgPool2d(1),
                                   nn.Conv2d(1, 1, (3, 5)), nn.Upsample(scale_factor=2)])
def test_receptive_field_rejects_layers_it_cannot_reason_about(layer):
    with pytest.raises(ValueError, match="receptive_field"):
        conv.receptive_field([nn.Conv2d(1, 1, 3), layer])


@pytest.mark.parametrize("call,match", [
    (lambda: conv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 5, 5)), "kernel_size"),
    (lambda: conv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 3, 3), stride=0), "stride"),
    (lambda: conv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 2, 2), dilation=0), "dilation"),
    (lambda: conv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 1, 2, 2), padding=-1), "padding"),
    (lambda: conv.conv2d(torch.randn(1, 2, 3, 3), torch.randn(1, 3, 2, 2)), "channel"),
    (lambda: conv.conv2d(torch.randn(3, 3), torch.randn(1, 1, 2, 2)), "4-d"),
    (lambda: conv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(1, 2, 2)), "weight"),
    (lambda: conv.conv2d(torch.randn(1, 1, 3, 3), torch.randn(2, 1, 2, 2), torch.randn(3)), "bias"),
    (lambda: conv.im2col(torch.randn(1, 1, 3, 3), 4), "kernel_size"),
    (lambda: conv.im2col(torch.randn(1, 1, 3, 3), 2, stride=(1, 0)), "stride"),
    (lambda: conv.im2col(torch.randn(3, 3), 2), "4-d"),
    (lambda: conv.max_pool2d(torch.randn(1, 1, 3, 3), 4), "kernel_size"),
    (lambda: conv.max_pool2d(torch.randn(1, 1, 6, 6), 2, padding=2), "padding"),
    (lambda: conv.avg_pool2d(torch.randn(1, 1, 6, 6), 2, stride=0), "stride"),
    (lambda: conv.conv_output_size(3, 5), "kernel_size"),
    (lambda: conv.conv_output_size(8, 3, stride=0), "stride"),
    (lambda: conv.conv_output_size(8, 3, dilation=0), "dilation"),
    (lambda: conv.conv_output_size(8, 3, padding=-1), "padding"),
    (lambda: conv.conv_params(0, 3, 3), "in_channels"),
    (lambda: conv.conv_params(3, 3, 0), "kernel_size"),
])
def test_bad_arguments_raise_value_error_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: conv.conv2d([[1.0]], torch.randn(1, 1, 1, 1)), "torch.Tensor"),
    (lambda: conv.conv_output_size(8.0, 3), "size"),
    (lambda: conv.im2col(torch.randn(1, 1, 3, 3), (2, 2, 2)), "kernel_size"),
    (lambda: conv.conv_params(3, 3, 2.5), "kernel_size"),
])
def test_bad_types_raise_type_error(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_no_torch_convolution_inside():
    """The point of the module: nothing calls F.conv2d / F.unfold / torch.conv2d."""
    tree = ast.parse(inspect.getsource(conv))
    names = {f"{n.value.id}.{n.attr}" for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    forbidden = {"F.conv2d", "F.unfold", "torch.conv2d", "F.max_pool2d", "F.avg_pool2d",
                 "torch.max_pool2d", "torch.avg_pool2d", "F.fold", "torch.nn.functional"}
    assert not names & forbidden, names & forbidden


# ----------------------------------------------------------------------------
# torch's full semantics: groups, string padding, unbatched input, pooling options,
# ties, integer dtypes (issue 16)
# ----------------------------------------------------------------------------

@st.composite
def grouped_conv_config(draw, max_side=9):
    """groups (depthwise included), 'same'/'valid'/int padding, unbatched (C, H, W) input."""
    groups = draw(st.integers(1, 4))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))      # even kernels too ('same' pads asymmetrically)
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["same", "valid", 0, 1, (1, 0)]))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (1, 1) if padding in ("same", 1) else (1, 0) if padding == (1, 0) else (0, 0)
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * pad[0]), max_side))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pad[1]), max_side))
    batched = draw(st.booleans())
    shape = (draw(st.integers(1, 2)), c_in, h, w) if batched else (c_in, h, w)
    return dict(shape=shape, weight=(c_out, c_in // groups, kh, kw), bias=draw(st.booleans()),
                stride=stride, padding=padding, dilation=(dh, dw), groups=groups,
                seed=draw(st.integers(0, 2**31 - 1)))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@SETTINGS
@given(grouped_conv_config())
def test_grouped_same_padding_unbatched_conv_matches_torch(cfg):
    x, w, b = make_inputs(cfg)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    ours, ref = conv.conv2d(x, w, b, **args), F.conv2d(x, w, b, **args)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    inputs = [t for t in (x, w, b) if t is not None]
    for a, r in zip(torch.autograd.grad(ours, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=30, deadline=None, derandomize=True)
@given(grouped_conv_config(max_side=6))
def test_naive_loop_conv_supports_the_same_arguments(cfg):
    x, w, b = make_inputs(cfg)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    torch.testing.assert_close(conv.conv2d_naive(x, w, b, **args), F.conv2d(x, w, b, **args))


def test_depthwise_separable_parameter_count():
    """The notes' 64 -> 128 example: standard 3x3 vs depthwise 3x3 + pointwise 1x1."""
    standard = nn.Conv2d(64, 128, 3)
    depthwise, pointwise = nn.Conv2d(64, 64, 3, groups=64), nn.Conv2d(64, 128, 1)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert conv.conv_params(64, 128, 3) == count(standard) == 73_856
    assert conv.conv_params(64, 64, 3, groups=64) == count(depthwise) == 640
    assert conv.conv_params(64, 128, 1) == count(pointwise) == 8_320
    x = torch.randn(1, 64, 8, 8)
    torch.testing.assert_close(conv.conv2d(x, depthwise.weight, depthwise.bias, groups=64), depthwise(x),
                               rtol=1e-5, atol=1e-5)


def tied_tensor(shape, kind, gen):
    """Inputs where max-pooling windows have tied maxima."""
    if kind == "integers":         # small integer values: many ties
        return torch.randint(0, 3, shape, generator=gen).to(torch.float64)
    if kind == "relu":             # zeros after ReLU, as in a real network
        return torch.randn(shape, generator=gen, dtype=torch.float64).clamp(min=0)
    if kind == "constant":         # every window constant
        return torch.full(shape, 0.5, dtype=torch.float64)
    return torch.randn(shape, generator=gen, dtype=torch.float64)


@st.composite
def max_pool_config(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 10))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 10))
    batched = draw(st.booleans())
    return dict(shape=(draw(st.integers(1, 2)), 2, h, w) if batched else (2, h, w),
                kind=draw(st.sampled_from(["integers", "relu", "constant", "random"])),
                kernel_size=(kh, kw), stride=stride, padding=(ph, pw), dilation=(dh, dw),
                ceil_mode=draw(st.booleans()), seed=draw(st.integers(0, 10**6)))


@SETTINGS
@given(max_pool_config())
def test_max_pool_ties_values_indices_and_gradients_equal_torch(cfg):
    """On ties torch gives the gradient to the first maximum of the window; so must we (exactly)."""
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = tied_tensor(cfg["shape"], cfg["kind"], gen).requires_grad_()
    args = dict(kernel_size=cfg["kernel_size"], stride=cfg["stride"], padding=cfg["padding"],
                dilation=cfg["dilation"], ceil_mode=cfg["ceil_mode"], return_indices=True)
    (out, idx), (ref, ref_idx) = conv.max_pool2d(x, **args), F.max_pool2d(x, **args)
    assert torch.equal(out, ref) and torch.equal(idx, ref_idx)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    assert torch.equal(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0])


@st.composite
def avg_pool_config(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    h, w = draw(st.integers(max(1, kh - 2 * ph), 10)), draw(st.integers(max(1, kw - 2 * pw), 10))
    return dict(shape=(draw(st.integers(1, 2)), 2, h, w), kernel_size=(kh, kw), stride=stride,
                padding=(ph, pw), ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                divisor_override=draw(st.sampled_from([None, None, 1, 3, -2])), seed=draw(st.integers(0, 10**6)))


@SETTINGS
@given(avg_pool_config())
def test_avg_pool_options_match_torch(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn(cfg["shape"], generator=gen, dtype=torch.float64, requires_grad=True)
    args = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                "divisor_override")}
    out, ref = conv.avg_pool2d(x, **args), F.avg_pool2d(x, **args)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0],
                               rtol=1e-12, atol=1e-12)


def test_max_pool_gradient_on_real_digits_after_conv_relu_equals_torch():
    """Issue 16: after conv + ReLU most 2x2 windows of a digit are tied at zero."""
    from cnnkit.data import SmallMNIST
    digits = SmallMNIST(train=True).data[:64, None].to(torch.float64) / 255  # (64, 1, 28, 28) real digits
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 1, 3, 3, generator=gen, dtype=torch.float64)
    maps = F.relu(F.conv2d(digits, weight, padding=1)).requires_grad_()  # (64, 8, 28, 28)
    windows = maps.detach().unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)
    tied = (windows == windows.amax(-1, keepdim=True)).sum(-1) > 1
    assert tied.float().mean() > 0.5, "the test needs many tied windows"
    g = torch.randn(64, 8, 14, 14, generator=gen, dtype=torch.float64)
    ours = torch.autograd.grad(conv.max_pool2d(maps, 2), maps, g)[0]
    ref = torch.autograd.grad(F.max_pool2d(maps, 2), maps, g)[0]
    assert torch.equal(ours, ref)


def test_max_pool_tie_rule_is_first_maximum_in_row_major_order():
    x = torch.tensor([[[[1., 3.], [3., 0.]]]], requires_grad=True)
    out, idx = conv.max_pool2d(x, 2, return_indices=True)
    out.backward()
    assert idx.item() == 1 and x.grad.flatten().tolist() == [0, 1, 0, 0]
    nan = float("nan")
    y = torch.tensor([[[[nan, 1., nan, 2.]]]], dtype=torch.float64)
    assert conv.max_pool2d(y, (1, 4), return_indices=True)[1].item() == \
        F.max_pool2d(y, (1, 4), return_indices=True)[1].item() == 2


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.float32])
def test_max_pool_integer_tensors_like_torch(dtype):
    x = torch.randint(0, 5, (2, 3, 7, 6), generator=torch.Generator().manual_seed(0)).to(dtype)
    for args in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                 dict(kernel_size=2, dilation=2, return_indices=True)]:
        ours, ref = conv.max_pool2d(x, **args), F.max_pool2d(x, **args)
        for a, r in zip(ours if isinstance(ours, tuple) else (ours,), ref if isinstance(ref, tuple) else (ref,)):
            assert a.dtype == r.dtype and torch.equal(a, r)


def test_avg_pool_integer_tensors_like_torch():
    x = torch.randint(-9, 9, (1, 2, 6, 6), generator=torch.Generator().manual_seed(0))
    assert torch.equal(conv.avg_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1))   # int64: truncated division
    for dtype in (torch.uint8, torch.int32, torch.bool):
        with pytest.raises(NotImplementedError, match="avg_pool2d"):
            F.avg_pool2d(x.to(dtype), 2)
        with pytest.raises(NotImplementedError, match="avg_pool2d"):
            conv.avg_pool2d(x.to(dtype), 2)


def test_numpy_integers_are_accepted_like_python_ints():
    np = pytest.importorskip("numpy")
    x, w = torch.randn(1, 4, 9, 9), torch.randn(4, 2, 3, 3)
    i = np.int64
    torch.testing.assert_close(conv.conv2d(x, w, stride=i(2), padding=(i(1), i(0)), groups=i(2)),
                               F.conv2d(x, w, stride=2, padding=(1, 0), groups=2))
    torch.testing.assert_close(conv.max_pool2d(x, i(3), i(2), i(1)), F.max_pool2d(x, 3, 2, 1))
    torch.testing.assert_close(conv.avg_pool2d(x, np.int32(2), divisor_override=i(3)),
                               F.avg_pool2d(x, 2, divisor_override=3))
    assert conv.conv_output_size(i(28), i(3), padding=i(1)) == 28
    assert conv.pool_output_size(i(7), i(2), ceil_mode=True) == 4


@pytest.mark.parametrize("size,k,s,p,d", [
    (i, k, s, p, d) for i in (1, 2, 5, 6, 7, 28) for k in (1, 2, 3) for s in (None, 1, 2, 3)
    for p in (0, 1) for d in (1, 2) if p <= k // 2 and i + 2 * p >= d * (k - 1) + 1])
def test_pool_output_size_ceil_mode_and_dilation_match_real_layer(size, k, s, p, d):
    for ceil_mode in (False, True):
        layer = nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
        assert conv.pool_output_size(size, k, s, p, d, ceil_mode) == \
            layer(torch.zeros(1, 1, size, size)).shape[-1]


@pytest.mark.parametrize("call,exc,match", [
    (lambda: conv.conv2d(torch.randn(1, 4, 5, 5), torch.randn(4, 2, 3, 3), groups=0), ValueError, "groups"),
    (lambda: conv.conv2d(torch.randn(1, 4, 5, 5), torch.randn(3, 2, 3, 3), groups=2), ValueError, "groups"),
    (lambda: conv.conv2d(torch.randn(1, 4, 5, 5), torch.randn(4, 2, 3, 3), groups=1.0), TypeError, "groups"),
    (lambda: conv.conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3), padding="full"), ValueError, "padding"),
    (lambda: conv.conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3), stride=2, padding="same"),
     ValueError, "same"),
    (lambda: conv.conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3, dtype=torch.float64)), TypeError, "dtype"),
    (lambda: conv.max_pool2d(torch.randn(1, 1, 6, 6), 2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: conv.max_pool2d(torch.randn(1, 1, 6, 6), 2, dilation=0), ValueError, "dilation"),
    (lambda: conv.max_pool2d(torch.randn(1, 1, 6, 6), 2.0), TypeError, "kernel_size"),
    (lambda: conv.avg_pool2d(torch.randn(1, 1, 6, 6), 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: conv.avg_pool2d(torch.randn(1, 1, 6, 6), 2, count_include_pad="yes"), TypeError, "count_include_pad"),
    (lambda: conv.max_pool2d(torch.randn(1, 0, 6), 1), ValueError, "non-zero"),
    (lambda: conv.pool_output_size(5, 2, padding=2), ValueError, "padding"),
])
def test_new_arguments_are_checked_and_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
