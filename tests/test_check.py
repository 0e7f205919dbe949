"""cnnkit.check: right answers pass, wrong ones fail with the intended reason, stubs say so;
both modes (interactive and probe + judge) agree; types are exact; hidden tests leak nothing."""

import math
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit import check, contract, conv
from cnnkit.autograd import Value
from cnnkit.check import _core

from conftest import NOTEBOOKS, ROOT
# The answers of the checks with more to test live beside those tests; RIGHT and WRONG use them.
import test_check_detection as detection_answers
import test_check_teach_a as teach_a
import test_check_teach_b as teach_b


def stub(*args, **kwargs):
    raise NotImplementedError()


from torch import nn
from cnnkit.models import Inception


class GoodBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + x)


class NoShortcutBlock(GoodBlock):
    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


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



# 06_augmentation answers
import torchvision.transforms.v2 as v2
from torch.utils.data import random_split
from cnnkit import tta
from cnnkit.data import ImageDataset


def good_split(images, targets, n_val, transform):
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, val = perm[:len(images) - n_val], perm[len(images) - n_val:]
    return ImageDataset(images[train], targets[train], transform), ImageDataset(images[val], targets[val])


def leaky_split(images, targets, n_val, transform):          # the bug the notebook shows
    return random_split(ImageDataset(images, targets, transform), [len(images) - n_val, n_val])


def good_flip_tta(model, x):
    model.eval()
    with torch.no_grad():
        return (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2


def logit_flip_tta(model, x):                                 # averages logits, not probabilities
    model.eval()
    with torch.no_grad():
        return ((model(x) + model(x.flip(-1))) / 2).softmax(1)


def torchvision_boxes(h, w, size):
    return [(t, l, f) for t, l, _, _ in tta.crop_boxes((h, w), size) for f in (False, True)]


# 07_transfer_learning answers
def good_freeze(model, head):
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.get_submodule(head).parameters():
        p.requires_grad_(True)


def freeze_everything(model, head):                    # forgets to unfreeze the head
    for p in model.parameters():
        p.requires_grad_(False)


def good_new_head(model, head, num_classes):
    parent_name, _, attr = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, nn.Linear(model.get_submodule(head).in_features, num_classes))
    return model


def frozen_new_head(model, head, num_classes):          # the new head is frozen too
    good_new_head(model, head, num_classes)
    for p in model.get_submodule(head).parameters():
        p.requires_grad_(False)
    return model


RIGHT = {
    "output_size": conv.conv_output_size,
    "conv_params": conv.conv_params,
    "convolve": lambda img, k: F.conv2d(img[None, None], k[None, None])[0, 0],
    "max_pool": lambda img, s, st: F.max_pool2d(img[None, None], s, st)[0, 0],
    "receptive_field": lambda n, k: n * (k - 1) + 1,
    "separable_params": lambda c_in, c_out, k: (k * k + 1) * c_in + (c_in + 1) * c_out,
    # grad_x: full convolution with the flipped kernel; grad_weight: x correlated with grad_out
    "conv_backward": lambda x, w, g: (
        conv.conv2d(F.pad(g, (w.shape[3] - 1,) * 2 + (w.shape[2] - 1,) * 2), w.flip(-1, -2).transpose(0, 1)),
        conv.conv2d(x[:, None], g[:, None]).transpose(0, 1)),
    "sigmoid_grad": lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2,
    "path_sum": lambda x, y: (1 - math.tanh(x * y + y) ** 2) * (x + 1),
    "numerical_derivative": lambda f, x, eps=1e-5: (f(x + eps) - f(x - eps)) / (2 * eps),
    "mlp_params": lambda sizes: sum(a * b + b for a, b in zip(sizes, sizes[1:])),
    "batch_norm_train": lambda x, eps: (x - x.mean(0)) / (x.var(0, unbiased=False) + eps).sqrt(),
    "layer_norm_rows": lambda x, eps: (x - x.mean(1, keepdim=True)) / (x.var(1, unbiased=False, keepdim=True) + eps).sqrt(),
    "he_std": lambda c, k: math.sqrt(2 / (c * k * k)),
    "eval_predict": good_predict,
    "topk_accuracy": lambda lg, t, k: (lg.topk(k, 1).indices == t[:, None]).any(1).float().mean().item(),
    "inception_block": lambda *w: Inception(*w, five="5x5"),
    "residual_block": GoodBlock,
    "head_in_features": lambda f, size: f(torch.zeros(size)).flatten(1).shape[1],
    "should_stop": lambda v, p: len(v) - 1 - v.index(min(v)) >= p,
    "step_lr": lambda e, b, s, g: b * g ** (e // s),
    "digit_augmentation": lambda: v2.RandomAffine(degrees=12, translate=(0.08, 0.08), scale=(0.9, 1.1)),
    "split_without_leak": good_split,
    "flip_tta": good_flip_tta,
    "ten_crop_boxes": torchvision_boxes,
    "freeze_but_head": good_freeze,
    "new_head": good_new_head,
    "count_trainable": lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad),
    "lr_groups": lambda layers, lr, d: [{"params": list(l.parameters()), "lr": lr * d ** (len(layers) - 1 - i)}
                                            for i, l in enumerate(layers)],
    "value_ops": teach_a.GoodValue,
    "batch_norm_backward": teach_a.bn_backward,
    "net_from_table": teach_a.build,
    "steepest_lr": teach_b.steepest(),
    "train_loop": teach_b.loop(),
    "augment_with_box": teach_b.augment(),
    "fine_tuning": teach_b.fine_tuning(),
    "iou": detection_answers.right_iou,
    "nms": detection_answers.right_nms,
    "encode_boxes": detection_answers.right_encode,
    "average_precision": detection_answers.right_ap,
    "filter_proposals": detection_answers.right_filter,
}

