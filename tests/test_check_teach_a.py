"""The exercise checks added by issue 17 for notebooks 02-04: value_ops, batch_norm_backward,
net_from_table. The right and realistic wrong answers here are in tests/test_check.py's tables
(the generic tests: reasons, hints, stubs, grading mode); this file tests what is specific:
many random cases, the references, the hint tiers, odd results, the log's error message.
"""

import math

import pytest
import torch
from torch import nn

from cnnkit import check
from cnnkit.autograd import Value
from cnnkit.check import _core


pytestmark = pytest.mark.usefixtures("fresh_hints")      # tests/conftest.py


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


class ReleasedStub(Value):                 # what the student release shows: exp only, raising
    def exp(self):
        raise NotImplementedError()


def test_value_ops_stub_and_non_class():
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


def test_net_from_table_random_tables_cover_every_row_kind():
    cases = check.CHECKS["net_from_table"].cases(seed=0, n=100)
    kinds = {row[0] for case in cases for row in case["table"]}
    assert kinds == {"conv", "bn", "relu", "maxpool", "gap", "fc"}
    assert any(row[0] == "conv" and row[3] == 2 for case in cases for row in case["table"])


# --- all three: the judge on the trusted side -------------------------------------------------

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
