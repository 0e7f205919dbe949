"""cnnkit.autograd against torch.autograd on thousands of random expression graphs."""

import math
import sys

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnkit.autograd import MLP, Layer, Neuron, Value, draw, numerical_grad

UNARY = ["neg", "exp", "log", "tanh", "sigmoid", "relu", "pow_int", "pow_float"]
BINARY = ["add", "sub", "mul", "div"]
WITH_NUMBER = ["radd", "rsub", "rmul", "rdiv", "add_num", "mul_num", "sub_num", "div_num"]
OPS = UNARY + BINARY + WITH_NUMBER


def val(x) -> float:
    return x.data if isinstance(x, Value) else x.item()


def build(leaves, program):
    """Run a random program on `leaves` (Values or float64 tensors): the same Python code for both.

    Every step picks operands from all nodes so far, so sub-expressions get shared.
    Steps whose result would leave a safe domain (log of <= 0, huge numbers) are skipped,
    deterministically, from the values alone, so both libraries skip the same steps.
    """
    nodes = list(leaves)
    for op, i, j, c in program:
        a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
        va, vb = val(a), val(b)
        c = c if abs(c) > 0.1 else 0.5
        if op == "neg": out = -a
        elif op == "exp":
            if va > 5: continue
            out = a.exp()
        elif op == "log":
            if va <= 0.05: continue
            out = a.log()
        elif op == "tanh": out = a.tanh()
        elif op == "sigmoid": out = a.sigmoid()
        elif op == "relu":
            if abs(va) < 1e-6: continue      # the kink: both libraries agree on 0, but skip ties
            out = a.relu()
        elif op == "pow_int":
            if abs(va) > 20: continue
            out = a ** (int(abs(c) * 2) % 4 + 1)
        elif op == "pow_float":
            if va <= 0.05 or va > 20: continue
            out = a ** c
        elif op == "add": out = a + b
        elif op == "sub": out = a - b
        elif op == "mul": out = a * b
        elif op == "div":
            if abs(vb) < 0.1: continue
            out = a / b
        elif op == "radd": out = c + a
        elif op == "rsub": out = c - a
        elif op == "rmul": out = c * a
        elif op == "rdiv":
            if abs(va) < 0.1: continue
            out = c / a
        elif op == "add_num": out = a + c
        elif op == "mul_num": out = a * c
        elif op == "sub_num": out = a - c
        elif op == "div_num": out = a / c
        if not math.isfinite(val(out)) or abs(val(out)) > 1e6:
            continue
        nodes.append(out)
    # the output: a sum over the last few nodes, so that several branches meet
    out = nodes[-1]
    for node in nodes[-4:-1]:
        out = out + node
    return out


graphs = st.tuples(
    st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=1, max_size=5),
    st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50), st.integers(0, 50),
                       st.floats(-3.0, 3.0, allow_nan=False)), min_size=1, max_size=25),
)


def run_both(leaf_values, program):
    ours = [Value(v, f"x{i}") for i, v in enumerate(leaf_values)]
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in leaf_values]
    return ours, build(ours, program), theirs, build(theirs, program)


@settings(max_examples=2500, deadline=None, derandomize=True)
@given(graphs)
def test_values_and_gradients_match_torch_autograd(graph):
    ours, out, theirs, ref = run_both(*graph)
    assume(ref.requires_grad)                     # at least one step used a leaf
    assert out.data == pytest.approx(ref.item(), rel=1e-9, abs=1e-9)
    out.backward()
    grads = torch.autograd.grad(ref, theirs, allow_unused=True)
    for leaf, g in zip(ours, grads):
        expected = 0.0 if g is None else g.item()
        assert leaf.grad == pytest.approx(expected, rel=1e-7, abs=1e-9), (leaf, expected)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(graphs)
def test_second_backward_exactly_doubles_leaf_gradients(graph):
    ours, out, _, _ = run_both(*graph)
    out.backward()
    once = [leaf.grad for leaf in ours]
    out.backward()
    assert [leaf.grad for leaf in ours] == [2 * g for g in once]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(graphs)
def test_gradients_agree_with_numerical_differentiation(graph):
    leaf_values, program = graph
    assume(not any(op == "relu" for op, *_ in program))     # kinks break finite differences
    ours = [Value(v) for v in leaf_values]
    out = build(ours, program)
    out.backward()

    def f(*xs):
        return build([Value(x) for x in xs], program)

    # Skipped steps depend on values: make sure a nudge does not change the graph's shape.
    structure = len(out._topological_order())
    for i in range(len(leaf_values)):
        for delta in (1e-6, -1e-6):
            nudged = list(leaf_values)
            nudged[i] += delta
            assume(len(f(*nudged)._topological_order()) == structure)
    numeric = numerical_grad(f, leaf_values, eps=1e-6)
    for leaf, n in zip(ours, numeric):
        assert leaf.grad == pytest.approx(n, rel=1e-4, abs=1e-5)


def test_shared_subexpression_gets_the_sum_over_paths():
    x = Value(3.0, "x")
    y = x * x + x          # dy/dx = 2x + 1 = 7, three paths into x
    y.backward()
    assert x.grad == 7.0
    a = Value(2.0)
    b = a * 3
    c = b + b              # two paths through b: 2 * 3 = 6
    c.backward()
    assert a.grad == 6.0 and b.grad == 2.0


