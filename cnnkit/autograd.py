"""A scalar autograd engine: reverse-mode differentiation on a computational graph.

    a, b = Value(2.0, "a"), Value(-3.0, "b")
    loss = (a * b + b ** 2).tanh()
    loss.backward()              # a.grad = d loss / d a, b.grad = d loss / d b
    draw(loss)                   # the graph with values and gradients (no graphviz needed)

Each operation computes its result and, right beside it, a closure with its
*local* derivative. ``backward()`` sorts the graph topologically and applies
the chain rule once per edge: d out / d x = sum over paths of the product of
local derivatives along the path.

Semantics follow PyTorch on leaves: gradients accumulate across calls (zero
them with ``zero_grad``), and a second ``backward()`` adds exactly the same
amount again. Inner nodes keep the gradient of the latest call only (micrograd
accumulates them too, and then a second call over-counts every leaf).

See: notebooks/02_backprop.ipynb
"""

from __future__ import annotations

import math
import numbers
import random
from typing import Callable, Iterable, Sequence

__all__ = ["Value", "numerical_grad", "path_products", "draw", "Neuron", "Layer", "MLP"]


def _check_number(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{what} must be a real number or a Value, got {type(x).__name__} {x!r}")
    return float(x)


class Value:
    """A scalar in a computational graph, with ``.data`` and ``.grad``."""

    __slots__ = ("data", "grad", "label", "_op", "_parents", "_local_grads", "__weakref__")

    def __init__(self, data, label: str = "", _parents: tuple = (), _op: str = "",
                 _local_grads: tuple = ()):
        self.data = _check_number(data, "Value data")
        self.grad = 0.0
        self.label = label
        self._op = _op                    # the operation that produced this node ("" for a leaf)
        self._parents = _parents          # the nodes it was computed from
        self._local_grads = _local_grads  # d self / d parent, one per parent

    @staticmethod
    def _lift(other) -> "Value":
        return other if isinstance(other, Value) else Value(_check_number(other, "operand"))

    @property
    def is_leaf(self) -> bool:
        return not self._parents

    # --- operations: forward value and local derivatives side by side ---------

    def __add__(self, other) -> "Value":
        other = self._lift(other)
        # d(a + b)/da = 1, d(a + b)/db = 1
        return Value(self.data + other.data, "", (self, other), "+", (1.0, 1.0))

    def __mul__(self, other) -> "Value":
        other = self._lift(other)
        # d(a * b)/da = b, d(a * b)/db = a
        return Value(self.data * other.data, "", (self, other), "*", (other.data, self.data))

    def __pow__(self, exponent) -> "Value":
        if isinstance(exponent, Value):
            raise TypeError("only number exponents are supported (v ** 2, not v ** Value); "
                            "write exp(log(a) * b) for a variable exponent")
        k = _check_number(exponent, "exponent")
        if self.data == 0 and k < 1 and k != 0:
            raise ValueError(f"0 ** {k} has no finite derivative")
        if self.data < 0 and not float(k).is_integer():
            raise ValueError(f"({self.data}) ** {k}: a negative base needs an integer exponent")
        # d(a ** k)/da = k * a ** (k - 1)
        local = 0.0 if k == 0 else k * self.data ** (k - 1)
        return Value(self.data ** k, "", (self,), f"**{k:g}", (local,))

    def exp(self) -> "Value":
        e = math.exp(self.data)
        # d exp(a)/da = exp(a)
        return Value(e, "", (self,), "exp", (e,))

    def log(self) -> "Value":
        if self.data <= 0:
            raise ValueError(f"log is defined for positive numbers only, got {self.data}")
        # d log(a)/da = 1 / a
        return Value(math.log(self.data), "", (self,), "log", (1.0 / self.data,))

    def tanh(self) -> "Value":
        t = math.tanh(self.data)
        # d tanh(a)/da = 1 - tanh(a)^2
        return Value(t, "", (self,), "tanh", (1.0 - t * t,))

    def sigmoid(self) -> "Value":
        s = 1.0 / (1.0 + math.exp(-self.data)) if self.data >= 0 else \
            math.exp(self.data) / (1.0 + math.exp(self.data))   # no overflow for large |a|
        # d sigmoid(a)/da = sigmoid(a) * (1 - sigmoid(a)), at most 0.25
        return Value(s, "", (self,), "sigmoid", (s * (1.0 - s),))

    def relu(self) -> "Value":
        # d relu(a)/da = 1 if a > 0 else 0 (PyTorch's choice at exactly 0)
        return Value(max(self.data, 0.0), "", (self,), "relu", (1.0 if self.data > 0 else 0.0,))

    # --- everything else is built from the operations above --------------------

    def __neg__(self) -> "Value":
        return self * -1

    def __sub__(self, other) -> "Value":
        return self + (-self._lift(other))

    def __truediv__(self, other) -> "Value":
        other = self._lift(other)
        if other.data == 0:
            raise ZeroDivisionError("division by a Value equal to 0")
        return self * other ** -1

    def __radd__(self, other) -> "Value":   # 2 + v
        return self + other

    def __rmul__(self, other) -> "Value":   # 2 * v
        return self * other

    def __rsub__(self, other) -> "Value":   # 1 - v
        return self._lift(other) - self

    def __rtruediv__(self, other) -> "Value":  # 3 / v
        return self._lift(other) / self

    # --- backward ---------------------------------------------------------------

    def _topological_order(self) -> list["Value"]:
        """Every node this one depends on, each after all of its parents (iterative DFS)."""
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
            elif id(node) not in visited:
                visited.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents if id(p) not in visited)
        return order

    def backward(self, grad: float = 1.0) -> None:
        """Reverse-mode chain rule from this node: adds d self / d leaf to every leaf's .grad."""
        order = self._topological_order()
        pass_grad = {id(self): _check_number(grad, "grad")}
        # Reverse topological order: a node's gradient is complete before it is passed on.
        for node in reversed(order):
            g = pass_grad.get(id(node), 0.0)
            for parent, local in zip(node._parents, node._local_grads):
                pass_grad[id(parent)] = pass_grad.get(id(parent), 0.0) + g * local
        for node in order:
            if node.is_leaf:
                node.grad += pass_grad.get(id(node), 0.0)   # accumulate, as PyTorch does
            else:
                node.grad = pass_grad.get(id(node), 0.0)    # this call's value, for drawing

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.6g}, grad={self.grad:.6g})"