class BiasedBlock(GoodBlock):                          # convolutions with a bias: more parameters than needed
    def __init__(self, c):
        super().__init__(c)
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)


class NoFinalReluBlock(GoodBlock):
    def forward(self, x):
        return self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + x


def graph_predict(model, x):                            # eval mode, but records a graph
    was_training = model.training
    model.eval()
    out = model(x)
    model.train(was_training)
    return out


def unfrozen_everything(model, head):                  # freezes nothing
    for p in model.parameters():
        p.requires_grad_(True)


def new_head_not_returned(model, head, num_classes):
    good_new_head(model, head, num_classes)


def split_without_transform(images, targets, n_val, transform):
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train, val = perm[:len(images) - n_val], perm[len(images) - n_val:]
    return ImageDataset(images[train], targets[train]), ImageDataset(images[val], targets[val])


def train_mode_tta(model, x):
    with torch.no_grad():
        return (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2


# Realistic wrong answers of each exercise, with the words (a regex) the failure's reason must contain,
# and optionally the words its hint must contain.
WRONG = {
    "output_size": [(lambda i, k, s, p, d=1: (i - k + 2 * p) // s + 1, "a real nn.Conv2d gives"),   # forgets dilation
                    (lambda i, k, s, p, d=1: (i + 2 * p - d * (k - 1) - 1) / s + 1, "nn.Conv2d gives")],  # / not //
    "conv_params": [(lambda ci, co, k, b: (k * k * ci) * co + co, "nn.Conv2d has"),         # ignores bias=False
                    (lambda ci, co, k, b: k * k * co + co * b, "nn.Conv2d has")],           # forgets in_channels
    "convolve": [(lambda img, k: F.conv2d(img[None, None], k.flip(0, 1)[None, None])[0, 0], r"output\["),
                 (lambda img, k: F.conv2d(img[None, None], k[None, None], padding=1)[0, 0], "should be")],
    "max_pool": [(lambda img, s, st: F.avg_pool2d(img[None, None], s, st)[0, 0], "wrong values"),
                 (lambda img, s, st: F.max_pool2d(img[None, None], s, 1)[0, 0], "should have shape")],
    "receptive_field": [(lambda n, k: n * k, "the receptive field is"), (lambda n, k: n * (k - 1), "is 3")],
    "separable_params": [(lambda c_in, c_out, k: (k * k * c_in + 1) * c_out, "you returned"),
                         (lambda c_in, c_out, k: k * k * c_in + c_in * c_out, "parameters")],
    "conv_backward": [(lambda x, w, g: (
        conv.conv2d(F.pad(g, (w.shape[3] - 1,) * 2 + (w.shape[2] - 1,) * 2), w.transpose(0, 1)),   # kernel not flipped
        conv.conv2d(x[:, None], g[:, None]).transpose(0, 1)), "grad_x"),
        (lambda x, w, g: None, "pair")],
    "sigmoid_grad": [(lambda x: 0.25, "torch.autograd gives"),
                     (lambda x: 1 / (1 + math.exp(-x)), "at x=0 you returned 0.5")],
    "path_sum": [(lambda x, y: (1 - math.tanh(x * y + y) ** 2) * x, "torch.autograd gives"),   # misses the direct path
                 (lambda x, y: 1 - math.tanh(x * y + y) ** 2, "torch.autograd gives")],     # misses the product
    "numerical_derivative": [(lambda f, x, eps=1e-5: (f(x + eps) - f(x)) / eps, "the derivative is"),  # one-sided
                             (lambda f, x, eps=1e-5: (f(x + eps) - f(x - eps)) / eps, "the derivative is")],
    "mlp_params": [(lambda sizes: sum(a * b for a, b in zip(sizes, sizes[1:])), "sum\\(p.numel\\(\\)\\) gives"),
                   (lambda sizes: sizes[0] * sizes[1] + sizes[1], "gives 109386")],
    "batch_norm_train": [(lambda x, eps: (x - x.mean(0)) / (x.var(0) + eps).sqrt(), "differ from PyTorch"),
                         (lambda x, eps: x - x.mean(0), "differ from PyTorch")],
    "layer_norm_rows": [(lambda x, eps: (x - x.mean(0)) / (x.var(0, unbiased=False) + eps).sqrt(), "expected shape|differ"),
                        (lambda x, eps: (x - x.mean(1, keepdim=True)) / (x.var(1, keepdim=True) + eps).sqrt(), "differ")],
    "he_std": [(lambda c, k: math.sqrt(2 / c), "He initialisation uses std"),
               (lambda c, k: math.sqrt(1 / (c * k * k)), "He initialisation uses std")],
    "eval_predict": [(forgetful_predict, "mode after"), (graph_predict, "autograd graph"),
                     (lambda m, x: m(x).detach(), "raised ValueError")],            # train mode, batch of 1
    "topk_accuracy": [(lambda lg, t, k: (lg.argmax(1) == t).float().mean().item(), "expected"),
                      (lambda lg, t, k: (lg.topk(k, 1).indices == t[:, None]).any(1).sum().item(), "expected")],
    "inception_block": [(lambda *w: Inception(*w, five="3x3"), "convolution weights have shapes"),
                        (lambda c, *w: nn.Conv2d(c, sum(w[i] for i in (0, 2, 4, 5)), 1), "convolution weights")],
    "residual_block": [(NoShortcutBlock, "shortcut"), (BiasedBlock, "parameters, expected"),
                       (NoFinalReluBlock, "negative values")],
    "head_in_features": [(lambda f, size: f(torch.zeros(size)).shape[1], "Flatten produces"),
                         (lambda f, size: f(torch.zeros(size)).numel(), "Flatten produces")],
    "should_stop": [(lambda v, p: len(v) > p and v[-1] > v[-1 - p], "expected"),            # compares one epoch
                    (lambda v, p: len(v) - 1 - v.index(min(v)) > p, "expected True")],     # > for >=
    "step_lr": [(lambda e, b, s, g: b * g ** ((e + 1) // s), "StepLR gives"),
                (lambda e, b, s, g: b * g ** (e / s), "StepLR gives")],
    "digit_augmentation": [(lambda: v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=10)]), "mirrored"),
                           (lambda: v2.Identity(), "changed the image"),
                           (lambda: v2.RandomCrop(24), "expected a float tensor")],
    "split_without_leak": [(leaky_split, "the leak is still there"),
                           (split_without_transform, "not passed through the transform")],
    "flip_tta": [(logit_flip_tta, "differ from the average"), (lambda m, x: tta.predict(m, x), "original images alone"),
                 (train_mode_tta, "differ from the average")],
    "ten_crop_boxes": [(lambda h, w, s: [(t, l, False) for t, l, _ in torchvision_boxes(h, w, s)[::2]], "you returned"),
                       (lambda h, w, s: [(t, l) for t, l, _ in torchvision_boxes(h, w, s)], "triples")],
    "freeze_but_head": [(freeze_everything, "is frozen"), (unfrozen_everything, "still trainable")],
    "new_head": [(frozen_new_head, "the new head is frozen"), (new_head_not_returned, "return the model")],
    "count_trainable": [(lambda m: sum(p.numel() for p in m.parameters()), "parameters are trainable"),
                        (lambda m: sum(1 for p in m.parameters() if p.requires_grad), "you counted")],
    "lr_groups": [(lambda layers, lr, d: [{"params": list(l.parameters()), "lr": lr * d ** i}
                                          for i, l in enumerate(layers)], "got lr"),
                  (lambda layers, lr, d: [{"params": [p for l in layers for p in l.parameters()], "lr": lr}],
                   "expected a list of")],
    "value_ops": [(teach_a.LogSlopeIsLog, r"d out / d x0 is 0.69.*torch.autograd gives 0.5"),
                  (teach_a.ExpSlopeIsInput, r"d out / d x0 is 0 .*torch.autograd gives 1"),
                  (teach_a.LogWithoutParent, r"is 0 \(0: does the new node name the node it came from"),
                  (teach_a.LogReturnsFloat, r"log\(\) returned a float, not a Value"),
                  (teach_a.LogNeverRaises, r"log of -1.0 returned a node; it must raise ValueError"),
                  (teach_a.OnlyExp, r"no log of its own")],
    "batch_norm_backward": [(teach_a.bn_mean_var_constant, "treats the column's mean and variance as constants"),
                            (teach_a.bn_unbiased_var, r"dgamma .*differ"),
                            (teach_a.bn_dbeta_mean, r"dbeta .*differ"),
                            (teach_a.bn_forgets_mean_path, r"dx .*differ"),
                            (lambda dout, x, gamma, eps=1e-5: teach_a.bn_backward(dout, x, gamma, eps)[0],
                             "expected a tuple"),
                            (lambda dout, x, gamma, eps=1e-5: None, "expected a tuple")],
    "net_from_table": [(lambda table, in_shape: teach_a.build(table, in_shape, bias_rule=False),   # bias before bn
                        r"parameters, the table's network"),
                       (lambda table, in_shape: teach_a.build(table, in_shape, padding=False),     # sizes shrink
                        r"parameters, the table's network|mat1 and mat2|shape"),
                       (lambda table, in_shape: teach_a.build(table, in_shape, flatten_size=False),  # fc reads C
                        "mat1 and mat2|shape"),
                       (lambda table, in_shape: None, "expected an nn.Module, got NoneType"),
                       (lambda table, in_shape: [nn.ReLU()], "expected an nn.Module, got list")],
    "steepest_lr": [(teach_b.steepest(log=False), "expected"), (teach_b.steepest(index=True), "index")],
    "train_loop": [(teach_b.loop(restore=False), "best epoch"),
                   (teach_b.loop(zero_grad=False), "epoch 1"),
                   (teach_b.loop(eval_mode=False), "validation loss"),
                   (teach_b.loop(train_mode=False), "validation loss of epoch 2", r"model\.train\(\)"),
                   (teach_b.loop(per_batch=True), "learning rate", "once per epoch"),
                   (teach_b.loop(step_scheduler=False), "learning rate", "never changes"),
                   (teach_b.loop(copy_best=False), "best epoch", "deepcopy"),
                   (teach_b.loop(strict=False), "stopped too late", "strictly lower"),
                   (teach_b.loop(off_by_one=True), "stopped too late"),
                   (lambda *args: None, "expected")],
    "augment_with_box": [(teach_b.augment(move_box=False), "the box says"),
                         (teach_b.augment(flip_box=False), "the box says"),
                         (teach_b.augment(off_by_one=True), "the box says"),
                         (teach_b.augment(vertical=True), "no longer itself"),
                         (teach_b.augment(shift=False), "position"),
                         (teach_b.augment(flip=False), "never mirrored"),
                         (lambda image, box: image, "expected")],
    "fine_tuning": [(teach_b.fine_tuning(freeze_params=False), "should be frozen", "requires_grad=False"),
                    (teach_b.fine_tuning(freeze_bn=False), "running_mean", "batch norm"),
                    (teach_b.fine_tuning(decay_ok=False), "learning rate"),
                    (teach_b.fine_tuning(head_trainable=False), "should train"),
                    (lambda model, n, lr, d: None, "optimizer")],
    "iou": [(detection_answers.unclamped_iou, "IoU is 0$"), (lambda a, b: detection_answers.right_iou(a, b) * 2, "IoU is"),
            (lambda a, b: None, "got None")],
    "nms": [(detection_answers.nms_ge, "NMS keeps"), (detection_answers.nms_without_sorting, "NMS keeps"),
            (lambda b, s, t: list(range(len(b))), "NMS keeps")],
    "encode_boxes": [(detection_answers.encode_without_log, "differ"), (detection_answers.encode_absolute_shift, "differ"),
                     (lambda p, t: t - p, "differ")],
    "average_precision": [(detection_answers.ap_without_envelope, "VOC AP is"),
                          (detection_answers.ap_eleven_point, "VOC AP is"),
                          (lambda p, r: sum(p) / max(len(p), 1), "VOC AP is")],
    "filter_proposals": [(detection_answers.filter_before_clipping, "expected shape"),
                         (detection_answers.filter_swapped_axes, "expected shape"),
                         (lambda b, s, m: b, "expected shape")],
}
WRONG_CASES = [(name, i) for name, answers in WRONG.items() for i in range(len(answers))]


@pytest.fixture(autouse=True)
def _fresh_hint_state(fresh_hints):
    """Each test starts with no failure streaks and no revealed formulas."""


def test_every_check_has_answers_here():
    assert set(RIGHT) == set(WRONG) == set(check.CHECKS)


def test_every_check_is_used_by_a_notebook():
    """No dead checks: each registered check is called by a test cell of some notebook."""
    import re

    from conftest import NOTEBOOKS
    called = {m for path in NOTEBOOKS for m in re.findall(r"cnnkit\.check\.(\w+)\(", path.read_text())}
    assert set(check.CHECKS) - called == set()


@pytest.mark.parametrize("name", list(RIGHT))
def test_right_answer_passes(name, capsys):
    getattr(check, name)(RIGHT[name])
    assert capsys.readouterr().out.startswith(f"✔ {name}: passed (")


@pytest.mark.parametrize("name,i", WRONG_CASES, ids=[f"{n}-{i}" for n, i in WRONG_CASES])
def test_wrong_answer_fails_with_reason_and_hint(name, i):
    answer, words, *hint_words = WRONG[name][i]
    with pytest.raises(check.ExerciseFailed) as info:
        getattr(check, name)(answer)
    err = info.value
    assert isinstance(err, AssertionError) and not isinstance(err, check.NotImplementedYet)
    assert re.search(words, err.reason), err.reason
    assert err.hint, "every failure shows a hint"
    assert all(re.search(words, err.hint) for words in hint_words), err.hint
    lines = err._render_traceback_()
    assert lines[0] == f"✘ {name}: {err.reason}" and lines[1].startswith("  Hint: ")


class StubBlock(nn.Module):
    """What the student release of a class exercise looks like."""
    def __init__(self, channels):
        super().__init__()
        raise NotImplementedError()


def stub_for(name):
    return {"residual_block": StubBlock, "value_ops": teach_a.StubValue}.get(name, stub)


@pytest.mark.parametrize("name", list(RIGHT))
def test_stub_reports_not_implemented_yet(name):
    with pytest.raises(check.NotImplementedYet, match="not implemented yet"):
        getattr(check, name)(stub_for(name))


# ----------------------------------------------------------------------------
# None and wrong types: always a ✘ line, never a raw TypeError
# ----------------------------------------------------------------------------

def returning(value):
    """An answer of any signature that returns `value` (a class for residual_block)."""
    def answer(*args, **kwargs):
        return value
    return answer


class ReturningBlock(GoodBlock):
    def forward(self, x):
        return None


def returning_value(value):
    """A Value subclass whose operations return `value`."""
    class ReturningValue(Value):
        def exp(self):
            return value

        def log(self):
            return value
    return ReturningValue


@pytest.mark.parametrize("name", list(RIGHT))
@pytest.mark.parametrize("value", [None, "0.25", object(), [None], math.nan], ids=["None", "str", "object", "list", "nan"])
def test_none_or_wrong_type_is_a_failure_not_a_type_error(name, value):
    answer = {"residual_block": ReturningBlock, "value_ops": returning_value(value)}.get(name, returning(value))
    with pytest.raises(check.ExerciseFailed) as info:
        getattr(check, name)(answer)
    assert not isinstance(info.value, check.NotImplementedYet)
    assert info.value.reason
    # the check's own compare explains it; "could not compare" is the safety net for a crash in compare
    assert "could not compare" not in info.value.reason, info.value.reason


@pytest.mark.parametrize("name", list(RIGHT))
@pytest.mark.parametrize("answer", [None, 5, "convolve"], ids=["None", "int", "str"])
def test_passing_something_else_than_a_function_is_explained(name, answer):
    with pytest.raises(check.ExerciseFailed, match="expected (a function|an nn.Module class|a subclass)") as info:
        getattr(check, name)(answer)
    assert "got" in info.value.reason and info.value.hint


def test_path_sum_and_numerical_derivative_explain_none_answers():
    for name in ("path_sum", "numerical_derivative"):
        with pytest.raises(check.ExerciseFailed, match="expected a number.*got None") as info:
            getattr(check, name)(returning(None))
        assert "return" in info.value.hint


# ----------------------------------------------------------------------------
# The notebook's random state is left alone
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(RIGHT))
def test_checks_leave_the_global_rngs_unchanged(name, capsys):
    torch.manual_seed(1234)
    random.seed(99)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    getattr(check, name)(RIGHT[name])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    with pytest.raises(check.ExerciseFailed):
        getattr(check, name)(WRONG[name][0][0])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state


