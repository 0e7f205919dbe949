"""cnnkit.check: right answers pass, wrong ones fail with a reason, stubs say so."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnkit import check, conv


def stub(*args, **kwargs):
    raise NotImplementedError()


def good_predict(model, x):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train(was_training)
    return out


def forgetful_predict(model, x):          # leaves the model in eval mode
    model.eval()
    with torch.no_grad():
        return model(x)


RIGHT = {
    check.output_size: conv.conv_output_size,
    check.conv_params: conv.conv_params,
    check.convolve: lambda img, k: F.conv2d(img[None, None], k[None, None])[0, 0],
    check.max_pool: lambda img, s, st: F.max_pool2d(img[None, None], s, st)[0, 0],
    check.receptive_field: lambda n, k: n * (k - 1) + 1,
    check.sigmoid_grad: lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2,
    check.path_sum: lambda x, y: (1 - math.tanh(x * y + y) ** 2) * (x + 1),
    check.numerical_derivative: lambda f, x, eps: (f(x + eps) - f(x - eps)) / (2 * eps),
    check.mlp_params: lambda sizes: sum(a * b + b for a, b in zip(sizes, sizes[1:])),
    check.batch_norm_train: lambda x, eps: (x - x.mean(0)) / (x.var(0, unbiased=False) + eps).sqrt(),
    check.layer_norm_rows: lambda x, eps: (x - x.mean(1, keepdim=True)) / (x.var(1, unbiased=False, keepdim=True) + eps).sqrt(),
    check.he_std: lambda c, k: math.sqrt(2 / (c * k * k)),
    check.eval_predict: good_predict,
}

WRONG = {
    check.output_size: lambda i, k, s, p, d: (i - k + 2 * p) // s + 1,          # forgets dilation
    check.conv_params: lambda ci, co, k, b: (k * k * ci) * co + co,              # ignores bias=False
    check.convolve: lambda img, k: F.conv2d(img[None, None], k.flip(0, 1)[None, None])[0, 0],  # flips
    check.max_pool: lambda img, s, st: F.avg_pool2d(img[None, None], s, st)[0, 0],             # averages
    check.receptive_field: lambda n, k: n * k,
    check.sigmoid_grad: lambda x: 0.25,
    check.path_sum: lambda x, y: (1 - math.tanh(x * y + y) ** 2) * x,          # misses the direct path
    check.numerical_derivative: lambda f, x, eps: (f(x + eps) - f(x)) / eps,    # one-sided
    check.mlp_params: lambda sizes: sum(a * b for a, b in zip(sizes, sizes[1:])),  # forgets biases
    check.batch_norm_train: lambda x, eps: (x - x.mean(0)) / (x.var(0) + eps).sqrt(),   # unbiased variance
    check.layer_norm_rows: lambda x, eps: (x - x.mean(0)) / (x.var(0, unbiased=False) + eps).sqrt(),  # columns
    check.he_std: lambda c, k: math.sqrt(2 / c),                                      # forgets the kernel
    check.eval_predict: forgetful_predict,
}


@pytest.mark.parametrize("checker", list(RIGHT), ids=lambda c: c.__name__)
def test_right_answer_passes(checker, capsys):
    checker(RIGHT[checker])
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("checker", list(WRONG), ids=lambda c: c.__name__)
def test_wrong_answer_fails_with_reason_and_hint(checker):
    with pytest.raises(check.ExerciseFailed) as info:
        checker(WRONG[checker])
    err = info.value
    assert isinstance(err, AssertionError)
    assert err.reason and err.hint
    lines = err._render_traceback_()
    assert lines[0].startswith("✘") and "Hint" in lines[1]


@pytest.mark.parametrize("checker", list(RIGHT), ids=lambda c: c.__name__)
def test_stub_reports_not_implemented_yet(checker):
    with pytest.raises(check.NotImplementedYet, match="not implemented yet"):
        checker(stub)


def test_crash_in_student_code_is_summarised():
    def broken(image, kernel):
        return image @ torch.zeros(1, 1, 1)   # shape error
    with pytest.raises(check.ExerciseFailed, match="raised RuntimeError.*line"):
        check.convolve(broken)


def test_passing_a_call_instead_of_a_function_is_explained():
    with pytest.raises(check.ExerciseFailed, match="expected a function"):
        check.output_size(5)


def test_ipython_shows_the_short_message_not_a_traceback():
    IPython = pytest.importorskip("IPython")
    from IPython.testing.globalipapp import start_ipython
    shell = start_ipython()
    result = shell.run_cell("import cnnkit.check as c\nc.receptive_field(lambda n, k: 0)")
    assert isinstance(result.error_in_exec, check.ExerciseFailed)