def numerical_grad(f: Callable[..., float], xs: Sequence[float], eps: float = 1e-6) -> list[float]:
    """Central differences: [(f(.., x_i + eps, ..) - f(.., x_i - eps, ..)) / (2 eps) for each i].

    f takes the numbers of `xs` as separate arguments and returns a number (or a Value).
    The error is O(eps^2) for smooth f.
    """
    if not callable(f):
        raise TypeError(f"f must be a function, got {type(f).__name__}")
    xs = [_check_number(x, "each x") for x in xs]
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")

    def value(args) -> float:
        out = f(*args)
        return out.data if isinstance(out, Value) else _check_number(out, "f's result")

    grads = []
    for i in range(len(xs)):
        up, down = list(xs), list(xs)
        up[i] += eps
        down[i] -= eps
        grads.append((value(up) - value(down)) / (2 * eps))
    return grads


def path_products(root: Value, leaf: Value) -> list[tuple[list[Value], float]]:
    """Every path from `leaf` up to `root`, with the product of local derivatives along it.

    The chain rule says d root / d leaf = sum of these products; backward() gets the
    same number without listing the paths (their count can grow exponentially).
    """
    paths = []

    def walk(node: Value, trail: list[Value], product: float) -> None:
        if node is leaf:
            paths.append((list(reversed(trail + [node])), product))
            return
        for parent, local in zip(node._parents, node._local_grads):
            walk(parent, trail + [node], product * local)

    walk(root, [], 1.0)
    return paths


