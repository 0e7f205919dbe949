"""cnnkit.check: right answers pass, wrong ones fail with a reason, stubs say so."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnkit import check, conv


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
    check.output_size: conv.conv_output_size,
    check.conv_params: conv.conv_params,
    check.convolve: lambda img, k: F.conv2d(img[None, None], k[None, None])[0, 0],
    check.max_pool: lambda img, s, st: F.max_pool2d(img[None, None], s, st)[0, 0],
    check.receptive_field: lambda n, k: n * (k - 1) + 1,
    check.sigmoid_grad: lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2,
    check.path_sum: lambda x, y: (1 - math.tanh(x * y + y) ** 2) * (x + 1),
    check.numerical_derivative: lambda f, x, eps=1e-5: (f(x + eps) - f(x - eps)) / (2 * eps),
    check.mlp_params: lambda sizes: sum(a * b + b for a, b in zip(sizes, sizes[1:])),
    check.batch_norm_train: lambda x, eps: (x - x.mean(0)) / (x.var(0, unbiased=False) + eps).sqrt(),
    check.layer_norm_rows: lambda x, eps: (x - x.mean(1, keepdim=True)) / (x.var(1, unbiased=False, keepdim=True) + eps).sqrt(),
    check.he_std: lambda c, k: math.sqrt(2 / (c * k * k)),
    check.eval_predict: good_predict,
    check.topk_accuracy: lambda lg, t, k: (lg.topk(k, 1).indices == t[:, None]).any(1).float().mean().item(),
    check.inception_block: lambda *w: Inception(*w, five="5x5"),
    check.residual_block: GoodBlock,
    check.head_in_features: lambda f, size: f(torch.zeros(size)).flatten(1).shape[1],
    check.should_stop: lambda v, p: len(v) - 1 - v.index(min(v)) >= p,
    check.epoch_to_keep: lambda v: v.index(min(v)) + 1,
    check.step_lr: lambda e, b, s, g: b * g ** (e // s),
    check.overfitting_epoch: lambda t, v: None if v.index(min(v)) == len(v) - 1 else v.index(min(v)) + 1,
    check.digit_augmentation: lambda: v2.RandomAffine(degrees=12, translate=(0.08, 0.08), scale=(0.9, 1.1)),
    check.split_without_leak: good_split,
    check.flip_tta: good_flip_tta,
    check.ten_crop_boxes: torchvision_boxes,
    check.freeze_but_head: good_freeze,
    check.new_head: good_new_head,
    check.count_trainable: lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad),
    check.lr_groups: lambda layers, lr, d: [{"params": list(l.parameters()), "lr": lr * d ** (len(layers) - 1 - i)}
                                            for i, l in enumerate(layers)],
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
    check.topk_accuracy: lambda lg, t, k: (lg.argmax(1) == t).float().mean().item(),      # top-1 only
    check.inception_block: lambda *w: Inception(*w, five="3x3"),                          # 3x3 for the 5x5
    check.residual_block: NoShortcutBlock,
    check.head_in_features: lambda f, size: f(torch.zeros(size)).shape[1],                # channels only
    check.should_stop: lambda v, p: len(v) > p and v[-1] > v[-1 - p],                     # compares one epoch
    check.epoch_to_keep: lambda v: v.index(min(v)),                                        # 0-based
    check.step_lr: lambda e, b, s, g: b * g ** ((e + 1) // s),                             # off by one
    check.overfitting_epoch: lambda t, v: next((i for i in range(1, len(v)) if v[i] > v[i - 1]), None),
    check.digit_augmentation: lambda: v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=10)]),
    check.split_without_leak: leaky_split,
    check.flip_tta: logit_flip_tta,
    check.ten_crop_boxes: lambda h, w, s: [(t, l, False) for t, l, _ in torchvision_boxes(h, w, s)[::2]],
    check.freeze_but_head: freeze_everything,
    check.new_head: frozen_new_head,
    check.count_trainable: lambda m: sum(p.numel() for p in m.parameters()),           # counts frozen ones
    check.lr_groups: lambda layers, lr, d: [{"params": list(l.parameters()), "lr": lr * d ** i}   # reversed
                                            for i, l in enumerate(layers)],
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


class StubBlock(nn.Module):
    """What the student release of a class exercise looks like."""
    def __init__(self, channels):
        super().__init__()
        raise NotImplementedError()


@pytest.mark.parametrize("checker", list(RIGHT), ids=lambda c: c.__name__)
def test_stub_reports_not_implemented_yet(checker):
    with pytest.raises(check.NotImplementedYet, match="not implemented yet"):
        checker(StubBlock if checker is check.residual_block else stub)


def test_crash_in_student_code_is_summarised():
    def broken(image, kernel):
        return image @ torch.zeros(1, 1, 1)   # shape error
    with pytest.raises(check.ExerciseFailed, match="raised RuntimeError.*line"):
        check.convolve(broken)


def test_passing_a_call_instead_of_a_function_is_explained():
    with pytest.raises(check.ExerciseFailed, match="expected a function"):
        check.output_size(5)


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

    def train_mode(model, x):
        with torch.no_grad():
            return (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    with pytest.raises(check.ExerciseFailed, match="eval mode"):
        check.flip_tta(train_mode)


def test_ten_crop_boxes_accepts_either_rounding_of_the_centre():
    def floor_centre(h, w, s):
        boxes = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), ((h - s) // 2, (w - s) // 2)]
        return [(t, l, f) for t, l in boxes for f in (False, True)]
    check.ten_crop_boxes(floor_centre)
    with pytest.raises(check.ExerciseFailed):          # an off-centre "centre" is wrong
        check.ten_crop_boxes(lambda h, w, s: [(t + (i == 8), l, f) for i, (t, l, f) in enumerate(floor_centre(h, w, s))])
