"""The exercise checks added by issue 17 for notebooks 02-04: value_ops, batch_norm_backward,
net_from_table. Right answers pass (also on many random cases and through the grading
path), realistic mistakes fail with a reason naming the mistake, and hints come in two tiers.
"""

import math

import pytest
import torch
from torch import nn

from cnnkit import check
from cnnkit.autograd import Value
from cnnkit.check import _core


@pytest.fixture(autouse=True)
def _fresh_hint_state():
    _core._streak.clear()
    _core._revealed.clear()
    yield
    _core._streak.clear()
    _core._revealed.clear()


def fails(fn, answer, match):
    with pytest.raises(check.ExerciseFailed, match=match) as info:
        fn(answer)
    return info.value


# --- 02: a new operation for Value ---------------------------------------------------------

class GoodValue(Value):
    def exp(self):
        e = math.exp(self.data)
        return Value(e, "", (self,), "exp", (e,))

    def log(self):
        if self.data <= 0:
            raise ValueError(f"log needs a > 0, got {self.data}")
        return Value(math.log(self.data), "", (self,), "log", (1.0 / self.data,))


class ExpSlopeIsInput(GoodValue):          # d e^a/da written as a
    def exp(self):
        e = math.exp(self.data)
        return Value(e, "", (self,), "exp", (self.data,))


class LogSlopeIsLog(GoodValue):            # d ln a/da written as ln a
    def log(self):
        if self.data <= 0:
            raise ValueError("no")
        return Value(math.log(self.data), "", (self,), "log", (math.log(self.data),))


class LogWithoutParent(GoodValue):         # the new node forgets where it came from
    def log(self):
        if self.data <= 0:
            raise ValueError("no")
        return Value(math.log(self.data))


class LogReturnsFloat(GoodValue):
    def log(self):
        return math.log(self.data)


class LogNeverRaises(GoodValue):
    def log(self):
        return Value(math.log(abs(self.data)), "", (self,), "log", (1.0 / self.data,))


class OnlyExp(Value):                      # log would silently be cnnkit's own
    def exp(self):
        e = math.exp(self.data)
        return Value(e, "", (self,), "exp", (e,))


class StubValue(Value):
    def exp(self):
        raise NotImplementedError()

    def log(self):
        raise NotImplementedError()


def test_value_ops_right_answer_passes_many_random_graphs(capsys):
    check.value_ops(GoodValue)
    check.value_ops(GoodValue, n=400, seed=5)
    assert "✔ value_ops: passed (400 checks)" in capsys.readouterr().out


def test_value_ops_random_graphs_use_both_operations_and_reuse_nodes():
    cases = check.CHECKS["value_ops"].cases(seed=1, n=200)
    ops = [op for case in cases for op, *_ in case["ops"]]
    assert ops.count("exp") > 50 and ops.count("log") > 50
    # a node read twice is what makes gradients add up over paths
    assert any(len({i for _, *args in case["ops"] for i in args}) < sum(len(a) for _, *a in case["ops"])
               for case in cases)


@pytest.mark.parametrize("answer, match", [
    (ExpSlopeIsInput, r"d out / d x0 is 0 .*torch.autograd gives 1"),
    (LogSlopeIsLog, r"d out / d x0 is 0.69.*torch.autograd gives 0.5"),
    (LogWithoutParent, r"is 0 \(0: does the new node name the node it came from"),
    (LogReturnsFloat, r"log\(\) returned a float, not a Value"),
    (LogNeverRaises, r"log of -1.0 returned a node; it must raise ValueError"),
    (OnlyExp, r"no log of its own"),
])
def test_value_ops_realistic_mistakes(answer, match):
    fails(check.value_ops, answer, match)


class ReleasedStub(Value):                 # what the student release shows: exp only, raising
    def exp(self):
        raise NotImplementedError()


def test_value_ops_stub_and_non_class():
    with pytest.raises(check.NotImplementedYet):
        check.value_ops(StubValue)
    with pytest.raises(check.NotImplementedYet):
        check.value_ops(ReleasedStub)
    fails(check.value_ops, GoodValue(1.0), "expected a subclass")
    fails(check.value_ops, int, "expected a subclass of cnnkit.autograd.Value")