# ----------------------------------------------------------------------------
# Grading mode: probe (student side) + judge (trusted side) = interactive mode
# ----------------------------------------------------------------------------

SMALL_N = 12          # enough for every check's fixed cases and a few random ones, and quick


def probe_and_judge(name, answer, tmp_path, *, seed=0, n=SMALL_N, hidden=False):
    chk = check.CHECKS[name]
    cases = chk.cases(seed, n)
    torch.save(cases, tmp_path / "cases.pt")
    _core.probe(name, answer, tmp_path / "cases.pt", tmp_path / "results.pt")
    results = torch.load(tmp_path / "results.pt", weights_only=True)
    assert len(results) == len(cases)
    return _core.judge(chk, cases, results, hidden=hidden)


@pytest.mark.parametrize("name", list(RIGHT))
def test_probe_round_trip_gives_the_interactive_verdict(name, tmp_path, capsys):
    verdict = probe_and_judge(name, RIGHT[name], tmp_path)
    assert (verdict.status, verdict.passed, verdict.total) == ("passed", verdict.total, verdict.total)
    getattr(check, name)(RIGHT[name], n=SMALL_N)
    assert capsys.readouterr().out.strip() == verdict.message

    wrong = WRONG[name][0][0]
    verdict = probe_and_judge(name, wrong, tmp_path)
    with pytest.raises(check.ExerciseFailed) as info:
        getattr(check, name)(wrong, n=SMALL_N)
    assert verdict.status == "failed" and verdict.message == info.value.reason
    assert verdict.fraction == 0.0

    assert probe_and_judge(name, stub_for(name), tmp_path).status == "not_implemented"


