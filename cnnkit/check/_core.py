"""The skeleton every exercise check shares: cases, run, reference, compare, judge.

A check is one declarative object (a subclass of ``Check``) registered by name.
The same object serves two modes, so they cannot drift apart:

- interactive (``cnnkit.check.NAME(answer)`` in a notebook): every case runs in
  this process and is judged at once; the first failure raises ``ExerciseFailed``
  (an AssertionError) shown as one ✘ line with a hint;
- grading (the instructor's grader): only ``probe`` runs in the student's kernel
  and writes the answer's plain-data results to a file; the grader computes the
  cases, the reference values and the verdict itself with ``judge``:

      check = CHECKS[name]                                   # grader process
      cases = check.cases(secret_seed, n or check.default_n)
      torch.save(cases, cases_path)
      # student kernel: cnnkit.check._core.probe(name, answer, cases_path, results_path)
      results = torch.load(results_path, weights_only=True)  # grader process again
      verdict = judge(check, cases, results, hidden=is_hidden)   # .status, .fraction, .message

Plain data is what crosses between the two sides: None, bool, int, float, str,
CPU tensors of the exact class ``torch.Tensor``, and lists, tuples and
str-keyed dicts of these. ``to_plain`` converts honest values (numpy scalars,
tensor subclasses such as nn.Parameter, GPU tensors) and refuses everything
else by EXACT type, so an object with its own ``__eq__`` or ``__float__`` never
reaches a comparison.

See: SPEC.md ("The check protocol") and notebooks/01_convolutions.ipynb.
"""

from __future__ import annotations

import contextlib
import os
import random
import traceback
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from cnnkit import contract
from cnnkit.check._cases import random_cases, seeded
from cnnkit.check._plain import PlainDataError, _copy_case, _type_name, describe, describe_type, to_plain
from cnnkit.check._score import Score

__all__ = ["Check", "register", "CHECKS", "Failure", "Verdict", "PlainDataError", "to_plain",
           "ExerciseFailed", "NotImplementedYet", "Score", "judge", "probe", "run_case",
           "interactive", "hint", "seeded", "random_cases", "describe", "number", "tensor_failure"]


# ----------------------------------------------------------------------------
# What a failed check shows
# ----------------------------------------------------------------------------

class ExerciseFailed(AssertionError):
    """An exercise check failed; shows as a short ✘ message in a notebook."""

    def __init__(self, exercise: str, reason: str, hint: str = ""):
        self.exercise, self.reason, self.hint = exercise, reason, hint
        super().__init__(f"{exercise}: {reason}" + (f"\nHint: {hint}" if hint else ""))

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of the traceback.
        lines = [f"✘ {self.exercise}: {self.reason}"]
        if self.hint:
            lines.append(f"  Hint: {self.hint}")
        return lines


class NotImplementedYet(ExerciseFailed):
    """The answer is still the stub."""

    def __init__(self, exercise: str):
        super().__init__(exercise, "not implemented yet",
                         "replace `raise NotImplementedError()` with your code, run that cell, "
                         "then run this one again")


assert ExerciseFailed.__name__ == contract.EXERCISE_FAILED
assert NotImplementedYet.__name__ == contract.NOT_IMPLEMENTED_YET


@dataclass
class Failure:
    """Why one case failed: `reason` for the ✘ line, `hint` a nudge, `formula` the full answer."""
    reason: str
    hint: str = ""
    formula: str = ""


@dataclass
class Verdict:
    """The outcome of judging one exercise: `passed` of `total` cases, a status and a message."""
    passed: int
    total: int
    status: str                        # "passed" | "failed" | "not_implemented"
    message: str
    failure: Failure | None = None     # the first failure (None when passed or hidden)
    partial: bool = False

    @property
    def fraction(self) -> float:
        """Share of the points earned: all or nothing, or passed/total for a partial check."""
        if self.status == "passed":
            return 1.0
        return self.passed / self.total if self.partial and self.total else 0.0


# ----------------------------------------------------------------------------
# Helpers for compare()
# ----------------------------------------------------------------------------

