"""Checks of notebooks/05_training.ipynb: early stopping, the epoch to keep, StepLR, overfitting.

See: notebooks/05_training.ipynb
"""

from __future__ import annotations

import random

import torch
from torch import nn

from cnnkit.check._core import Check, Failure, number, register

# A validation curve shaped like the notebook's overfitting run: best at epoch 9, then rising.
OVERFIT_CURVE = [0.92, 0.61, 0.5, 0.46, 0.43, 0.42, 0.415, 0.41, 0.405, 0.41, 0.43, 0.44, 0.46, 0.47, 0.49,
                 0.5, 0.52]


def _random_curve(rng: random.Random, n: int) -> list[float]:
    values, v = [], rng.uniform(1, 3)
    for _ in range(n):
        v = max(0.01, v + rng.uniform(-0.3, 0.2))
        values.append(round(v, 3))
    return values


def _best(losses: list) -> int:
    """0-based index of the lowest loss, the first one on ties."""
    return losses.index(min(losses))


@register
class ShouldStop(Check):
    """fn(val_losses, patience) -> True when the best loss is at least `patience` epochs old."""
    name, default_n, returns = "should_stop", 200, "a bool"
    hint = "count the epochs since the best (lowest) validation loss; on ties the first one counts"
    formula = ("stop when the epochs since the best (lowest, first one on ties) "
               "validation loss are >= patience")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [([1.0, 0.8, 0.7, 0.75, 0.76], 2), ([1.0, 0.8, 0.7, 0.75], 2), ([1.0], 1), ([0.5, 0.5, 0.5], 2),
                 ([0.9, 0.8, 0.7], 1), (OVERFIT_CURVE, 8), (OVERFIT_CURVE[:-1], 8)]     # as fit(patience=8) does
        fixed += [(_random_curve(rng, rng.randint(1, 15)), rng.randint(1, 5)) for _ in range(n - len(fixed))]
        return [{"val_losses": losses, "patience": p} for losses, p in fixed]

    def run(self, answer, case):
        return answer(list(case["val_losses"]), case["patience"])

    def reference(self, case):
        losses = case["val_losses"]
        return len(losses) - 1 - _best(losses) >= case["patience"]

    def compare(self, got, want, case):
        if type(got) is not bool and not (type(got) is int and got in (0, 1)):
            return Failure(f"expected True or False, got {got!r}", "return a Python bool: bool(...) if needed")
        if bool(got) != want:
            return Failure(f"for val_losses={case['val_losses']} and patience={case['patience']} you returned "
                           f"{got!r}, expected {want}")
        return None


@register
class EpochToKeep(Check):
    """fn(val_losses) -> the 1-based epoch whose weights to keep (lowest loss, earliest on ties)."""
    name, default_n, returns = "epoch_to_keep", 200, "an int"
    hint = "epochs are counted from 1; on ties keep the earliest epoch"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [[0.9, 0.5, 0.7], [0.5, 0.5], [1.0], OVERFIT_CURVE]
        return [{"val_losses": v} for v in fixed + [_random_curve(rng, rng.randint(1, 20)) for _ in range(n - 4)]]

    def run(self, answer, case):
        return answer(list(case["val_losses"]))

    def reference(self, case):
        return _best(case["val_losses"]) + 1

    def compare(self, got, want, case):
        value, failure = number(got, what="an int")
        if failure:
            return failure
        if value != want:
            return Failure(f"for val_losses={case['val_losses']} you returned {got!r}, expected epoch {want}")
        return None


@register
class StepLR(Check):
    """fn(epoch, base_lr, step_size, gamma) -> the learning rate torch's StepLR uses in that epoch (from 0)."""
    name, default_n, returns = "step_lr", 101, "a float"
    hint = "the rate is multiplied by gamma once every step_size epochs, starting from base_lr at epoch 0"
    formula = "lr = base_lr * gamma ** (epoch // step_size)"

    def cases(self, seed, n):
        rng = random.Random(seed)
        cases = [{"epoch": 14, "base_lr": 0.1, "step_size": 7, "gamma": 0.1, "tol": 1e-15}]
        cases += [{"epoch": e, "base_lr": b, "step_size": s, "gamma": g}
                  for b, s, g in [(0.1, 7, 0.1), (0.01, 3, 0.5), (1.0, 1, 0.9), (0.05, 10, 0.2)] for e in range(25)]
        while len(cases) < n:
            cases.append({"epoch": rng.randint(0, 40), "base_lr": rng.choice([1.0, 0.1, 0.03, 3e-4]),
                          "step_size": rng.randint(1, 12), "gamma": rng.choice([0.1, 0.2, 0.5, 0.9])})
        return cases

    def run(self, answer, case):
        return answer(case["epoch"], case["base_lr"], case["step_size"], case["gamma"])

    def reference(self, case):
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=case["base_lr"])
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=case["step_size"], gamma=case["gamma"])
        for _ in range(case["epoch"]):
            opt.step()
            sched.step()
        return opt.param_groups[0]["lr"]

    def compare(self, got, want, case):
        value, failure = number(got, what="a float")
        if failure:
            return failure
        if not abs(value - want) <= case.get("tol", 1e-12 + 1e-9 * want):
            return Failure(f"epoch={case['epoch']}, base_lr={case['base_lr']}, step_size={case['step_size']}, "
                           f"gamma={case['gamma']}: you returned {value!r}, StepLR gives {want:.6g}")
        return None


@register
class OverfittingEpoch(Check):
    """fn(train_losses, val_losses) -> the epoch (1-based) after which the model overfits, or None."""
    name, default_n, returns = "overfitting_epoch", 6, "an int or None"
    hint = "no overfitting while validation still improves; otherwise it starts after the best validation epoch"
    formula = ("no overfitting while validation still improves: if the best validation loss "
               "is at the last epoch return None, else return the epoch of the best one")

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [
            ([1.0, 0.7, 0.5, 0.4, 0.3, 0.2], [1.1, 0.8, 0.6, 0.65, 0.7, 0.8]),
            ([1.0, 0.7, 0.5, 0.4], [1.1, 0.8, 0.6, 0.55]),              # still improving: keep training
            ([2.0, 1.5, 1.4, 1.3, 1.2], [2.1, 1.7, 1.8, 1.9, 2.0]),
            ([1.0, 0.9], [1.0, 1.2]),
            ([1.0, 0.8, 0.6, 0.5], [1.0, 0.9, 0.95, 0.85]),             # a bump, then a new best
            ([1.0, 0.5], [1.0, 0.5]),
        ]
        while len(fixed) < n:
            length = rng.randint(1, 15)
            fixed.append((_random_curve(rng, length), _random_curve(rng, length)))
        return [{"train_losses": t, "val_losses": v} for t, v in fixed]

    def run(self, answer, case):
        return answer(list(case["train_losses"]), list(case["val_losses"]))

    def reference(self, case):
        best, val = _best(case["val_losses"]), case["val_losses"]
        return None if best == len(val) - 1 else best + 1

    def compare(self, got, want, case):
        if got is None or want is None:
            right = got is want
        else:
            value, failure = number(got, what="an int or None")
            right = failure is None and value == want
        if not right:
            return Failure(f"for train={case['train_losses']}, val={case['val_losses']} you returned {got!r}, "
                           f"expected {want!r}")
        return None