@pytest.mark.parametrize("name", list(RIGHT))
def test_hidden_verdicts_never_show_the_students_text(name, tmp_path):
    secret = "SECRET-7f3a: the hidden case was x=0.123"

    def leaky(*args, **kwargs):
        raise ValueError(secret)

    class LeakyBlock(nn.Module):
        def __init__(self, channels):
            super().__init__()
            raise ValueError(secret)

    class LeakyValue(Value):
        def exp(self):
            raise ValueError(secret)

        log = exp

    answer = {"residual_block": LeakyBlock, "value_ops": LeakyValue}.get(name, leaky)
    shown = probe_and_judge(name, answer, tmp_path)
    assert secret in shown.message                                    # the public check shows it ...
    hidden = probe_and_judge(name, answer, tmp_path, seed=4242, hidden=True)
    assert hidden.status == "failed" and hidden.message == contract.HIDDEN_WITHHELD   # ... a hidden one never
    assert hidden.failure is None
    wrong = probe_and_judge(name, WRONG[name][0][0], tmp_path, seed=4242, hidden=True)
    assert wrong.message == contract.HIDDEN_WITHHELD and wrong.failure is None


def test_results_file_with_forged_objects_is_refused_by_the_judge(tmp_path):
    chk = check.CHECKS["sigmoid_grad"]
    cases = chk.cases(0, 10)
    forged = [{"ok": chk.reference(case)} for case in cases]
    assert _core.judge(chk, cases, forged).status == "passed"
    assert _core.judge(chk, cases, forged[:-1]).status == "failed"                # a missing result
    assert _core.judge(chk, cases, [{"ok": True}] * 10).status == "failed"         # bool is not a number
    assert _core.judge(chk, cases, ["ok"] * 10).status == "failed"                 # not a result at all


