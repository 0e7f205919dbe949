"""The exercise checks added for notebooks 05-07 (issue 17): the answers tests/test_check.py's tables use
(realistic mistakes as options of one solution), and what is specific to each check: more seeds on the
grading path (cases -> run -> plain data -> compare), the fixed cases, the reference."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import cnnkit
import cnnkit.transfer  # noqa: F401  (fine_tuning() uses it)
from cnnkit.check import CHECKS, to_plain
from cnnkit.check.augmentation import AugmentWithBox
from cnnkit.check.training import reference_train_loop
from cnnkit.check.transfer import reference_fine_tuning


def _first_failure(name, answer, n=None, seed=0):
    """The first Failure the grader would see (None if all cases pass)."""
    check = CHECKS[name]
    for case in check.cases(seed, n or check.default_n):
        got = to_plain(check.run(answer, copy.deepcopy(case)))
        failure = check.compare(got, check.reference(case), case)
        if failure is not None:
            return failure
    return None


# ---------------------------------------------------------------- 05: train_loop

def loop(*, zero_grad=True, eval_mode=True, train_mode=True, per_batch=False, copy_best=True,
          restore=True, strict=True, off_by_one=False, step_scheduler=True):
    def train_loop(model, train_batches, val_batches, optimizer, scheduler, max_epochs, patience):
        history = {"val_loss": [], "lr": []}
        best, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
        for epoch in range(max_epochs):
            history["lr"].append(optimizer.param_groups[0]["lr"])
            if train_mode or epoch == 0:
                model.train()
            for x, y in train_batches:
                if zero_grad:
                    optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
                if per_batch:
                    scheduler.step()
            if eval_mode:
                model.eval()
            with torch.no_grad():
                val = sum(F.cross_entropy(model(x), y).item() for x, y in val_batches) / len(val_batches)
            history["val_loss"].append(val)
            if step_scheduler and not per_batch:
                scheduler.step()
            if val < best or (not strict and val <= best):
                best, best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict()) if copy_best else model.state_dict()
            elif epoch - best_epoch >= patience + (1 if off_by_one else 0):
                break
        if restore:
            model.load_state_dict(best_state)
        return history
    return train_loop


def test_train_loop_reference_and_solution_pass():
    cnnkit.check.train_loop(reference_train_loop)
    assert _first_failure("train_loop", loop(), n=12, seed=3) is None


def test_train_loop_fixed_cases_stop_early_and_tie():
    check = CHECKS["train_loop"]
    cases = check.cases(0, check.default_n)
    first, tie = check.reference(cases[0]), check.reference(cases[1])
    assert len(first["val_loss"]) < cases[0]["max_epochs"]           # early stopping triggers
    assert tie["val_loss"][-1] == tie["val_loss"][-2]                # lr 0: equal losses, earliest kept


# ---------------------------------------------------------------- 06: augment_with_box

def augment(*, move_box=True, flip_box=True, vertical=False, off_by_one=False, shift=True, flip=True):
    def augment_with_box(image, box):
        x0, y0, x1, y1 = box
        _, h, w = image.shape
        if flip and torch.rand(()) < 0.5:
            image = image.flip(-2 if vertical else -1)
            if vertical:                                       # box right, but the task forbids it
                y0, y1 = h - y1, h - y0
            elif flip_box:
                x0, x1 = (w - 1 - x1, w - 1 - x0) if off_by_one else (w - x1, w - x0)
        dx, dy = torch.randint(-4, 5, (2,)).tolist() if shift else (0, 0)
        image = torch.roll(image, shifts=(dy, dx), dims=(-2, -1))        # objects stay >= 5 px from the edges
        if move_box:
            x0, y0, x1, y1 = x0 + dx, y0 + dy, x1 + dx, y1 + dy
        return image, [x0, y0, x1, y1]
    return augment_with_box


def test_augment_with_box_solution_passes():
    assert _first_failure("augment_with_box", augment(), n=10, seed=5) is None
    assert AugmentWithBox.draws >= 16


# ---------------------------------------------------------------- 07: fine_tuning

def fine_tuning(*, freeze_bn=True, freeze_params=True, decay_ok=True, head_trainable=True):
    def fine_tuning(model, n_frozen, head_lr, decay):
        stages = list(model.children())
        for stage in stages[:n_frozen]:
            if freeze_params:
                for p in stage.parameters():
                    p.requires_grad = False
            if freeze_bn:
                cnnkit.transfer.freeze_batchnorm(stage)
        rest = stages[n_frozen:] if freeze_params else stages          # forgot: the frozen stages train too
        rest = rest if head_trainable else rest[:-1]
        groups = [{"params": list(s.parameters()),
                   "lr": head_lr * (decay ** (len(rest) - 1 - i) if decay_ok else 1.0)}
                  for i, s in enumerate(rest)]
        return torch.optim.SGD(groups, lr=head_lr, momentum=0.9)
    return fine_tuning


def test_fine_tuning_reference_and_solution_pass():
    cnnkit.check.fine_tuning(reference_fine_tuning)
    assert _first_failure("fine_tuning", fine_tuning(), n=10, seed=2) is None


# ---------------------------------------------------------------- 05: steepest_lr

def steepest(*, log=True, index=False):
    import numpy as np

    def steepest_lr(lrs, losses):
        slopes = np.gradient(np.asarray(losses, dtype=float), np.log10(lrs) if log else np.asarray(lrs))
        i = int(np.argmin(slopes))
        return i if index else float(lrs[i])
    return steepest_lr


def test_steepest_lr_agrees_with_lr_find_suggestion():
    from cnnkit.train import LRFinderResult
    check = CHECKS["steepest_lr"]
    for case in check.cases(0, 20):
        assert check.reference(case) == LRFinderResult(case["lrs"], case["losses"]).suggestion


# ---------------------------------------------------------------- cnnkit.lessons

def test_shapes_cnn_takes_both_input_sizes_and_refuses_bad_width():
    from cnnkit.lessons import shapes_cnn
    model = shapes_cnn()
    assert model(torch.zeros(2, 3, 28, 28)).shape == (2, 5) and model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(ValueError, match="width"):
        shapes_cnn(width=0)


def test_mean_std_and_paired_verdicts():
    from cnnkit.lessons import compare_paired, mean_std, within_noise
    assert mean_std([0.5, 0.6]) == "55.0% ± 7.1%"
    assert mean_std([0.01, 0.03], "pp") == "+2.0 ± 1.4 pp"
    assert within_noise([0.01, -0.02, 0.03]) and not within_noise([0.10, 0.11, 0.12])
    assert within_noise([0.05])                                       # one seed proves nothing
    assert "within noise" in compare_paired([0.9, 0.8], [0.85, 0.9])
    assert "A is better" in compare_paired([0.9, 0.91, 0.92], [0.8, 0.8, 0.81])
    with pytest.raises(ValueError, match="unit"):
        mean_std([0.1], unit="percent")
    with pytest.raises(ValueError, match="equally long"):
        compare_paired([0.1], [0.1, 0.2])


def test_read_scalars_reads_back_what_fit_logged(tmp_path):
    from torch import nn
    from cnnkit.lessons import read_scalars
    data = torch.utils.data.TensorDataset(torch.randn(16, 1, 4, 4), torch.randint(0, 2, (16,)))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    history = cnnkit.fit(model, data, data, epochs=2, live_plot=False, progress=False, log_dir=tmp_path / "run",
                         device="cpu")
    scalars = read_scalars(tmp_path / "run")
    assert scalars["loss/val"][0] == [1, 2]
    assert scalars["loss/val"][1] == pytest.approx(history.val_loss, rel=1e-6)
    with pytest.raises(ValueError, match="log_dir"):
        read_scalars(tmp_path / "missing")


def test_jpeg_is_smaller_than_png_for_a_photo():
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cnnkit.lessons import jpeg
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(cnnkit.data.load_photo("chelsea").permute(1, 2, 0).numpy())
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=72)
    image = jpeg(fig)
    assert image.format == "jpeg" and len(image.data) < len(png.getvalue())


def test_lite0_upper_and_features_agree_with_the_whole_network():
    from cnnkit import models
    from cnnkit.lessons import Lite0Upper, lite0_features
    from cnnkit.pretrained import NORMALIZATION
    base = models.efficientnet_lite0().eval()
    images = torch.rand(3, 3, 32, 32)
    low, pooled = lite0_features(base, images, cut=11, size=64)
    assert low.shape[0] == pooled.shape[0] == 3 and pooled.shape[1] == 1280
    upper = Lite0Upper(base, 11, 5).eval()
    upper.fc = base._fc                                              # the same head: the same logits
    with torch.no_grad():
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATION["efficientnet_lite0"])
        want = base((torch.nn.functional.interpolate(images, size=64, mode="bilinear", align_corners=False) - mean) / std)
        assert torch.allclose(upper(low), want, atol=1e-4)
    with pytest.raises(ValueError, match="cut"):
        Lite0Upper(base, 99, 5)