def test_value_ops_hint_is_a_nudge_then_the_formula():
    first = fails(check.value_ops, ExpSlopeIsInput, "d out")
    assert "1 / a" not in first.hint and "hint('value_ops')" in first.hint
    fails(check.value_ops, ExpSlopeIsInput, "d out")
    third = fails(check.value_ops, ExpSlopeIsInput, "d out")
    assert "1 / a" in third.hint
    check.value_ops(GoodValue)                     # a pass resets the streak
    assert "1 / a" not in fails(check.value_ops, ExpSlopeIsInput, "d out").hint


def test_value_ops_grading_path(tmp_path):
    """probe (student kernel) + judge (grader) give the same verdicts as the interactive mode."""
    c = check.CHECKS["value_ops"]
    cases = c.cases(seed=123, n=40)
    torch.save(cases, tmp_path / "cases.pt")
    for answer, status in ((GoodValue, "passed"), (LogSlopeIsLog, "failed"), (StubValue, "not_implemented")):
        _core.probe("value_ops", answer, tmp_path / "cases.pt", tmp_path / "results.pt")
        results = torch.load(tmp_path / "results.pt", weights_only=True)
        assert _core.judge(c, cases, results, hidden=True).status == status


# --- 03: batch-norm backward ------------------------------------------------------------------

def bn_backward(dout, x, gamma, eps=1e-5):
    mean, var = x.mean(0), x.var(0, unbiased=False)
    std = torch.sqrt(var + eps)
    x_hat = (x - mean) / std
    dx_hat = dout * gamma
    dx = (dx_hat - dx_hat.mean(0) - x_hat * (dx_hat * x_hat).mean(0)) / std
    return dx, (dout * x_hat).sum(0), dout.sum(0)


def bn_mean_var_constant(dout, x, gamma, eps=1e-5):        # the most common mistake
    dx, dgamma, dbeta = bn_backward(dout, x, gamma, eps)
    return dout * gamma / torch.sqrt(x.var(0, unbiased=False) + eps), dgamma, dbeta


def bn_unbiased_var(dout, x, gamma, eps=1e-5):
    std = torch.sqrt(x.var(0) + eps)
    x_hat = (x - x.mean(0)) / std
    dx_hat = dout * gamma
    return (dx_hat - dx_hat.mean(0) - x_hat * (dx_hat * x_hat).mean(0)) / std, (dout * x_hat).sum(0), dout.sum(0)


def bn_dbeta_mean(dout, x, gamma, eps=1e-5):
    dx, dgamma, _ = bn_backward(dout, x, gamma, eps)
    return dx, dgamma, dout.mean(0)


def bn_forgets_mean_path(dout, x, gamma, eps=1e-5):        # keeps the variance path only
    std = torch.sqrt(x.var(0, unbiased=False) + eps)
    x_hat = (x - x.mean(0)) / std
    dx_hat = dout * gamma
    return (dx_hat - x_hat * (dx_hat * x_hat).mean(0)) / std, (dout * x_hat).sum(0), dout.sum(0)


def test_batch_norm_backward_right_answer_passes(capsys):
    check.batch_norm_backward(bn_backward)
    check.batch_norm_backward(bn_backward, n=150, seed=4)
    assert "passed (150 checks)" in capsys.readouterr().out


def test_batch_norm_backward_matches_torch_layer():
    """The reference is autograd through torch's own layer, in float64."""
    c = check.CHECKS["batch_norm_backward"]
    case = c.cases(seed=0, n=5)[3]
    want = c.reference(case)
    got = bn_backward(case["dout"], case["x"], case["gamma"], case["eps"])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("answer, match", [
    (bn_mean_var_constant, "treats the column's mean and variance as constants"),
    (bn_unbiased_var, r"dgamma .*differ"),
    (bn_dbeta_mean, r"dbeta .*differ"),
    (bn_forgets_mean_path, r"dx .*differ"),
    (lambda dout, x, gamma, eps=1e-5: bn_backward(dout, x, gamma, eps)[0], "expected a tuple"),
    (lambda dout, x, gamma, eps=1e-5: None, "expected a tuple"),
])
def test_batch_norm_backward_realistic_mistakes(answer, match):
    fails(check.batch_norm_backward, answer, match)