def test_inner_nodes_do_not_pile_up_and_leaves_accumulate_like_torch():
    a = Value(1.5)
    h = a.tanh()
    out = h * h
    out.backward()
    first_inner, first_leaf = h.grad, a.grad
    out.backward()
    assert h.grad == first_inner            # inner node: this call's gradient only
    assert a.grad == 2 * first_leaf         # leaf: accumulated, exactly twice

    t = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    (torch.tanh(t) ** 2).backward()
    (torch.tanh(t) ** 2).backward()
    assert a.grad == pytest.approx(t.grad.item(), rel=1e-12)


def test_reflected_operators_with_numbers_on_the_left():
    v = Value(4.0)
    for expr, expected, grad in [(2 * v, 8.0, 2.0), (1 - v, -3.0, -1.0), (3 / v, 0.75, -3 / 16),
                                 (5 + v, 9.0, 1.0), (-v, -4.0, -1.0), (v ** 0.5, 2.0, 0.25)]:
        v.grad = 0.0
        expr.backward()
        assert expr.data == expected and v.grad == pytest.approx(grad)


def test_sigmoid_is_stable_and_its_slope_is_at_most_a_quarter():
    assert Value(-1000.0).sigmoid().data == 0.0 and Value(1000.0).sigmoid().data == 1.0
    slopes = []
    for x in [i / 10 for i in range(-100, 101)]:
        v = Value(x)
        v.sigmoid().backward()
        slopes.append(v.grad)
    assert max(slopes) == 0.25 and slopes.index(0.25) == 100


def test_numerical_grad_of_plain_floats():
    grads = numerical_grad(lambda x, y: x ** 2 * y + math.sin(y), [3.0, 0.5])
    assert grads[0] == pytest.approx(2 * 3 * 0.5, rel=1e-7)
    assert grads[1] == pytest.approx(9 + math.cos(0.5), rel=1e-7)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: Value(0.0).log(), ValueError, "positive"),
    (lambda: Value(-1.0).log(), ValueError, "positive"),
    (lambda: Value("3"), TypeError, "real number"),
    (lambda: Value(1.0) + "x", TypeError, "operand"),
    (lambda: Value(1.0) * [1], TypeError, "operand"),
    (lambda: Value(2.0) ** Value(2.0), TypeError, "number exponents"),
    (lambda: Value(-2.0) ** 0.5, ValueError, "integer exponent"),
    (lambda: Value(1.0) / Value(0.0), ZeroDivisionError, "0"),
    (lambda: Value(True), TypeError, "real number"),
    (lambda: numerical_grad(lambda x: x, [1.0], eps=0), ValueError, "eps"),
    (lambda: numerical_grad(3, [1.0]), TypeError, "function"),
    (lambda: Neuron(2)([1.0]), ValueError, "2 inputs"),
    (lambda: Neuron(2, activation="swish"), ValueError, "activation"),
    (lambda: draw(3.0), TypeError, "Value"),
])
def test_bad_input_raises_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(sys.getrecursionlimit() * 2):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_draw_needs_no_graphviz(monkeypatch):
    import shutil
    monkeypatch.setattr(shutil, "which", lambda name: None)      # no `dot` on this machine
    monkeypatch.setitem(sys.modules, "graphviz", None)           # and no python binding
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    out = (a * b + b).tanh()
    out.backward()
    fig = draw(out, title="test")
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "a | input" in texts and "tanh" in texts and f"grad {a.grad:.4g}" in texts
    with pytest.raises(ValueError, match="small graphs"):
        big = Value(1.0)
        for _ in range(40):
            big = big * 2 + 1
        draw(big)


def test_mlp_parameters_one_bias_per_unit_and_zero_grad():
    net = MLP(3, [4, 4, 1])
    assert len(net.parameters()) == (3 * 4 + 4) + (4 * 4 + 4) + (4 * 1 + 1)
    out = net([1.0, -2.0, 0.5])
    out.backward()
    assert any(p.grad != 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad == 0 for p in net.parameters())
    assert len(Layer(2, 5)([1.0, 2.0])) == 5


def test_mlp_learns_xor():
    data = [([0.0, 0.0], -1.0), ([0.0, 1.0], 1.0), ([1.0, 0.0], 1.0), ([1.0, 1.0], -1.0)]
    net = MLP(2, [8, 1], seed=1)
    for _ in range(300):
        loss = sum(((net(x) - y) ** 2 for x, y in data), Value(0.0)) * 0.25   # mean squared error
        net.zero_grad()
        loss.backward()
        for p in net.parameters():
            p.data -= 0.2 * p.grad
    assert loss.data < 1e-3
    assert all((net(x).data > 0) == (y > 0) for x, y in data)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(graphs)
def test_sum_over_paths_equals_backward(graph):
    leaf_values, program = graph
    assume(len(program) <= 10)            # the number of paths can grow exponentially
    from cnnkit.autograd import path_products
    ours = [Value(v) for v in leaf_values]
    out = build(ours, program)
    out.backward()
    for leaf in ours:
        total = sum(product for _, product in path_products(out, leaf))
        assert total == pytest.approx(leaf.grad, rel=1e-9, abs=1e-12)
