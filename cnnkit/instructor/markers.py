"""nbgrader markers: solution and hidden-test regions, exercises, and the test-cell grammar.

An exercise is an answer cell (nbgrader ``solution: true``) followed by its graded
test cell (``grade: true``). A test cell may contain only check calls:

    cnnkit.check.NAME(answer)                       # public: the student sees it
    ### BEGIN HIDDEN TESTS
    cnnkit.check.NAME(answer, n=500, seed=3)        # hidden: the grader picks a secret seed
    ### END HIDDEN TESTS

`test_calls` parses them with `ast`; anything else is a ReleaseError, so the grader
never has to run instructor test code inside a student's kernel.

See: README.md, "For instructors"
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from cnnkit.contract import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION

__all__ = ["ReleaseError", "Exercise", "CheckCall", "region", "grade_meta", "exercises_of",
           "split_test", "test_calls"]


class ReleaseError(ValueError):
    """The instructor notebooks cannot be released (or graded) as they are."""


def region(lines: list[str], begin: str, end: str, where: str) -> tuple[int, int] | None:
    """(start, stop) line indices of the one begin/end region, or None; ReleaseError if malformed."""
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    stops = [i for i, line in enumerate(lines) if line.strip() == end]
    stray = [line for line in lines if (begin in line or end in line) and line.strip() not in (begin, end)]
    if stray:
        raise ReleaseError(f"{where}: a marker must stand alone on its line, found {stray[0].strip()!r}")
    if len(starts) != len(stops):
        raise ReleaseError(f"{where}: unbalanced markers: {len(starts)} x {begin!r}, {len(stops)} x {end!r}")
    if len(starts) > 1:
        raise ReleaseError(f"{where}: more than one {begin!r} region in one cell")
    if not starts:
        return None
    if stops[0] < starts[0]:
        raise ReleaseError(f"{where}: {end!r} comes before {begin!r}")
    return starts[0], stops[0]


def grade_meta(cell) -> dict:
    """A cell's nbgrader metadata ({} when it has none or it is not a dict)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
    return nbg if isinstance(nbg, dict) else {}


@dataclass(frozen=True)
class CheckCall:
    """One parsed call ``cnnkit.check.NAME(answer, n=N, seed=S)`` of a test cell."""
    check: str                 # the check's registered name
    answer: str                # the name of the student's function or object in the notebook
    n: int | None              # number of cases (None: the check's default)
    seed: int                  # the notebook's seed (public calls keep it; hidden ones get a secret one)
    hidden: bool


@dataclass
class Exercise:
    grade_id: str
    answer_index: int
    test_index: int
    points: float
    calls: tuple[CheckCall, ...] = ()


def split_test(source: str, where: str = "test cell") -> tuple[str, str]:
    """(public part, hidden part) of a test cell."""
    lines = source.splitlines()
    found = region(lines, BEGIN_HIDDEN, END_HIDDEN, where)
    if found is None:
        return source, ""
    start, stop = found
    return "\n".join(lines[:start] + lines[stop + 1:]), "\n".join(lines[start + 1:stop])


def _int_literal(node: ast.expr, what: str, where: str) -> int:
    value = node.value if isinstance(node, ast.Constant) else None
    if type(value) is not int or value < 0:
        raise ReleaseError(f"{where}: {what} must be a non-negative integer literal, found {ast.unparse(node)!r}")
    return value


def _parse_calls(code: str, hidden: bool, where: str) -> list[CheckCall]:
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ReleaseError(f"{where}: the test cell is not valid Python: {exc.msg}") from None
    calls = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        func = call.func if isinstance(call, ast.Call) else None
        ok = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute)
              and func.value.attr == "check" and isinstance(func.value.value, ast.Name)
              and func.value.value.id == "cnnkit" and len(call.args) == 1
              and isinstance(call.args[0], ast.Name))
        if not ok:
            raise ReleaseError(f"{where}: a test cell may only call cnnkit.check.NAME(answer"
                               f"{', n=INT, seed=INT' if hidden else ''}), found {ast.unparse(stmt)!r}")
        keywords = {k.arg: k.value for k in call.keywords}
        allowed = {"n", "seed"}
        if None in keywords or set(keywords) - allowed:
            raise ReleaseError(f"{where}: only n= and seed= may be given to a check, found {ast.unparse(stmt)!r}")
        n = keywords.get("n")
        n = None if n is None or (isinstance(n, ast.Constant) and n.value is None) else _int_literal(n, "n", where)
        seed = _int_literal(keywords["seed"], "seed", where) if "seed" in keywords else 0
        calls.append(CheckCall(func.attr, call.args[0].id, n, seed, hidden))
    return calls


def test_calls(source: str, where: str = "test cell") -> tuple[CheckCall, ...]:
    """The public, then the hidden check calls of a test cell; ReleaseError for anything else."""
    public, hidden = split_test(source, where)
    calls = _parse_calls(public, False, where) + _parse_calls(hidden, True, where)
    if not calls:
        raise ReleaseError(f"{where}: a graded test cell needs at least one cnnkit.check call")
    return tuple(calls)


test_calls.__test__ = False          # not a pytest test, despite its name


def exercises_of(nb, name: str = "notebook") -> list[Exercise]:
    """The exercises of an instructor notebook, validated (ReleaseError on any problem)."""
    found, seen = [], set()
    cells = nb.cells
    for i, cell in enumerate(cells):
        meta = grade_meta(cell)
        where = f"{name}, cell {i}"
        lines = cell.source.splitlines()
        sol = region(lines, BEGIN_SOLUTION, END_SOLUTION, where)
        hid = region(lines, BEGIN_HIDDEN, END_HIDDEN, where)
        if sol and not (meta.get("solution") and cell.cell_type == "code"):
            raise ReleaseError(f"{where}: solution markers outside an answer cell (nbgrader solution: true)")
        if hid and not (meta.get("grade") and cell.cell_type == "code"):
            raise ReleaseError(f"{where}: hidden-test markers outside a graded test cell")
        if not meta:
            continue
        gid = meta.get("grade_id")
        if not gid:
            raise ReleaseError(f"{where}: nbgrader metadata without a grade_id")
        if gid in seen:
            raise ReleaseError(f"{name}: duplicate exercise id {gid!r}")
        seen.add(gid)
        if meta.get("solution"):
            if not sol:
                raise ReleaseError(f"{where}: answer cell {gid!r} has no {BEGIN_SOLUTION!r} region")
            nxt = cells[i + 1] if i + 1 < len(cells) else None
            tmeta = grade_meta(nxt) if nxt is not None else {}
            if not tmeta.get("grade") or tmeta.get("solution") or nxt.cell_type != "code":
                raise ReleaseError(f"{where}: answer cell {gid!r} must be followed by its graded test cell")
            calls = test_calls(nxt.source, f"{name}, cell {i + 1}")
            found.append(Exercise(gid, i, i + 1, float(tmeta.get("points", 0)), calls))
        elif meta.get("grade") and not (i > 0 and grade_meta(cells[i - 1]).get("solution")):
            raise ReleaseError(f"{where}: graded test cell {gid!r} does not follow an answer cell")
    return found