def test_partial_check_scores_passed_over_total():
    chk = check.CHECKS["sigmoid_grad"]
    cases = chk.cases(0, 10)
    results = [{"ok": chk.reference(case) if i % 2 else 0.0} for i, case in enumerate(cases)]
    assert _core.judge(chk, cases, results).passed == 0                           # all or nothing: stops at 1st
    partial = type("Partial", (type(chk),), {"partial": True})()
    verdict = _core.judge(partial, cases, results)
    assert (verdict.status, verdict.passed, verdict.total, verdict.fraction) == ("failed", 5, 10, 0.5)


# ----------------------------------------------------------------------------
# Exact types: honest values converted, cheating objects refused
# ----------------------------------------------------------------------------

class FrameReadingFloat(float):
    """Reads the check's expected value from the caller's frame."""
    def __float__(self):
        frame = sys._getframe(1)
        return float(frame.f_locals.get("want", 0.0))

    def __sub__(self, other):
        return 0.0

    def __rsub__(self, other):
        return 0.0

    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


class EqualsEverything(int):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


class AlwaysClose(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize("name,answer", [
    ("sigmoid_grad", lambda x: FrameReadingFloat(0.0)),
    ("path_sum", lambda x, y: FrameReadingFloat(0.0)),
    ("conv_params", lambda *args: EqualsEverything(0)),
    ("output_size", lambda *args: EqualsEverything(0)),
    ("should_stop", lambda v, p: EqualsEverything(0)),
    ("convolve", lambda img, k: torch.zeros(3, 3).as_subclass(AlwaysClose)),
], ids=["float-frame", "float-frame-2", "int-eq", "int-eq-2", "bool-int-eq", "tensor-subclass"])
def test_cheating_objects_are_refused_in_both_modes(name, answer, tmp_path):
    with pytest.raises(check.ExerciseFailed):
        getattr(check, name)(answer)
    assert probe_and_judge(name, answer, tmp_path).status == "failed"


def test_patching_tensor_methods_during_run_does_not_help():
    original = torch.Tensor.item

    def patched(*args):
        torch.Tensor.item = lambda self: 0.25              # the reference would read 0.25 everywhere
        return torch.tensor(0.25)
    try:
        with pytest.raises(check.ExerciseFailed, match="torch.autograd gives"):
            check.sigmoid_grad(patched)
        assert torch.Tensor.item is original
    finally:
        torch.Tensor.item = original


@pytest.mark.parametrize("value,plain", [
    (np.float64(0.5), 0.5), (np.float32(0.5), 0.5), (np.int64(3), 3), (np.bool_(True), True),
    (np.array(2.5), 2.5), (True, True), (None, None), ("s", "s"), ((1, [2.0, {"a": None}]), (1, [2.0, {"a": None}])),
])
def test_to_plain_converts_honest_values_exactly(value, plain):
    got = check.to_plain(value)
    assert got == plain and type(got) is type(plain)


def test_to_plain_turns_tensor_subclasses_into_detached_cpu_tensors():
    p = nn.Parameter(torch.ones(2))
    got = check.to_plain({"w": p * 2, "p": p})
    assert type(got["w"]) is torch.Tensor and type(got["p"]) is torch.Tensor and not got["p"].requires_grad
    assert type(check.to_plain(torch.zeros(2).as_subclass(AlwaysClose))) is torch.Tensor


@pytest.mark.parametrize("value", [FrameReadingFloat(1.0), EqualsEverything(1), object(), np.zeros(3), {1: 2},
                                   type("S", (str,), {})("x"), type("L", (list,), {})(), lambda: 0,
                                   torch.zeros(2).to_sparse()], ids=lambda v: type(v).__name__)
def test_to_plain_refuses_everything_else(value):
    with pytest.raises(check.PlainDataError):
        check.to_plain(value)


def test_to_plain_refuses_self_referencing_structures():
    loop = []
    loop.append(loop)
    with pytest.raises(check.PlainDataError):
        check.to_plain(loop)


@pytest.mark.parametrize("name,answer", [
    ("sigmoid_grad", lambda x: np.float64(math.exp(-x) / (1 + math.exp(-x)) ** 2)),     # numpy scalar: accepted
    ("sigmoid_grad", lambda x: torch.sigmoid(torch.tensor(x, dtype=torch.float64)) *
     (1 - torch.sigmoid(torch.tensor(x, dtype=torch.float64)))),                       # 0-d tensor: accepted
    ("topk_accuracy", lambda lg, t, k: (lg.topk(k, 1).indices == t[:, None]).any(1).float().mean()),
    ("conv_params", lambda ci, co, k, b: float(co * ci * k * k + co * b)),               # integral float: accepted
])
def test_honest_number_types_are_accepted(name, answer, capsys):
    getattr(check, name)(answer)


def test_a_bool_is_not_a_number():
    with pytest.raises(check.ExerciseFailed, match="expected an int, got bool"):
        check.receptive_field(lambda n, k: True)


# ----------------------------------------------------------------------------
# Two-tier hints
# ----------------------------------------------------------------------------

def test_formula_appears_from_the_third_failure_in_a_row():
    wrong = lambda x: 0.25                                          # noqa: E731
    formula = check.CHECKS["sigmoid_grad"].formula
    hints = []
    for _ in range(3):
        with pytest.raises(check.ExerciseFailed) as info:
            check.sigmoid_grad(wrong)
        hints.append(info.value.hint)
    assert formula not in hints[0] and formula not in hints[1] and hints[2] == formula
    assert "cnnkit.check.hint('sigmoid_grad')" in hints[0]
    check.sigmoid_grad(RIGHT["sigmoid_grad"])                       # a pass resets the streak
    with pytest.raises(check.ExerciseFailed) as info:
        check.sigmoid_grad(wrong)
    assert formula not in info.value.hint


def test_hint_shows_the_formula_and_reveals_it_for_later_failures(capsys):
    formula = check.CHECKS["path_sum"].formula
    check.hint("path_sum")
    assert capsys.readouterr().out == f"path_sum: {formula}\n"
    with pytest.raises(check.ExerciseFailed) as info:
        check.path_sum(WRONG["path_sum"][0][0])
    assert info.value.hint == formula
    with pytest.raises(ValueError, match="name must be one of the checks"):
        check.hint("no_such_check")


# ----------------------------------------------------------------------------
# The notebooks' test cells
# ----------------------------------------------------------------------------

def notebook_test_cells():
    """The source of every graded test cell of the course notebooks."""
    import nbformat
    found = []
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
                found.append(cell.source)
    return found


CALL = re.compile(r"cnnkit\.check\.(\w+)\((\w+)(?:, n=(\d+), seed=(\d+))?\)")


def test_notebook_test_cells_are_only_check_calls():
    sources = notebook_test_cells()
    assert len(sources) >= 4 * len(NOTEBOOKS), "every notebook has at least 4 graded exercises"
    for source in sources:
        lines = source.splitlines()
        assert lines[1:2] == [contract.BEGIN_HIDDEN] and lines[-1] == contract.END_HIDDEN, source
        public, hidden = CALL.fullmatch(lines[0]), CALL.fullmatch(lines[2])
        assert len(lines) == 4 and public and hidden and not public.group(3) and hidden.group(3), source
        assert public.group(1, 2) == hidden.group(1, 2) and public.group(1) in check.CHECKS


@pytest.mark.parametrize("source", notebook_test_cells(),
                         ids=lambda s: CALL.match(s).group(1))
def test_hidden_calls_of_the_notebooks_pass_right_answers(source, capsys):
    name, _, n, seed = CALL.fullmatch(source.splitlines()[2]).groups()
    getattr(check, name)(RIGHT[name], n=int(n), seed=int(seed))
    with pytest.raises(check.ExerciseFailed):
        getattr(check, name)(WRONG[name][0][0], n=int(n), seed=int(seed))


# ----------------------------------------------------------------------------
# Specific checks
# ----------------------------------------------------------------------------

def test_crash_in_student_code_is_summarised():
    def broken(image, kernel):
        return image @ torch.zeros(1, 1, 1)   # shape error
    with pytest.raises(check.ExerciseFailed, match="raised RuntimeError.*line"):
        check.convolve(broken)


def test_a_wrong_signature_names_the_case_not_cnnkit_code():
    with pytest.raises(check.ExerciseFailed, match=r"the default eps\) raised TypeError") as info:
        check.numerical_derivative(lambda f, x, eps: (f(x + eps) - f(x - eps)) / (2 * eps))
    assert "line" not in info.value.reason


def test_ipython_shows_the_short_message_not_a_traceback():
    pytest.importorskip("IPython")
    from IPython.testing.globalipapp import start_ipython
    shell = start_ipython()
    result = shell.run_cell("import cnnkit.check as c\nc.receptive_field(lambda n, k: 0)")
    assert isinstance(result.error_in_exec, check.ExerciseFailed)


@pytest.mark.parametrize("wrong", [
    lambda: v2.RandomRotation(180),                           # turns a 6 into a 9
    lambda: v2.Identity(),                                    # augments nothing
    lambda: v2.RandomCrop(24),                                # changes the size
    lambda: v2.RandomVerticalFlip(p=1.0),
], ids=["half-turns", "identity", "shrinks", "vflip"])
def test_digit_augmentation_rejects_label_changing_or_useless_pipelines(wrong):
    with pytest.raises(check.ExerciseFailed):
        check.digit_augmentation(wrong)


@pytest.mark.parametrize("right", [
    lambda: v2.RandomRotation(15),
    lambda: v2.RandomCrop(28, padding=3),
    lambda: v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=10),
    lambda: v2.ElasticTransform(alpha=30.0),
], ids=["rotation", "padded-crop", "affine", "elastic"])
def test_digit_augmentation_accepts_reasonable_pipelines(right):
    check.digit_augmentation(right)