def number(got, *, what: str = "a number") -> tuple[float | int | None, Failure | None]:
    """Read a plain value as a number: int, float, or a one-element tensor (bool refused)."""
    if type(got) in (int, float):
        return got, None
    if type(got) is torch.Tensor and got.numel() == 1 and got.dtype != torch.bool:
        return got.reshape(()).tolist(), None
    hint = "did you forget `return`?" if got is None else f"return {what}, e.g. a Python float"
    return None, Failure(f"expected {what}, got {describe_type(got)}", hint)


def tensor_failure(got, want: torch.Tensor, what: str, hint: str = "", formula: str = "",
                   atol: float = 1e-5, rtol: float = 1e-4, *, floating: bool = False) -> Failure | None:
    """None if `got` is a tensor of want's shape and close values, else the reason.

    Integer tensors are compared by value unless `floating` asks for a floating-point dtype.
    """
    if type(got) is not torch.Tensor:
        return Failure(f"{what}: expected a tensor, got {describe_type(got)}",
                       "did you forget `return`?" if got is None else hint, formula)
    if tuple(got.shape) != tuple(want.shape):
        return Failure(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}", hint, formula)
    if floating and not got.is_floating_point():
        return Failure(f"{what}: expected a floating-point tensor, got {got.dtype}", hint, formula)
    if not (got.is_floating_point() or got.dtype in (torch.int64, torch.int32, torch.int16, torch.int8,
                                                      torch.uint8)):
        return Failure(f"{what}: expected real numbers, got a {got.dtype} tensor", hint, formula)
    diff = (got.to(torch.float64) - want.to(torch.float64)).abs()
    bad = diff > atol + rtol * want.to(torch.float64).abs()
    if bad.any() or diff.isnan().any():
        return Failure(f"{what}: values differ from PyTorch by up to {diff.nan_to_num(float('inf')).max().item():.3g}",
                       hint, formula)
    return None


# ----------------------------------------------------------------------------
# The Check class and the registry
# ----------------------------------------------------------------------------

CHECKS: dict[str, "Check"] = {}


