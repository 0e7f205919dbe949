"""Checks of notebooks/02_backprop.ipynb: derivatives by hand, by differences, parameter counts.

See: notebooks/02_backprop.ipynb
"""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from cnnkit.check._core import Check, Failure, number, register


def _grad_tol(want: float) -> float:
    """Tolerance of a derivative: float32 precision (autograd on float32 tensors) is right, not wrong."""
    return 1e-6 + 1e-5 * abs(want)


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
        tol = case.get("tol", _grad_tol(want))
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
        return _close_failure(got, want, _grad_tol(want),
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


# --- issue 17: a new operation for the scalar engine, checked on random graphs -------------

def _simulate(leaves: list, ops: list) -> list:
    """Forward values of a graph spec with plain floats (to choose valid ops while making cases)."""
    values = list(leaves)
    for op, *args in ops:
        a = values[args[0]]
        b = values[args[1]] if len(args) > 1 else None
        values.append({"add": lambda: a + b, "mul": lambda: a * b, "tanh": lambda: math.tanh(a),
                       "exp": lambda: math.exp(a), "log": lambda: math.log(a)}[op]())
    return values


def _random_graph(rng: random.Random) -> dict:
    """2-4 leaves, then 3-9 operations, each reading one or two earlier nodes; the last is the output."""
    leaves = [round(rng.uniform(-1.5, 1.5), 4) for _ in range(rng.randint(2, 4))]
    ops, values, target = [], list(leaves), rng.randint(3, 9)
    while len(ops) < target or not any(op[0] in ("exp", "log") for op in ops):
        i, j = rng.randrange(len(values)), rng.randrange(len(values))
        op = rng.choice(["add", "mul", "tanh", "exp", "log", "exp", "log"])
        if op == "exp" and abs(values[i]) > 3 or op == "log" and values[i] < 0.05 \
                or op == "mul" and abs(values[i] * values[j]) > 20:
            continue
        ops.append([op, i, j] if op in ("add", "mul") else [op, i])
        values = _simulate(leaves, ops)
    return {"leaves": leaves, "ops": ops}


def _says_why(message, a) -> bool:
    """Whether a ValueError message for log(a), a <= 0, is the student's own: it says that a must be
    positive (or > 0), or names the value it got. Python's own 'math domain error' says neither."""
    if type(message) is not str:
        return False
    text = message.lower()
    return any(word in text for word in ("positive", ">", "<=", "< 0", "<0")) or \
        any(v in text for v in {repr(a), str(a), f"{a:g}"})


@register
class ValueOps(Check):
    """cls: a subclass of cnnkit.autograd.Value with its own exp() and log(), on random graphs vs torch.autograd."""
    name, default_n = "value_ops", 60
    expects, returns = "a subclass of cnnkit.autograd.Value (the class itself)", "Value nodes"
    hint = ("a node needs three things: its value, the node(s) it was computed from, and the local "
            "derivative d(result)/d(input) at that input; work the derivative out on paper and "
            "try it at a = 1")
    formula = ("exp: Value(e, '', (self,), 'exp', (e,)) with e = math.exp(self.data), since d e^a/da = e^a; "
               "log: Value(math.log(a), '', (self,), 'log', (1 / a,)) with a = self.data > 0, since d log(a)/da = 1/a; "
               "log of a <= 0 raises ValueError(f'log needs a > 0, got {a}'), with your own message: "
               "math.log(0.0) raises 'math domain error', which says neither what is wrong nor the value")

    def accepts(self, answer) -> bool:
        return isinstance(answer, type)

    def cases(self, seed, n):
        rng = random.Random(seed)
        fixed = [{"leaves": [0.0], "ops": [["exp", 0]]},                       # e^0 = 1, slope 1
                 {"leaves": [2.0], "ops": [["log", 0]]},                       # slope 1/2, not log 2
                 {"leaves": [0.5], "ops": [["exp", 0], ["log", 1]]},           # log(exp(a)) = a: slope 1
                 {"leaves": [1.5, -0.7], "ops": [["log", 0], ["mul", 2, 0], ["exp", 1], ["add", 3, 4]]},
                 {"leaves": [-1.0], "ops": [], "log_of_nonpositive": True},
                 {"leaves": [0.0], "ops": [], "log_of_nonpositive": True}]    # math.log raises its own message
        return fixed + [_random_graph(rng) for _ in range(max(0, n - len(fixed)))]

    def describe_case(self, case):
        if case.get("log_of_nonpositive"):
            return f"log of {case['leaves'][0]}"
        return f"leaves {case['leaves']}, ops {case['ops']}"

    def run(self, answer, case):
        from cnnkit.autograd import Value
        if not (isinstance(answer, type) and issubclass(answer, Value)):
            return {"problem": "not_subclass"}
        # The released stub defines exp only (raising NotImplementedError): report "not implemented yet"
        # before complaining that log is missing.
        for method, arg in (("exp", 0.5), ("log", 1.5)):
            if getattr(answer, method) is not getattr(Value, method):
                getattr(answer, method)(answer(arg))
        own = [m for m in ("exp", "log") if getattr(answer, m) is not getattr(Value, m)]
        if own != ["exp", "log"]:
            return {"problem": "inherited", "missing": [m for m in ("exp", "log") if m not in own]}
        if case.get("log_of_nonpositive"):
            try:
                answer.log(answer(case["leaves"][0]))
            except ValueError as exc:
                return {"raised": "ValueError", "message": str(exc)}
            except Exception as exc:                 # the wrong kind of error
                return {"raised": type(exc).__name__}
            return {"raised": None}
        nodes = [answer(v, f"x{i}") for i, v in enumerate(case["leaves"])]
        for op, *args in case["ops"]:
            a = nodes[args[0]]
            if op in ("exp", "log"):
                out = getattr(answer, op)(a)         # the student's method, whatever class `a` has
                if not isinstance(out, Value):
                    return {"problem": "not_value", "op": op, "type": type(out).__name__}
            elif op == "tanh":
                out = a.tanh()
            else:
                out = a + nodes[args[1]] if op == "add" else a * nodes[args[1]]
            nodes.append(out)
        nodes[-1].backward()
        return {"data": [float(v.data) for v in nodes],
                "grads": [float(v.grad) for v in nodes[:len(case["leaves"])]]}

    def reference(self, case):
        if case.get("log_of_nonpositive"):
            return {"raised": "ValueError"}
        leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in case["leaves"]]
        nodes = list(leaves)
        for op, *args in case["ops"]:
            a = nodes[args[0]]
            b = nodes[args[1]] if len(args) > 1 else None
            nodes.append({"add": lambda: a + b, "mul": lambda: a * b, "tanh": lambda: torch.tanh(a),
                          "exp": lambda: torch.exp(a), "log": lambda: torch.log(a)}[op]())
        grads = torch.autograd.grad(nodes[-1], leaves, allow_unused=True)
        return {"data": [v.item() for v in nodes],
                "grads": [0.0 if g is None else g.item() for g in grads]}

    def compare(self, got, want, case):
        if type(got) is not dict:
            return Failure(f"expected {self.returns}, got {type(got).__name__}")
        problem = got.get("problem")
        if problem == "not_subclass":
            return Failure("expected a subclass of cnnkit.autograd.Value",
                           "keep `class MyValue(Value):` and pass the class itself: check(MyValue)")
        if problem == "inherited":
            return Failure(f"MyValue has no {' or '.join(got.get('missing', []))} of its own: it would use "
                           "cnnkit's, so the check would test nothing", "define both methods inside the class")
        if problem == "not_value":
            return Failure(f"{got.get('op')}() returned a {got.get('type')}, not a Value",
                           "an operation returns a new node of the graph, e.g. "
                           "Value(result, '', (self,), 'exp', (local_derivative,))")
        if "raised" in want:
            a = case["leaves"][0]
            if got.get("raised") != "ValueError":
                what = "returned a node" if got.get("raised") is None else f"raised {got.get('raised')}"
                return Failure(f"log of {a} {what}; it must raise ValueError (log is defined for a > 0 only)",
                               "check self.data before computing, and raise ValueError with a message")
            message = got.get("message")
            if not _says_why(message, a):
                return Failure(f"log of {a} raised ValueError({message!r}); the message should be yours and say "
                               f"what is wrong: that a must be positive, or which value ({a}) it got",
                               "test self.data <= 0 yourself before calling math.log, and raise "
                               "ValueError with a message that names the problem")
            return None
        data, grads = got.get("data"), got.get("grads")
        if type(data) is not list or len(data) != len(want["data"]) or type(grads) is not list \
                or len(grads) != len(want["grads"]):
            return Failure(f"expected {self.returns}, got a graph of another size")
        for k, (op, *args) in enumerate(case["ops"]):
            idx = len(case["leaves"]) + k
            g, w = data[idx], want["data"][idx]
            if not (type(g) is float and abs(g - w) <= 1e-9 + 1e-9 * abs(w)):
                a = want["data"][args[0]]
                return Failure(f"forward value: {op}({a:.4g}) gave {g!r}, expected {w:.6g}",
                               f"the value of the new node is {op} of self.data")
        for i, (g, w) in enumerate(zip(grads, want["grads"])):
            if not abs(g - w) <= 1e-7 + 1e-7 * abs(w):
                where = self.describe_case(case)
                extra = " (0: does the new node name the node it came from, with its local derivative?)" if g == 0 and w != 0 else ""
                return Failure(f"graph {where}: d out / d x{i} is {g:.6g}{extra}, torch.autograd gives {w:.6g}",
                               "forward values are right, so look at the local derivatives you stored")
        return None
