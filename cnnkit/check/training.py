"""Checks of notebooks/05_training.ipynb: early stopping, StepLR, the training loop, the range test.

See: notebooks/05_training.ipynb
"""

from __future__ import annotations

import copy
import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.check._core import Check, Failure, describe, describe_type, number, register, seeded

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


# ----------------------------------------------------------------------------
# 05, a training loop with a scheduler and early stopping, checked by behaviour
# ----------------------------------------------------------------------------

def _loop_model(kind: str, d_in: int, hidden: int, classes: int) -> nn.Module:
    """The models of the train_loop cases: 'linear', or 'bn-mlp' (batch norm: train/eval mode matters)."""
    if kind == "linear":
        return nn.Linear(d_in, classes)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, classes))


def _loop_setup(case):
    """Model, batches, optimizer and scheduler of one case, the same on both sides."""
    with seeded(case["seed"]):
        model = _loop_model(case["model"], case["d_in"], 16, case["classes"])
    batch = case["batch"]
    train = list(zip(case["train_x"].split(batch), case["train_y"].split(batch)))
    val = list(zip(case["val_x"].split(batch), case["val_y"].split(batch)))
    optimizer = torch.optim.SGD(model.parameters(), lr=case["lr"], momentum=case["momentum"])
    if case["scheduler"] == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=case["step_size"], gamma=case["gamma"])
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=case["max_epochs"])
    return model, train, val, optimizer, scheduler


def reference_train_loop(model, train_batches, val_batches, optimizer, scheduler, max_epochs, patience):
    """The loop the exercise asks for (trusted side)."""
    history = {"val_loss": [], "lr": []}
    best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
    for epoch in range(max_epochs):
        history["lr"].append(optimizer.param_groups[0]["lr"])
        model.train()
        for x, y in train_batches:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(x), y).item() for x, y in val_batches) / len(val_batches)
        history["val_loss"].append(val_loss)
        scheduler.step()
        if val_loss < best_loss:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    return history


