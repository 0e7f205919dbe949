"""Right and wrong answers for the checks added to notebook 01 in issues 16/17:
separable_params (depthwise separable parameter count) and conv_backward (gradients of a convolution)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit import check, conv
from cnnkit.check import ExerciseFailed


pytestmark = pytest.mark.usefixtures("fresh_hints")      # tests/conftest.py


def separable_right(c_in, c_out, k):
    return (k * k + 1) * c_in + (c_in + 1) * c_out


def separable_by_layers(c_in, c_out, k):
    layers = nn.Sequential(nn.Conv2d(c_in, c_in, k, groups=c_in), nn.Conv2d(c_in, c_out, 1))
    return sum(p.numel() for p in layers.parameters())


@pytest.mark.parametrize("answer", [separable_right, separable_by_layers,
                                    lambda c_in, c_out, k: conv.conv_params(c_in, c_in, k, groups=c_in)
                                    + conv.conv_params(c_in, c_out, 1)])
def test_separable_params_accepts_right_answers(answer, capsys):
    check.separable_params(answer)
    check.separable_params(answer, n=200, seed=3)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("answer,hint", [
    (lambda c_in, c_out, k: (k * k * c_in + 1) * c_out, "ONE standard"),               # the standard conv
    (lambda c_in, c_out, k: k * k * c_in + c_in * c_out, "biases"),                    # biases forgotten
    (lambda c_in, c_out, k: (k * k * c_in + 1) * c_in + (c_in + 1) * c_out, "one channel"),  # no groups
    (lambda c_in, c_out, k: (k * k + 1) * c_in + c_in * c_out, ""),                     # pointwise bias forgotten
    (lambda c_in, c_out, k: None, "return"),
])
def test_separable_params_rejects_wrong_answers(answer, hint):
    with pytest.raises(ExerciseFailed) as info:
        check.separable_params(answer)
    assert hint in info.value.hint


def conv_backward_loops(x, weight, grad_out, accumulate=True):
    """The loops of the lecture; accumulate=False is the classic bug (= instead of += into grad_x)."""
    grad_x, grad_w = torch.zeros_like(x), torch.zeros_like(weight)
    kh, kw = weight.shape[2:]
    for f in range(weight.shape[0]):
        for i in range(grad_out.shape[1]):
            for j in range(grad_out.shape[2]):
                grad_w[f] += grad_out[f, i, j] * x[:, i:i + kh, j:j + kw]
                contribution = grad_out[f, i, j] * weight[f]
                if accumulate:
                    grad_x[:, i:i + kh, j:j + kw] += contribution
                else:
                    grad_x[:, i:i + kh, j:j + kw] = contribution
    return grad_x, grad_w


def conv_backward_as_convolutions(x, weight, grad_out):
    """grad_w = correlation of x with grad_out; grad_x = full convolution with the flipped kernel."""
    kh, kw = weight.shape[2:]
    grad_w = conv.conv2d(x[:, None], grad_out[:, None]).transpose(0, 1)          # (C_out, C_in, K_h, K_w)
    padded = F.pad(grad_out, (kw - 1, kw - 1, kh - 1, kh - 1))
    grad_x = conv.conv2d(padded, weight.flip(-1, -2).transpose(0, 1))            # (C_in, H, W)
    return grad_x, grad_w


@pytest.mark.parametrize("answer", [conv_backward_loops, conv_backward_as_convolutions])
def test_conv_backward_accepts_right_answers(answer, capsys):
    check.conv_backward(answer)
    check.conv_backward(answer, n=60, seed=5)
    assert "passed" in capsys.readouterr().out


def _flipped_x(x, weight, grad_out):
    return conv_backward_loops(x, weight.flip(-1, -2), grad_out)[0], conv_backward_loops(x, weight, grad_out)[1]


def _assign_not_accumulate(x, weight, grad_out):
    return conv_backward_loops(x, weight, grad_out, accumulate=False)


def _flipped_w(x, weight, grad_out):
    grad_x, grad_w = conv_backward_loops(x, weight, grad_out)
    return grad_x, grad_w.flip(-1, -2)


def _uses_autograd(x, weight, grad_out):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    out = F.conv2d(x[None], weight)[0]
    return torch.autograd.grad(out, (x, weight), grad_out)


@pytest.mark.parametrize("answer,reason,hint", [
    (_flipped_x, "grad_x", "flipped"),
    (_assign_not_accumulate, "grad_x", "+="),
    (_flipped_w, "grad_weight", "flipped"),
    (lambda x, w, g: conv_backward_loops(x, w, g)[::-1], "shape", "shape"),           # swapped order
    (lambda x, w, g: conv_backward_loops(x, w, g)[0], "pair", ""),                    # one tensor
    (lambda x, w, g: None, "pair", "return"),
    (lambda x, w, g: (None, None), "grad_weight", "return"),                         # a pair of Nones
    (lambda x, w, g: ("a", torch.zeros(3)), "expected shape", "shape"),              # not tensors
    (lambda x, w, g: (torch.zeros_like(x).long(), torch.zeros_like(w)), "", ""),     # integer / zeros
])
def test_conv_backward_rejects_wrong_answers(answer, reason, hint):
    with pytest.raises(ExerciseFailed) as info:
        check.conv_backward(answer)
    assert reason in info.value.reason and hint in info.value.hint


def test_conv_backward_cannot_lean_on_autograd():
    """The answer runs under torch.no_grad(): asking autograd for the gradients raises, and is reported."""
    with pytest.raises(ExerciseFailed):
        check.conv_backward(_uses_autograd)


def test_formula_only_after_repeated_failures(capsys):
    wrong = _flipped_w
    hints = []
    for _ in range(3):
        with pytest.raises(ExerciseFailed) as info:
            check.conv_backward(wrong)
        hints.append(info.value.hint)
    assert "full' convolution" not in hints[0] and "full' convolution" in hints[2]
    capsys.readouterr()
    check.hint("conv_backward")                  # prints the formula tier
    assert "full' convolution" in capsys.readouterr().out


# --- convolve: NumPy results are accepted, integer outputs get their own hint ----------------

def _convolve_loops(image, kernel, out):
    kh, kw = kernel.shape
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (image[i:i + kh, j:j + kw] * kernel).sum()
    return out


def test_convolve_accepts_a_numpy_array(capsys):
    import numpy as np

    def convolve_numpy(image, kernel):
        image, kernel = image.numpy(), kernel.numpy()
        shape = (image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
        return _convolve_loops(image, kernel, np.zeros(shape, dtype=np.float32))
    check.convolve(convolve_numpy)
    assert "✔ convolve: passed" in capsys.readouterr().out


def test_convolve_integer_output_gets_a_dtype_hint():
    def convolve_int(image, kernel):
        shape = (image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
        return _convolve_loops(image, kernel, torch.zeros(shape, dtype=torch.long))
    with pytest.raises(ExerciseFailed, match="dtype torch.int64") as info:
        check.convolve(convolve_int)
    assert "integer dtype: build it as float" in info.value.hint


def test_receptive_field_first_hint_is_a_nudge_not_the_formula():
    hints = []
    for _ in range(3):
        with pytest.raises(ExerciseFailed) as info:
            check.receptive_field(lambda n, k: n * k)
        hints.append(info.value.hint)
    assert "K-1" not in hints[0] and "K - 1" not in hints[0]
    assert "(K - 1) + 1" in hints[2]