def draw(root: Value, figsize: tuple[float, float] | None = None, title: str | None = None):
    """Draw the graph of `root` left to right (inputs to output) with data and grad.

    Pure matplotlib: no graphviz binary needed. Returns the Figure.
    """
    from cnnkit.plot import new_figure
    from matplotlib.patches import FancyBboxPatch

    if not isinstance(root, Value):
        raise TypeError(f"draw expects a Value, got {type(root).__name__}")
    order = root._topological_order()
    if len(order) > 60:
        raise ValueError(f"the graph has {len(order)} nodes; draw is meant for small graphs (<= 60)")
    depth: dict[int, int] = {}
    for node in order:  # parents come first: depth = 1 + deepest parent
        depth[id(node)] = 1 + max((depth[id(p)] for p in node._parents), default=-1)
    columns: dict[int, list[Value]] = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    height = max(len(c) for c in columns.values())
    pos = {}
    for d in sorted(columns):
        nodes = columns[d]
        if d > 0:  # barycentre ordering: a node sits near the nodes it reads from (fewer crossings)
            nodes.sort(key=lambda n: -sum(pos[id(p)][1] for p in n._parents) / len(n._parents))
        for k, node in enumerate(nodes):
            pos[id(node)] = (d * 2.6, ((len(nodes) - 1) / 2 - k) * 1.3)   # centred column
    fig = new_figure(figsize=figsize or (2.3 * len(columns) + 1, 1.1 * height + 1.2), layout="constrained")
    ax = fig.subplots()
    for node in order:
        x, y = pos[id(node)]
        for parent in node._parents:
            px, py = pos[id(parent)]
            skips = depth[id(node)] - depth[id(parent)] > 1   # curve edges that jump a column
            ax.annotate("", xy=(x - 0.75, y), xytext=(px + 0.75, py),
                        arrowprops=dict(arrowstyle="->", color="0.45", lw=1.2,
                                        connectionstyle="arc3,rad=-0.3" if skips else "arc3"))
        text = (f"{node.label + ' | ' if node.label else ''}{node._op or 'input'}\n"
                f"data {node.data:.4g}\ngrad {node.grad:.4g}")
        colour = "#dbe9f6" if node.is_leaf else ("#fde2c8" if node is root else "#e8e8e8")
        ax.add_patch(FancyBboxPatch((x - 0.75, y - 0.42), 1.5, 0.84, boxstyle="round,pad=0.04",
                                    facecolor=colour, edgecolor="0.3"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8, family="monospace")
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


# --- a tiny neural network library on top (PyTorch names on purpose) -------------

class Module:
    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """One unit: activation(w . x + b), with one bias per unit."""

    def __init__(self, n_inputs: int, activation: str = "tanh", rng: random.Random | None = None):
        if activation not in ("tanh", "relu", "sigmoid", "linear"):
            raise ValueError(f"activation must be tanh, relu, sigmoid or linear, got {activation!r}")
        rng = rng or random.Random(0)
        bound = 1 / math.sqrt(n_inputs)
        self.w = [Value(rng.uniform(-bound, bound), f"w{i}") for i in range(n_inputs)]
        self.b = Value(0.0, "b")
        self.activation = activation

    def __call__(self, x: Sequence) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"this neuron takes {len(self.w)} inputs, got {len(x)}")
        out = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return out if self.activation == "linear" else getattr(out, self.activation)()

    def parameters(self) -> list[Value]:
        return self.w + [self.b]


class Layer(Module):
    """n_outputs neurons reading the same inputs."""

    def __init__(self, n_inputs: int, n_outputs: int, activation: str = "tanh",
                 rng: random.Random | None = None):
        rng = rng or random.Random(0)
        self.neurons = [Neuron(n_inputs, activation, rng) for _ in range(n_outputs)]

    def __call__(self, x: Sequence) -> list[Value]:
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]


class MLP(Module):
    """Layers of sizes [n_inputs, *hidden, n_outputs]; the last layer is linear."""

    def __init__(self, n_inputs: int, sizes: Iterable[int], activation: str = "tanh", seed: int = 0):
        sizes = [n_inputs, *sizes]
        rng = random.Random(seed)
        self.layers = [Layer(sizes[i], sizes[i + 1],
                             activation if i < len(sizes) - 2 else "linear", rng)
                       for i in range(len(sizes) - 1)]

    def __call__(self, x: Sequence):
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]