class Check:
    """One exercise check. Subclasses set `name` and define cases/run/reference/compare.

    cases(seed, n)            -> list of plain cases: fixed teaching cases first, then random ones
    run(answer, case)         -> plain data: what the answer does on the case (student side)
    reference(case)           -> the value a right answer gives (trusted side)
    compare(got, want, case)  -> None when right, else a Failure(reason, hint, formula)
    """

    name: str = ""
    default_n: int = 1
    partial: bool = False
    expects: str = "a function"               # what the answer must be (for the ✘ line)
    returns: str = "plain data"               # what the answer must return (for the ✘ line)
    hint: str = ""                            # the nudge shown with a failure that sets none
    formula: str = ""                         # the full answer, shown after 3 failures or hint(name)

    def accepts(self, answer) -> bool:
        return callable(answer)

    def cases(self, seed: int, n: int) -> list:
        raise NotImplementedError

    def run(self, answer, case):
        raise NotImplementedError

    def reference(self, case):
        raise NotImplementedError

    def compare(self, got, want, case) -> Failure | None:
        raise NotImplementedError

    def size(self, cases: list) -> int:
        """How many checks the cases amount to, for the ✔ line (one per case by default)."""
        return len(cases)

    def describe_case(self, case) -> str:
        """How a case is named in 'calling it with (...) raised ...' messages."""
        if type(case) is dict:
            return ", ".join(f"{k}={describe(v, 40)}" for k, v in case.items())
        return describe(case)


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: register one instance of a Check subclass under its name."""
    if not cls.name or cls.name in CHECKS:
        raise ValueError(f"check name must be unique and non-empty, got {cls.name!r}")
    CHECKS[cls.name] = cls()
    return cls


# ----------------------------------------------------------------------------
# Running the answer on one case (the student side)
# ----------------------------------------------------------------------------

_OWN_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch,)) + \
    (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,)


def _student_line(tb) -> str:
    """'line N: `code`' of the innermost frame outside torch and cnnkit (the student's)."""
    frames = traceback.extract_tb(tb)
    own = [f for f in frames if not f.filename.startswith(_OWN_DIRS)]
    if not own:                                 # raised by the call itself (e.g. a wrong signature)
        return ""
    frame = own[-1]
    code = (frame.line or "").strip()[:120]
    return f"line {frame.lineno}: `{code}`" if code else f"line {frame.lineno}"


_TENSOR_CLASSES = (torch.Tensor, torch._C.TensorBase)


@contextlib.contextmanager
def _tensor_methods_restored():
    """Undo any change an answer makes to torch.Tensor's methods (e.g. patching .item).

    Changed attributes are put back, and new ones that shadow an inherited
    method are removed; other new names (caches torch may add) are left alone.
    """
    saved = [(cls, dict(vars(cls))) for cls in _TENSOR_CLASSES]
    visible = set(dir(torch.Tensor))
    try:
        yield
    finally:
        for cls, before in saved:
            now = vars(cls)
            for key in [k for k in now if k not in before and k in visible]:
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(cls, key)
            for key, value in before.items():
                if now.get(key, _MISSING) is not value:
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(cls, key, value)


_MISSING = object()


def run_case(check: Check, answer, case, *, catch: tuple = (Exception,)) -> dict:
    """Run the answer on one case -> {"ok": plain} | {"not_implemented": True} | {"raised": ...}."""
    try:
        with _tensor_methods_restored():
            value = check.run(answer, _copy_case(case))
    except NotImplementedError:
        return {contract.RESULT_NOT_IMPLEMENTED: True}
    except catch as exc:
        try:
            message = str(exc)
        except Exception:                       # an exception whose __str__ itself fails
            message = "(no message)"
        return {contract.RESULT_RAISED: type(exc).__name__[:100],
                "message": message[:contract.MAX_RESULT_MESSAGE], "line": _student_line(exc.__traceback__)}
    try:
        return {contract.RESULT_OK: to_plain(value)}
    except PlainDataError as exc:
        name = exc.type_name
    except Exception:                           # e.g. a tensor whose storage cannot be read
        name = _type_name(value)
    return {contract.RESULT_RAISED: "PlainDataError", "message": name[:contract.MAX_RESULT_MESSAGE], "line": ""}


def probe(name: str, answer, cases_path, results_path) -> None:
    """Grading mode, student kernel: run `answer` on the cases in `cases_path`, save the results.

    Cases are loaded with torch.load(weights_only=True); one result per case is
    written with torch.save to `results_path` (see contract.RESULT_*). Every
    exception of the answer is caught; nothing is judged here.
    """
    check = CHECKS[name]
    cases = torch.load(cases_path, weights_only=True)
    results = []
    for case in cases:
        if not check.accepts(answer):
            results.append({contract.RESULT_RAISED: "NotAFunction", "message": _type_name(answer), "line": ""})
            continue
        with torch.random.fork_rng(devices=[]):
            results.append(run_case(check, answer, case, catch=(Exception, SystemExit)))
    torch.save(results, results_path)


# ----------------------------------------------------------------------------
# Judging (the trusted side, used by both modes)
# ----------------------------------------------------------------------------

def _text(value, limit: int) -> str:
    """A field of an untrusted result as text: only an exact str counts, cut before any formatting."""
    return value[:limit] if type(value) is str else ""


def _failed_result(check: Check, case, result) -> Failure:
    """The Failure for a case whose run did not return a value."""
    raised, message, line = (_text(result.get(key), limit) for key, limit in (
        (contract.RESULT_RAISED, 100), ("message", contract.MAX_RESULT_MESSAGE), ("line", 200)))
    if raised == "NotAFunction":
        return Failure(f"expected {check.expects}, got {message}",
                       "pass the function itself, without calling it: check(my_fn), not check(my_fn())")
    if raised == "PlainDataError":
        return Failure(f"expected {check.returns}, got {message}",
                       "return plain numbers, tensors, lists, tuples or dicts (not your own objects)")
    text = f"calling it with ({check.describe_case(case)}) raised {raised or 'an exception'}: {message}"
    return Failure(text + (f" ({line})" if line else ""))


def judge(check: Check, cases: list, raw_results: Iterable, *, hidden: bool = False) -> Verdict:
    """Decide a verdict from the cases and the answer's raw per-case results.

    Each result is re-validated with to_plain, then compared with the reference.
    A non-partial check stops at the first failure. With hidden=True the message
    never contains case details or text produced by the student's code.
    """
    passed, total, first, status = 0, len(cases), None, "passed"
    results = iter(raw_results)
    for case in cases:
        result = next(results, None)
        failure = _judge_one(check, case, result)
        if failure == "not_implemented":
            status, first = "not_implemented", None
            break
        if failure is None:
            passed += 1
            continue
        status, first = "failed", first or failure
        if not check.partial:
            break
    if status == "passed":
        size = check.size(cases)
        return Verdict(passed, total, status, f"✔ {check.name}: passed ({size} check{'s' * (size != 1)})",
                       partial=check.partial)
    if status == "not_implemented":
        return Verdict(passed, total, status, f"{check.name}: not implemented yet", partial=check.partial)
    if hidden:
        return Verdict(passed, total, status, contract.HIDDEN_WITHHELD, None, check.partial)
    return Verdict(passed, total, status, first.reason, first, check.partial)


def _judge_one(check: Check, case, result):
    if type(result) is not dict:
        return Failure("no result for this case")
    if result.get(contract.RESULT_NOT_IMPLEMENTED) is True:
        return "not_implemented"
    if contract.RESULT_OK not in result:
        return _failed_result(check, case, result)
    try:
        got = to_plain(result[contract.RESULT_OK])
    except Exception as exc:
        name = exc.type_name if isinstance(exc, PlainDataError) else _type_name(result[contract.RESULT_OK])
        return Failure(f"expected {check.returns}, got {name}",
                       "return plain numbers, tensors, lists, tuples or dicts (not your own objects)")
    want = check.reference(case)
    try:
        failure = check.compare(got, want, case)
    except Exception as exc:                    # an answer shaped so oddly the comparison broke
        return Failure(f"could not compare your result ({describe_type(got)}): {type(exc).__name__}",
                       f"return {check.returns}")
    return failure


# ----------------------------------------------------------------------------
# Interactive mode
# ----------------------------------------------------------------------------

_streak: dict[str, int] = {}          # consecutive failures of each check in this session
_revealed: set[str] = set()           # checks whose formula the student asked for


def hint(name: str) -> None:
    """Print the full hint (the formula) of a check; its next failures show it too."""
    if name not in CHECKS:
        raise ValueError(f"name must be one of the checks {sorted(CHECKS)}, got {name!r}")
    _revealed.add(name)
    check = CHECKS[name]
    print(f"{name}: {check.formula or check.hint or 'no hint for this check'}")


def _shown_hint(check: Check, failure: Failure) -> str:
    """The nudge, or the formula from the 3rd consecutive failure on (or after hint(name))."""
    nudge, formula = failure.hint or check.hint, failure.formula or check.formula
    if formula and (_streak.get(check.name, 0) >= 3 or check.name in _revealed):
        return formula
    if formula:
        return f"{nudge} (more: cnnkit.check.hint({check.name!r}))".lstrip()
    return nudge


@contextlib.contextmanager
def _rng_untouched():
    """Checks never disturb the notebook's torch or `random` generators."""
    state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(state)


def interactive(check: Check, answer, n: int | None = None, seed: int = 0) -> None:
    """Run a check in this process: print ✔ on success, raise ExerciseFailed on failure."""
    if n is not None and (type(n) is not int or n < 1):
        raise ValueError(f"n must be a positive int, got {n!r}")
    if type(seed) is not int:
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not check.accepts(answer):
        failure = _failed_result(check, None, {contract.RESULT_RAISED: "NotAFunction",
                                               "message": _type_name(answer)})
        raise ExerciseFailed(check.name, failure.reason, failure.hint)
    with _rng_untouched():
        cases = check.cases(seed, n or check.default_n)
        verdict = judge(check, cases, (run_case(check, answer, case) for case in cases))
    if verdict.status == "not_implemented":
        raise NotImplementedYet(check.name)
    if verdict.status == "failed":
        _streak[check.name] = _streak.get(check.name, 0) + 1
        raise ExerciseFailed(check.name, verdict.failure.reason, _shown_hint(check, verdict.failure))
    _streak[check.name] = 0
    print(verdict.message)


def as_function(check: Check) -> Callable:
    """The module-level function students call: cnnkit.check.NAME(answer, n=None, seed=0)."""
    def fn(answer, n: int | None = None, seed: int = 0) -> None:
        interactive(check, answer, n=n, seed=seed)
    fn.__name__ = fn.__qualname__ = check.name
    fn.__doc__ = type(check).__doc__
    fn.__module__ = "cnnkit.check"
    fn.check = check
    return fn
