"""Checks of notebooks/03_normalization.ipynb: batch and layer norm, He init, eval-mode prediction.

See: notebooks/03_normalization.ipynb
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.check._core import (Check, Failure, describe_type, number, random_cases, register, seeded,
                               tensor_failure)


@register
class BatchNormTrain(Check):
    """fn(x (N, C), eps) -> batch norm in training mode without gamma/beta, against F.batch_norm."""
    name, default_n, returns = "batch_norm_train", 40, "a tensor"
    hint = "per column (feature): statistics over the batch (dim=0), and the biased variance"
    formula = ("per column (feature): subtract the mean over the batch (dim=0) and divide by "
               "sqrt(biased variance + eps): x.var(dim=0, unbiased=False)")

    def cases(self, seed, n):
        def random_case(gen):
            rows, cols = int(torch.randint(2, 40, (1,), generator=gen)), int(torch.randint(1, 8, (1,), generator=gen))
            return {"x": torch.randn(rows, cols, generator=gen) * (1 + 5 * torch.rand(cols, generator=gen)) + 3,
                    "eps": 1e-5}
        return random_cases(seed, n, random_case)

    def run(self, answer, case):
        return answer(case["x"], case["eps"])

    def reference(self, case):
        return F.batch_norm(case["x"], None, None, training=True, eps=case["eps"])

    def compare(self, got, want, case):
        return tensor_failure(got, want, f"for x of shape {tuple(case['x'].shape)}")


@register
class LayerNormRows(Check):
    """fn(x (N, D), eps) -> layer norm over each row without gamma/beta, against F.layer_norm."""
    name, default_n, returns = "layer_norm_rows", 40, "a tensor"
    hint = "per row (example): the statistics run over the features, not over the batch"
    formula = "per row (example): mean and biased variance over dim=1, keepdim=True"

    def cases(self, seed, n):
        def random_case(gen):
            rows, cols = int(torch.randint(1, 20, (1,), generator=gen)), int(torch.randint(2, 30, (1,), generator=gen))
            return {"x": torch.randn(rows, cols, generator=gen) * 4 - 2, "eps": 1e-5}
        return random_cases(seed, n, random_case)

    def run(self, answer, case):
        return answer(case["x"], case["eps"])

    def reference(self, case):
        return F.layer_norm(case["x"], (case["x"].shape[1],), eps=case["eps"])

    def compare(self, got, want, case):
        return tensor_failure(got, want, f"for x of shape {tuple(case['x'].shape)}")


@register
class HeStd(Check):
    """fn(in_channels, kernel_size) -> the He std of a ReLU conv layer, against torch.nn.init."""
    name, default_n, returns = "he_std", 6, "a float"
    hint = "He initialisation keeps the variance of ReLU activations steady; it depends on fan_in"
    formula = "std = sqrt(2 / fan_in), and fan_in of a conv layer = in_channels * k * k"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [(1, 3), (3, 7), (64, 3), (256, 1), (16, 5), (512, 3)]
        fixed += [(rng.randint(1, 512), rng.choice([1, 3, 5, 7])) for _ in range(n - len(fixed))]
        return [{"in_channels": c, "kernel_size": k} for c, k in fixed]

    def run(self, answer, case):
        return answer(case["in_channels"], case["kernel_size"])

    def reference(self, case):
        c_in, k = case["in_channels"], case["kernel_size"]
        fan_in = nn.init._calculate_fan_in_and_fan_out(torch.empty(8, c_in, k, k))[0]
        return nn.init.calculate_gain("relu") / math.sqrt(fan_in)

    def compare(self, got, want, case):
        value, failure = number(got, what="a float")
        if failure:
            return failure
        if not abs(value - want) <= 1e-12:
            return Failure(f"for in_channels={case['in_channels']}, kernel_size={case['kernel_size']} you returned "
                           f"{value!r}, He initialisation uses std = {want:.6g}")
        return None


def _eval_setup(case) -> tuple[nn.Module, torch.Tensor]:
    """The model and batch a case names, built the same way on both sides of the check."""
    with seeded(case["seed"]):
        if case["model"] == "small":                       # batch norm right after a Linear, no warm-up
            model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
            x = torch.randn(case["batch"], 2)
        else:
            model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
            for _ in range(20):
                model(torch.randn(32, 4) * 2 + 1)          # give the running statistics something to hold
            x = torch.randn(case["batch"], 4)
    model.train(case["training"])
    return model, x


@register
class EvalPredict(Check):
    """fn(model, x) must return the model's eval-mode output without a graph, and restore its mode."""
    name, default_n, returns = "eval_predict", 4, "a tensor"
    hint = "a prediction uses the running statistics and no dropout, records no graph, and leaves the model as it was"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [{"model": "mlp", "training": True, "batch": 1}, {"model": "mlp", "training": True, "batch": 5},
                 {"model": "mlp", "training": False, "batch": 5}, {"model": "small", "training": True, "batch": 1}]
        fixed += [{"model": rng.choice(["mlp", "small"]), "training": rng.random() < 0.5, "batch": rng.randint(1, 8)}
                  for _ in range(n - len(fixed))]
        return [dict(case, seed=i) for i, case in enumerate(fixed)]

    def run(self, answer, case):
        model, x = _eval_setup(case)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        got = answer(model, x)
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        return {"out": got, "requires_grad": isinstance(got, torch.Tensor) and bool(got.requires_grad),
                "training_after": model.training, "changed": changed}

    def reference(self, case):
        model, x = _eval_setup(case)
        model.eval()
        with torch.no_grad():
            return model(x)

    def compare(self, got, want, case):
        out, mode = got["out"], case["training"]
        if type(out) is not torch.Tensor or out.shape != want.shape or not torch.allclose(out, want, atol=1e-6):
            return Failure(f"for a batch of {case['batch']} the output is not the eval-mode output "
                           f"(running statistics, no dropout): you returned {describe_type(out)}",
                           "call model.eval() before the forward pass")
        if got["requires_grad"]:
            return Failure("the output still carries an autograd graph",
                           "wrap the forward pass in `with torch.no_grad():`")
        if got["changed"]:
            return Failure(f"predicting changed the model's state: {got['changed']}",
                           "in eval mode batch norm must not update its running statistics")
        if got["training_after"] != mode:
            return Failure(f"the model was in {'train' if mode else 'eval'} mode before and is in "
                           f"{'train' if got['training_after'] else 'eval'} mode after",
                           "remember the mode before you change it, and put it back at the end",
                           "remember `was_training = model.training` and call model.train(was_training) at the end")
        return None