def test_batch_norm_backward_constant_dout_case_catches_a_missing_mean_path():
    """With dout constant in a column the right dx is exactly 0; dropping the mean term is not."""
    c = check.CHECKS["batch_norm_backward"]
    case = c.cases(seed=0, n=5)[2]
    assert torch.all(case["dout"] == 1)
    assert c.compare(tuple(bn_forgets_mean_path(case["dout"], case["x"], case["gamma"], case["eps"])),
                     c.reference(case), case) is not None


def test_batch_norm_backward_hint_tiers():
    first = fails(check.batch_norm_backward, bn_mean_var_constant, "constants")
    assert "dx_hat.mean(0)" not in first.hint
    fails(check.batch_norm_backward, bn_mean_var_constant, "constants")
    assert "dx_hat.mean(0)" in fails(check.batch_norm_backward, bn_mean_var_constant, "constants").hint


# --- 04: a network from a table ---------------------------------------------------------------

def build(table, in_shape, *, bias_rule=True, padding=True, flatten_size=True):
    layers, channels, flat = [], in_shape[0], False
    for k, row in enumerate(table):
        if row[0] == "conv":
            _, out, size, stride = row
            bias = not (k + 1 < len(table) and table[k + 1][0] == "bn") if bias_rule else True
            layers.append(nn.Conv2d(channels, out, size, stride=stride, padding=size // 2 if padding else 0,
                                    bias=bias))
            channels = out
        elif row[0] == "bn":
            layers.append(nn.BatchNorm2d(channels))
        elif row[0] == "relu":
            layers.append(nn.ReLU())
        elif row[0] == "maxpool":
            layers.append(nn.MaxPool2d(row[1]))
        elif row[0] == "gap":
            layers.append(nn.AdaptiveAvgPool2d(1))
        elif row[0] == "fc":
            if not flat:
                with torch.no_grad():
                    n_in = nn.Sequential(*layers).eval()(torch.zeros(2, *in_shape))[0].numel()
                layers.append(nn.Flatten())
                flat, channels = True, (n_in if flatten_size else channels)
            layers.append(nn.Linear(channels, row[1]))
            channels = row[1]
    return nn.Sequential(*layers)


def test_net_from_table_right_answer_passes(capsys):
    check.net_from_table(build)
    check.net_from_table(build, n=120, seed=9)
    assert "passed (120 checks)" in capsys.readouterr().out


def test_net_from_table_reference_matches_resnet_small_plain():
    from cnnkit import models
    from cnnkit.check.architectures import _reference_net
    table = ([["conv", 8, 3, 1], ["bn"], ["relu"]] * 3
             + [["conv", 16, 3, 2], ["bn"], ["relu"], ["conv", 16, 3, 1], ["bn"], ["relu"]]
             + [["conv", 32, 3, 2], ["bn"], ["relu"], ["conv", 32, 3, 1], ["bn"], ["relu"], ["gap"], ["fc", 10]])
    ref = models.resnet_small(8, num_classes=10, in_channels=1, width=8, plain=True)
    assert models.count_params(_reference_net(table, (1, 28, 28))) == models.count_params(ref)


@pytest.mark.parametrize("kwargs, match", [
    (dict(bias_rule=False), r"parameters, the table's network"),   # bias kept before batch norm
    (dict(padding=False), "mat1 and mat2|shape"),                   # no padding: sizes shrink
    (dict(flatten_size=False), "mat1 and mat2|shape"),              # fc reads C instead of C*H*W
])
def test_net_from_table_realistic_mistakes(kwargs, match):
    fails(check.net_from_table, lambda table, in_shape: build(table, in_shape, **kwargs), match)