def test_flip_tta_rejects_plain_prediction_and_train_mode():
    with pytest.raises(check.ExerciseFailed, match="original images alone"):
        check.flip_tta(lambda m, x: tta.predict(m, x))
    with pytest.raises(check.ExerciseFailed, match="eval mode"):
        for _ in range(3):                                   # the formula names eval mode from the 3rd failure
            try:
                check.flip_tta(train_mode_tta)
            except check.ExerciseFailed as exc:
                last = exc
        raise last


def test_ten_crop_boxes_accepts_either_rounding_of_the_centre():
    def floor_centre(h, w, s):
        boxes = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), ((h - s) // 2, (w - s) // 2)]
        return [(t, l, f) for t, l in boxes for f in (False, True)]
    check.ten_crop_boxes(floor_centre)
    with pytest.raises(check.ExerciseFailed):          # an off-centre "centre" is wrong
        check.ten_crop_boxes(lambda h, w, s: [(t + (i == 8), l, f) for i, (t, l, f) in enumerate(floor_centre(h, w, s))])


def test_eval_predict_catches_the_notebooks_hidden_case():
    """Folded from the old hidden assert: batch norm on a batch of 1 in train mode, model left in train mode."""
    with pytest.raises(check.ExerciseFailed, match="raised ValueError"):
        check.eval_predict(lambda m, x: m(x).detach())


# ----------------------------------------------------------------------------
# Score, layout, imports
# ----------------------------------------------------------------------------

def test_score_shows_points_nbgrader_can_parse_and_the_fraction_for_cnnkit():
    bundle = check.Score(3, 4, points=2)._repr_mimebundle_()
    assert float(bundle["text/plain"]) == 1.5                       # nbgrader: text/plain = points earned
    assert "3 of 4" in bundle["text/markdown"]
    assert bundle[contract.SCORE_MIME] == {"earned": 0.75}
    assert float(check.Score(1, 4)._repr_mimebundle_()["text/plain"]) == 0.25    # without points: the fraction
    with pytest.raises(ValueError, match="possible"):
        check.Score(1, 0)
    with pytest.raises(TypeError, match="earned"):
        check.Score("1", 2)


def test_no_check_module_is_longer_than_about_400_lines():
    for path in (ROOT / "cnnkit" / "check").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 450, path.name


def test_the_check_package_itself_imports_no_grader_no_plotting_no_torchvision():
    """Whatever cnnkit/__init__ does: the checks import only torch and each other."""
    code = ("import sys, types; m = types.ModuleType('cnnkit'); m.__path__ = [sys.argv[1]]; "
            "sys.modules['cnnkit'] = m; import cnnkit.check; "
            "print(sorted(k for k in sys.modules if k.startswith(('cnnkit.', 'matplotlib', 'torchvision'))))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "cnnkit")], capture_output=True, text=True,
                         check=True).stdout
    assert set(eval(out)) == {"cnnkit.contract", "cnnkit.check", *(f"cnnkit.check.{m.stem}" for m in
                                                                   (ROOT / "cnnkit" / "check").glob("*.py")
                                                                   if m.stem != "__init__")}


def test_importing_the_checks_loads_no_grader_and_no_plotting():
    code = ("import sys, cnnkit.check; "
            "print(sorted(m for m in sys.modules if m.startswith(('cnnkit.grading', 'cnnkit.instructor', "
            "'matplotlib', 'cnnkit.plot'))))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, check=True).stdout.strip()
    eager = re.search(r"^from cnnkit import .*\bplot\b", (ROOT / "cnnkit" / "__init__.py").read_text(), re.M)
    if out != "[]" and eager:
        pytest.xfail("`import cnnkit` itself still loads cnnkit.plot (lazy imports come with the i14 package branch)")
    assert out == "[]"


@pytest.mark.notebook
def test_real_nbgrader_reads_score_as_partial_credit(tmp_path):
    """nbgrader 0.9's autograde takes a test cell's text/plain result as the points earned."""
    pytest.importorskip("nbgrader", reason="nbgrader is the optional `instructor` extra (pip install '.[instructor]')")
    import nbformat

    def meta(gid, **kw):
        return {"nbgrader": {"grade_id": gid, "schema_version": 3, "locked": False, **kw}}
    cells = [nbformat.v4.new_code_cell("import cnnkit.check"),
             nbformat.v4.new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                                       metadata=meta("square", solution=True, grade=False)),
             nbformat.v4.new_code_cell("ok = sum(square(v) == v * v for v in (0, 1, 2, 3))\n"
                                       "cnnkit.check.Score(ok, 4, points=2)",
                                       metadata=meta("square-tests", solution=False, grade=True, points=2))]
    cells[2].metadata["nbgrader"]["locked"] = True
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "source" / "ps1").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "source" / "ps1" / "tiny.ipynb")
    # nbgrader runs `alembic` from PATH; the kernel must import this cnnkit.
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=os.pathsep.join([os.path.dirname(sys.executable),
                                                                       os.environ.get("PATH", "")]))

    def nbgrader(*args):
        subprocess.run([sys.executable, "-m", "nbgrader", *args, "ps1", f"--CourseDirectory.root={tmp_path}",
                        "--force"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    nbgrader("generate_assignment")
    for student, body in {"half": "return x * x if x < 2 else 0", "none": "return -1", "all": "return x * x"}.items():
        sub = nbformat.read(tmp_path / "release" / "ps1" / "tiny.ipynb", as_version=4)
        sub.cells[1].source = f"def square(x):\n    {body}"
        (tmp_path / "submitted" / student / "ps1").mkdir(parents=True)
        nbformat.write(sub, tmp_path / "submitted" / student / "ps1" / "tiny.ipynb")
    nbgrader("autograde")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission("ps1", s).score for s in ("half", "none", "all")}
    assert scores == {"half": 1.0, "none": 0.0, "all": 2.0}


@pytest.mark.parametrize("name", list(RIGHT))
def test_judge_never_crashes_on_forged_or_odd_results(name):
    """Results come from the student's process: any shape of plain data is a failure, never an exception."""
    chk = check.CHECKS[name]
    cases = chk.cases(0, 3)
    for forged in ({}, [1, 2], None, "x", {"out": None, "convs": 3}, torch.zeros(2), math.inf,
                   {"raised": "NotAFunction"}, {"ok": {"module": True}}):
        verdict = _core.judge(chk, cases, [forged if "ok" in str(forged) else {"ok": forged}] * 3)
        assert verdict.status == "failed" and verdict.message, forged


FLOAT32_RIGHT = {   # honest answers computed in float32 (autograd's .grad of a float32 tensor)
    "sigmoid_grad": lambda x: (lambda t: (torch.sigmoid(t).backward(), t.grad)[1])(
        torch.tensor(x, dtype=torch.float32, requires_grad=True)),
    "path_sum": lambda x, y: (lambda tx, ty: (torch.tanh(tx * ty + ty).backward(), ty.grad.item())[1])(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32, requires_grad=True)),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_RIGHT))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_precision_answers_pass(name, seed):
    getattr(check, name)(FLOAT32_RIGHT[name], n=400, seed=seed)