# --- issue 17: the backward pass of batch norm, checked against autograd -------------------

def _bn_autograd(x: torch.Tensor, gamma: torch.Tensor, dout: torch.Tensor, eps: float):
    x = x.to(torch.float64).requires_grad_(True)
    gamma = gamma.to(torch.float64).requires_grad_(True)
    beta = torch.zeros_like(gamma, requires_grad=True)
    out = torch.nn.functional.batch_norm(x, None, None, weight=gamma, bias=beta, training=True, eps=eps)
    return torch.autograd.grad(out, (x, gamma, beta), dout.to(torch.float64))


@register
class BatchNormBackward(Check):
    """fn(dout, x, gamma, eps) -> (dx, dgamma, dbeta) of training-mode batch norm on (N, C), vs autograd."""
    name, default_n, returns = "batch_norm_backward", 30, "a tuple (dx, dgamma, dbeta) of tensors"
    hint = ("out = gamma * x_hat + beta with x_hat = (x - mean) / sqrt(var + eps), where the mean and var "
            "of each column are computed from the same x: every x in a column also moves them. "
            "Draw the graph and sum over the paths")
    formula = ("x_hat = (x - mean) / std, std = sqrt(var + eps) (biased var); dbeta = dout.sum(0); "
               "dgamma = (dout * x_hat).sum(0); dx_hat = dout * gamma; "
               "dx = (dx_hat - dx_hat.mean(0) - x_hat * (dx_hat * x_hat).mean(0)) / std")

    def cases(self, seed, n):
        g = torch.Generator().manual_seed(seed)

        def case(N, C, scale=1.0, shift=0.0, eps=1e-5, dout=None):
            x = torch.randn(N, C, generator=g, dtype=torch.float64) * scale + shift
            gamma = torch.rand(C, generator=g, dtype=torch.float64) + 0.5
            d = torch.randn(N, C, generator=g, dtype=torch.float64) if dout is None else dout(N, C)
            return {"x": x, "gamma": gamma, "dout": d, "eps": eps}

        fixed = [case(4, 3),
                 case(2, 1),                                              # the smallest batch
                 case(6, 2, dout=lambda N, C: torch.ones(N, C, dtype=torch.float64)),   # dx must be 0
                 case(8, 3, scale=5.0, shift=10.0),                      # far from mean 0, std 1
                 case(5, 4, eps=0.5)]                                     # eps really matters

        def random_case(gen):                     # its own generator for the sizes, `g` for the values
            N, C = torch.randint(2, 17, (2,), generator=gen).tolist()
            return case(N, max(1, C // 3), scale=float(torch.rand(1, generator=gen)) * 4 + 0.2)
        return random_cases(seed + 1, n, random_case, fixed)

    def describe_case(self, case):
        return f"x of shape {tuple(case['x'].shape)}, eps={case['eps']}"

    def run(self, answer, case):
        out = answer(case["dout"].clone(), case["x"].clone(), case["gamma"].clone(), case["eps"])
        return tuple(out) if type(out) in (tuple, list) else out

    def reference(self, case):
        return _bn_autograd(case["x"], case["gamma"], case["dout"], case["eps"])

    def compare(self, got, want, case):
        if type(got) is not tuple or len(got) != 3:
            return Failure(f"expected {self.returns}, got {describe_type(got)}",
                           "return dx, dgamma, dbeta (three tensors)")
        dx, dgamma, dbeta = want
        where = self.describe_case(case)
        failure = tensor_failure(got[2], dbeta, f"dbeta ({where})",
                                 "beta is added to every row of its column", atol=1e-6)
        if failure:
            return failure
        failure = tensor_failure(got[1], dgamma, f"dgamma ({where})",
                                 "gamma multiplies x_hat in every row of its column", atol=1e-6)
        if failure:
            return failure
        failure = tensor_failure(got[0], dx, f"dx ({where})", atol=1e-6)
        if failure is None:
            return None
        x = case["x"]
        std = torch.sqrt(x.var(0, unbiased=False) + case["eps"])
        naive = case["dout"] * case["gamma"] / std
        if type(got[0]) is torch.Tensor and got[0].shape == naive.shape and \
                torch.allclose(got[0].to(torch.float64), naive, atol=1e-6):
            failure.reason += ": your dx treats the column's mean and variance as constants"
        return failure