@register
class TrainLoop(Check):
    """fn(model, train_batches, val_batches, optimizer, scheduler, max_epochs, patience) -> history,
    judged by what it does: learning rate per epoch, validation losses, when it stops, final weights."""
    name, default_n, returns = "train_loop", 8, 'a dict {"val_loss": [...], "lr": [...]}'
    hint = ("each epoch: model.train(), for each batch zero_grad / loss / backward / step; then model.eval() "
            "and the validation loss without gradients; then scheduler.step(); stop after `patience` epochs "
            "without a strictly lower validation loss, and leave the best epoch's weights in the model")
    formula = ("history = {'val_loss': [], 'lr': []}; best, best_epoch, best_state = inf, 0, deepcopy(model.state_dict())\n"
               "for epoch in range(max_epochs):\n"
               "    history['lr'].append(optimizer.param_groups[0]['lr']); model.train()\n"
               "    for x, y in train_batches: optimizer.zero_grad(); F.cross_entropy(model(x), y).backward(); optimizer.step()\n"
               "    model.eval()\n"
               "    with torch.no_grad(): val = sum(F.cross_entropy(model(x), y).item() for x, y in val_batches) / len(val_batches)\n"
               "    history['val_loss'].append(val); scheduler.step()\n"
               "    if val < best: best, best_epoch, best_state = val, epoch, deepcopy(model.state_dict())\n"
               "    elif epoch - best_epoch >= patience: break\n"
               "model.load_state_dict(best_state); return history")

    def cases(self, seed, n):
        rng = random.Random(seed)
        # fixed: an MLP with batch norm that overfits noise (early stopping must trigger), StepLR;
        # a linear model whose learning rate drops to 0 (equal losses: strictly lower, earliest kept);
        # cosine annealing that runs to max_epochs.
        specs = [dict(model="bn-mlp", scheduler="step", step_size=2, gamma=0.5, lr=0.5, momentum=0.9,
                      patience=2, max_epochs=12),
                 dict(model="linear", scheduler="step", step_size=3, gamma=0.0, lr=0.1, momentum=0.0,
                      patience=3, max_epochs=12, task="teacher"),
                 dict(model="bn-mlp", scheduler="cosine", step_size=1, gamma=1.0, lr=0.05, momentum=0.0,
                      patience=20, max_epochs=5)]
        while len(specs) < n:
            specs.append(dict(model=rng.choice(["bn-mlp", "linear"]), scheduler=rng.choice(["step", "cosine"]),
                              step_size=rng.randint(1, 4), gamma=rng.choice([0.1, 0.5]),
                              lr=rng.choice([0.05, 0.2, 0.5]), momentum=rng.choice([0.0, 0.9]),
                              patience=rng.randint(1, 4), max_epochs=rng.randint(4, 12)))
        cases = []
        for i, spec in enumerate(specs[:n]):
            g = torch.Generator().manual_seed(seed * 1000 + i)
            d_in, classes, batch = 12, 3, 8
            x = torch.randn(56, d_in, generator=g)
            if spec.get("task") == "teacher":                     # learnable labels: the loss falls at first
                y = (x @ torch.randn(d_in, classes, generator=g)).argmax(1)
            else:                                                  # noise labels: it overfits
                y = torch.randint(0, classes, (56,), generator=g)
            spec = {k: v for k, v in spec.items() if k != "task"}
            cases.append(dict(spec, seed=seed * 1000 + i, d_in=d_in, classes=classes, batch=batch,
                              train_x=x[:32], train_y=y[:32], val_x=x[32:], val_y=y[32:]))
        return cases

    def _behaviour(self, fn, case):
        model, train, val, optimizer, scheduler = _loop_setup(case)
        history = fn(model, train, val, optimizer, scheduler, case["max_epochs"], case["patience"])
        if not isinstance(history, dict):
            return history
        out = {k: history.get(k) for k in ("val_loss", "lr")}
        for key, values in out.items():
            if isinstance(values, (list, tuple)):
                out[key] = [float(v) if isinstance(v, (int, float, torch.Tensor)) and not isinstance(v, bool)
                            and (not isinstance(v, torch.Tensor) or v.numel() == 1) else v for v in values]
        out["weights"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return out

    def run(self, answer, case):
        return self._behaviour(answer, case)

    def reference(self, case):
        return self._behaviour(reference_train_loop, case)

    def compare(self, got, want, case):
        if type(got) is not dict:
            return Failure(f"expected {self.returns}, got {describe_type(got)}",
                           "did you forget `return history`?" if got is None else "return a dict with two lists")
        for key in ("val_loss", "lr"):
            if type(got.get(key)) is not list or not all(type(v) is float for v in got[key]):
                return Failure(f'history["{key}"] should be a list of numbers, one per epoch, '
                               f"got {describe(got.get(key))}", "append one float per epoch (use .item())")
        g_lr, w_lr, g_val, w_val = got["lr"], want["lr"], got["val_loss"], want["val_loss"]
        for epoch, (a, b) in enumerate(zip(g_lr, w_lr), start=1):
            if abs(a - b) > 1e-9 + 1e-6 * abs(b):
                if abs(a - case["lr"]) < 1e-12 and epoch > 1:
                    hint = "the learning rate never changes: call scheduler.step() once at the end of every epoch"
                else:
                    hint = ("record optimizer.param_groups[0]['lr'] at the start of each epoch, and step the "
                            "scheduler once per epoch (not once per batch)")
                return Failure(f"learning rate of epoch {epoch}: got {a:.4g}, expected {b:.4g}", hint)
        for epoch, (a, b) in enumerate(zip(g_val, w_val), start=1):
            if abs(a - b) > 1e-4 + 1e-4 * abs(b):
                if epoch == 1:
                    hint = ("the first validation loss already differs: zero the gradients before each backward "
                            "pass, and validate in eval mode (batch norm!) as the mean of the batch losses")
                else:
                    hint = ("epoch 1 was right, a later one is not: does every epoch switch back to model.train() "
                            "before its training batches?")
                return Failure(f"validation loss of epoch {epoch}: got {a:.4f}, expected {b:.4f}", hint)
        if len(g_val) != len(w_val) or len(g_lr) != len(w_lr):
            best = w_val.index(min(w_val)) + 1
            more = "stopped too late" if len(g_val) > len(w_val) else "stopped too early"
            return Failure(f"{more}: ran {len(g_val)} epochs, expected {len(w_val)} (best epoch {best}, "
                           f"patience {case['patience']}, max_epochs {case['max_epochs']})",
                           "stop when the best epoch is `patience` epochs behind the current one; only a strictly "
                           "lower loss is an improvement; one entry in each list per epoch run")
        gw, ww = got.get("weights"), want["weights"]
        if type(gw) is not dict or set(gw) != set(ww) or any(
                type(gw[k]) is not torch.Tensor or gw[k].shape != ww[k].shape
                or not torch.allclose(gw[k].double(), ww[k].double(), atol=1e-5, rtol=1e-4) for k in ww):
            return Failure(f"the model's final weights are not those of the best epoch "
                           f"({w_val.index(min(w_val)) + 1})",
                           "keep a copy of the best weights (state_dict() returns the live tensors: copy.deepcopy "
                           "it) and load it back at the end")
        return None


# ----------------------------------------------------------------------------
# 05, the learning-rate range test's suggestion
# ----------------------------------------------------------------------------

@register
class SteepestLr(Check):
    """fn(lrs, losses) -> the learning rate where the loss falls fastest against log10(lr) (np.gradient)."""
    name, default_n, returns = "steepest_lr", 40, "a learning rate (float)"
    hint = ("the slope is d(loss) / d(log10 lr): np.gradient takes the coordinates as its second argument; "
            "you want the most negative slope, and return the rate there, not its index")
    formula = "slopes = np.gradient(np.asarray(losses), np.log10(lrs)); return float(lrs[int(np.argmin(slopes))])"

    def cases(self, seed, n):
        rng = random.Random(seed)
        cases = [dict(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.3, 2.2, 1.2, 0.9, 3.0])]   # fastest at 1e-2
        while len(cases) < n:
            k = rng.randint(8, 60)
            start, end = rng.uniform(-7, -4), rng.uniform(-1, 0.5)
            lrs = [10 ** (start + (end - start) * i / (k - 1)) for i in range(k)]
            if rng.random() < 0.5:                      # geometric steps that are not evenly spaced in log
                lrs = sorted(lrs[:1] + [10 ** rng.uniform(start, end) for _ in range(k - 2)] + lrs[-1:])
            centre, width = rng.uniform(start + 1, end - 1), rng.uniform(0.3, 1.5)
            losses = [2.3 - 1.5 / (1 + math.exp(-(math.log10(lr) - centre) / width)) + rng.uniform(0, 0.02)
                      + max(0.0, math.log10(lr) - end + 0.5) ** 2 * 5 for lr in lrs]
            cases.append(dict(lrs=lrs, losses=losses))
        return cases[:n]

    def run(self, answer, case):
        return answer(list(case["lrs"]), list(case["losses"]))

    def reference(self, case):
        import numpy as np
        slopes = np.gradient(np.asarray(case["losses"], dtype=float), np.log10(case["lrs"]))
        return float(case["lrs"][int(np.argmin(slopes))])

    def compare(self, got, want, case):
        value, failure = number(got, what="a learning rate (float)")
        if failure:
            return failure
        if not abs(value - want) <= 1e-12 + 1e-9 * want:
            if isinstance(value, int) or (math.isfinite(value) and value == int(value) and 0 <= value < len(case["lrs"])):
                return Failure(f"got {value}, expected {want:.3g}: that looks like an index", self.hint, self.formula)
            return Failure(f"got {value:.3g}, expected {want:.3g} for {len(case['lrs'])} rates "
                           f"from {case['lrs'][0]:.1e} to {case['lrs'][-1]:.1e}", self.hint, self.formula)
        return None
