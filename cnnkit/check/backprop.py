"""Checks of notebooks/02_backprop.ipynb: derivatives by hand, by differences, parameter counts.

See: notebooks/02_backprop.ipynb
"""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from cnnkit.check._core import Check, Failure, number, register


def _close_failure(got, want: float, tol: float, reason: str, hint: str = "", formula: str = ""):
    value, failure = number(got, what="a number (float)")
    if failure:
        return failure
    if not abs(value - want) <= tol:
        return Failure(reason.format(got=value), hint, formula)
    return None


@register
class SigmoidGrad(Check):
    """fn(x: float) -> d sigmoid(x) / dx, against torch.autograd."""
    name, default_n, returns = "sigmoid_grad", 200, "a number"
    hint = "differentiate 1 / (1 + exp(-x)); the result can be written with sigmoid(x) itself; at x = 0 it is 0.25"
    formula = "sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)); at x = 0 it is 0.25"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [{"x": 0.0, "tol": 1e-12}] + [{"x": x} for x in (1.0, -1.0, 4.0, -4.0, 10.0)]
        return fixed + [{"x": rng.uniform(-8, 8)} for _ in range(n - len(fixed))]

    def run(self, answer, case):
        return answer(case["x"])

    def reference(self, case):
        t = torch.tensor(case["x"], dtype=torch.float64, requires_grad=True)
        torch.sigmoid(t).backward()
        return t.grad.item()

    def compare(self, got, want, case):
        tol = case.get("tol", 1e-9 + 1e-7 * abs(want))
        return _close_failure(got, want, tol, f"at x={case['x']:.4g} you returned {{got:.6g}}, "
                                              f"torch.autograd gives {want:.6g}")


@register
class PathSum(Check):
    """fn(x, y) -> d f / d y for f(x, y) = tanh(x * y + y), against torch.autograd."""
    name, default_n, returns = "path_sum", 200, "a number"
    hint = ("y reaches the output along two paths (through x*y, and directly into the sum); "
            "multiply the local derivatives along each path, then add the two products")
    formula = "df/dy = (1 - tanh(x*y + y)**2) * x + (1 - tanh(x*y + y)**2) * 1"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [{"x": 2.0, "y": -0.5}, {"x": 0.0, "y": 1.0}, {"x": -1.0, "y": 3.0}]
        return fixed + [{"x": rng.uniform(-2, 2), "y": rng.uniform(-2, 2)} for _ in range(n - len(fixed))]

    def run(self, answer, case):
        return answer(case["x"], case["y"])

    def reference(self, case):
        tx = torch.tensor(case["x"], dtype=torch.float64)
        ty = torch.tensor(case["y"], dtype=torch.float64, requires_grad=True)
        torch.tanh(tx * ty + ty).backward()
        return ty.grad.item()

    def compare(self, got, want, case):
        return _close_failure(got, want, 1e-9 + 1e-7 * abs(want),
                              f"at x={case['x']:.4g}, y={case['y']:.4g} you returned {{got:.6g}}, "
                              f"torch.autograd gives {want:.6g}")


# The functions a numerical_derivative case names, with their exact derivatives.
_FUNCTIONS = {
    "sin": (math.sin, math.cos),
    "exp": (math.exp, math.exp),
    "square": (lambda t: t ** 2, lambda t: 2 * t),
    "cube": (lambda t: t ** 3, lambda t: 3 * t ** 2),
    "log": (math.log, lambda t: 1 / t),
}


@register
class NumericalDerivative(Check):
    """fn(f, x, eps) must be the central difference (f(x + eps) - f(x - eps)) / (2 eps)."""
    name, default_n, returns = "numerical_derivative", 8, "a number"
    hint = "use both sides of x: f(x + eps) and f(x - eps)"
    formula = "(f(x + eps) - f(x - eps)) / (2 * eps)"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [{"f": "sin", "x": x, "eps": 1e-5, "tol": 1e-6} for x in (-2.0, 0.0, 0.7, 3.0)]
        fixed += [{"f": "exp", "x": 1.0, "eps": 1e-5, "tol": 1e-6}, {"f": "square", "x": 3.0, "eps": 1e-5, "tol": 1e-6},
                  {"f": "log", "x": 2.0, "eps": None, "tol": 1e-8},          # the default eps
                  # Only the central difference has an O(eps^2) error: for x^3 it is exactly 3x^2 + eps^2.
                  {"f": "cube", "x": 1.0, "eps": 1e-2, "tol": 1e-8}]
        while len(fixed) < n:
            f = rng.choice(sorted(_FUNCTIONS))
            x = rng.uniform(0.5, 3) if f == "log" else rng.uniform(-3, 3)
            fixed.append({"f": f, "x": x, "eps": 1e-5, "tol": 1e-6 * max(1.0, abs(_FUNCTIONS[f][1](x)))})
        return fixed

    def run(self, answer, case):
        f = _FUNCTIONS[case["f"]][0]
        return answer(f, case["x"]) if case["eps"] is None else answer(f, case["x"], case["eps"])

    def reference(self, case):
        x, eps = case["x"], case["eps"]
        exact = _FUNCTIONS[case["f"]][1](x)
        return exact + eps ** 2 if case["f"] == "cube" else exact

    def describe_case(self, case):
        eps = "the default eps" if case["eps"] is None else f"eps={case['eps']}"
        return f"f={case['f']}, x={case['x']:.4g}, {eps}"

    def compare(self, got, want, case):
        if case["f"] == "cube" and case["eps"] == 1e-2:
            return _close_failure(got, want, case["tol"],
                                  "for f(x) = x^3 at x = 1 with eps = 0.01 you returned {got:.6g}; the central "
                                  "difference gives 3.0001 (a one-sided difference gives about 3.0301)")
        where = f"for f = {case['f']} at x={case['x']:.4g}" + (" with the default eps" if case["eps"] is None else "")
        return _close_failure(got, want, case["tol"], where + f" you returned {{got:.8g}}, the derivative is {want:.8g}")


@register
class MlpParams(Check):
    """fn(sizes) -> parameters of an MLP with layer sizes [inputs, hidden..., outputs], biases included."""
    name, default_n, returns = "mlp_params", 50, "an int"
    hint = "count each layer's weights and its biases, then add the layers up"
    formula = "each layer has inputs*outputs weights plus one bias per output unit"

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [[784, 128, 64, 10], [2, 1], [3, 4, 4, 1]]
        return [{"sizes": s} for s in fixed] + [{"sizes": [rng.randint(1, 50) for _ in range(rng.randint(2, 6))]}
                                                  for _ in range(n - len(fixed))]

    def run(self, answer, case):
        return answer(list(case["sizes"]))

    def reference(self, case):
        sizes = case["sizes"]
        net = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
        return sum(p.numel() for p in net.parameters())

    def compare(self, got, want, case):
        value, failure = number(got, what="an int")
        if failure:
            return failure
        if value != want:
            return Failure(f"for sizes={case['sizes']} you returned {value!r}; sum(p.numel()) gives {want}")
        return None