def test_net_from_table_wrong_return_and_stub():
    fails(check.net_from_table, lambda table, in_shape: None, "expected an nn.Module, got NoneType")
    fails(check.net_from_table, lambda table, in_shape: [nn.ReLU()], "expected an nn.Module, got list")

    def stub(table, in_shape):
        raise NotImplementedError()
    with pytest.raises(check.NotImplementedYet):
        check.net_from_table(stub)


def test_net_from_table_random_tables_cover_every_row_kind():
    cases = check.CHECKS["net_from_table"].cases(seed=0, n=100)
    kinds = {row[0] for case in cases for row in case["table"]}
    assert kinds == {"conv", "bn", "relu", "maxpool", "gap", "fc"}
    assert any(row[0] == "conv" and row[3] == 2 for case in cases for row in case["table"])


# --- all three: grading mode (probe in the student kernel + judge on the trusted side) ---------

def _stub(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("name, right, wrong, stub", [
    ("value_ops", GoodValue, LogSlopeIsLog, StubValue),
    ("batch_norm_backward", bn_backward, bn_mean_var_constant, _stub),
    ("net_from_table", build, lambda t, s: build(t, s, bias_rule=False), _stub),
])
def test_probe_round_trip_gives_the_interactive_verdict(name, right, wrong, stub, tmp_path, capsys):
    c = check.CHECKS[name]
    cases = c.cases(seed=0, n=8)
    torch.save(cases, tmp_path / "cases.pt")

    def verdict(answer, hidden=False):
        _core.probe(name, answer, tmp_path / "cases.pt", tmp_path / "results.pt")
        return _core.judge(c, cases, torch.load(tmp_path / "results.pt", weights_only=True), hidden=hidden)

    passed = verdict(right)
    assert passed.status == "passed" and passed.passed == passed.total == len(cases)
    getattr(check, name)(right, n=8)
    assert capsys.readouterr().out.strip() == passed.message
    failed = verdict(wrong)
    with pytest.raises(check.ExerciseFailed) as info:
        getattr(check, name)(wrong, n=8)
    assert failed.status == "failed" and failed.message == info.value.reason
    hidden = verdict(wrong, hidden=True)
    assert hidden.status == "failed" and "table" not in hidden.message and "leaves" not in hidden.message
    assert verdict(stub).status == "not_implemented"


@pytest.mark.parametrize("name", ["value_ops", "batch_norm_backward", "net_from_table"])
def test_judge_never_crashes_on_forged_or_odd_results(name):
    """Results come from the student's process: any shape of plain data is a failure, never an exception."""
    chk = check.CHECKS[name]
    cases = chk.cases(0, 3)
    for forged in ({}, [1, 2], None, "x", torch.zeros(2), math.inf, {"data": [1.0], "grads": [1.0]},
                   {"data": "x", "grads": None}, {"type": "Module", "params": "a", "shape": None},
                   (torch.zeros(2), 1, None), {"raised": 5}, {"problem": "inherited", "missing": 7}):
        verdict = _core.judge(chk, cases, [{"ok": forged}] * 3)
        assert verdict.status == "failed" and verdict.message, forged


class LogLetsMathRaise(GoodValue):         # math.log(0.0) raises ValueError('math domain error'), not the student's
    def log(self):
        if self.data < 0:
            raise ValueError(f"log needs a > 0, got {self.data}")
        return Value(math.log(self.data), "", (self,), "log", (1.0 / self.data,))


class LogMessageless(GoodValue):
    def log(self):
        if self.data <= 0:
            raise ValueError()
        return Value(math.log(self.data), "", (self,), "log", (1.0 / self.data,))


@pytest.mark.parametrize("answer", [LogLetsMathRaise, LogMessageless])
def test_value_ops_log_error_message_must_be_the_students_own(answer):
    fails(check.value_ops, answer, r"log of -?[01].0 raised ValueError\(.*the message should be yours")


def test_value_ops_accepts_messages_that_say_positive_or_the_value():
    class SaysPositive(GoodValue):
        def log(self):
            if self.data <= 0:
                raise ValueError("log is only defined for positive numbers")
            return Value(math.log(self.data), "", (self,), "log", (1.0 / self.data,))
    check.value_ops(SaysPositive)
    check.value_ops(GoodValue)
