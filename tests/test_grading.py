"""Instructor tools: release and grading, including a folder of hostile submissions."""

import csv
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cnnkit.instructor.batch import grade, parse_parameter
from cnnkit.instructor.markers import ReleaseError, exercises_of, test_calls
from cnnkit.instructor.release import release

# The grading tests start kernels of their own; keep them on one xdist worker
# (make test uses --dist loadgroup) so that they do not compete with each other.
pytestmark = pytest.mark.xdist_group("grading")

from conftest import NOTEBOOKS, ROOT
from grading_fixtures import TINY, answer_cell, tiny_notebook, write_source

NB02 = ROOT / "notebooks" / "02_backprop.ipynb"
POINTS = {e.grade_id: float(e.points) for e in exercises_of(nbformat.read(NB02, as_version=4), "02_backprop")}
IDS = list(POINTS)


def grades(default, **changed):
    """{exercise: (status, points)}: `default` ('passed' = full points) except the exercises in `changed`."""
    table = {i: (default, POINTS[i] if default == "passed" else 0.0) for i in IDS}
    table.update({i.replace("_", "-"): (status, 0.0) for i, status in changed.items()})
    return table


def read_rows(out):
    with open(out / "grades.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def by_student(rows):
    table = {}
    for r in rows:
        table.setdefault(r["student"], {})[r["exercise"]] = (r["status"], float(r["points"]))
    return table


# ----------------------------------------------------------------------------
# release
# ----------------------------------------------------------------------------

def test_release_replaces_solutions_removes_hidden_tests_and_clears_outputs(tmp_path):
    out = tmp_path / "student"
    written = release([ROOT / "notebooks"], out)
    assert sorted(p.name for p in written) == sorted(p.name for p in NOTEBOOKS)
    for path in written:
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code")
        source = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        for e in exercises_of(source):
            stub = nb.cells[e.answer_index].source
            assert "# YOUR CODE HERE" in stub and "raise NotImplementedError()" in stub
            tests = nb.cells[e.test_index].source
            assert "cnnkit.check." in tests                      # the public check stays
            assert nb.cells[e.test_index].metadata["nbgrader"]["grade"]


def test_release_refuses_to_overwrite_without_force_and_changes_nothing(tmp_path):
    out = tmp_path / "student"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--force"):
        release([NB02], out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    release([NB02], out, force=True)
    assert [p.name for p in out.iterdir()] == ["02_backprop.ipynb"]


def broken_copy(tmp_path, mutate):
    nb = nbformat.read(NB02, as_version=4)
    mutate(nb)
    path = tmp_path / "02_backprop.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("mutate,match", [
    (lambda nb: setattr(answer_cell(nb, "path-sum"), "source",
                        answer_cell(nb, "path-sum").source.replace("### END SOLUTION", "")), "unbalanced"),
    (lambda nb: setattr(answer_cell(nb, "path-sum"), "source",
                        answer_cell(nb, "path-sum").source.replace("### END SOLUTION", "x = 1  ### END SOLUTION")),
     "alone on its line"),
    (lambda nb: answer_cell(nb, "mlp-params").metadata["nbgrader"].update(grade_id="path-sum"), "duplicate"),
    (lambda nb: nb.cells[2].__setitem__("source", nb.cells[2].source + "\n### BEGIN SOLUTION\n### END SOLUTION"),
     "outside an answer cell"),
    (lambda nb: nb.cells.insert(5, nbformat.v4.new_code_cell(
        "# the solution, copied into a demo cell by mistake\ns = 1.0 / (1.0 + math.exp(-x))\nreturn s * (1.0 - s)")),
     "leak"),
])
def test_release_fails_without_writing_on_bad_markers_duplicates_and_leaks(tmp_path, mutate, match):
    path = broken_copy(tmp_path, mutate)
    out = tmp_path / "student"
    with pytest.raises(ReleaseError, match=match):
        release([path], out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".release-")]


# ----------------------------------------------------------------------------
# grading: the hostile folder
# ----------------------------------------------------------------------------

def make_submissions(root: Path) -> Path:
    subs = root / "submissions"
    source = nbformat.read(NB02, as_version=4)
    student = nbformat.read(release([NB02], root / "student")[0], as_version=4)

    def save(name, nb):
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / "02_backprop.ipynb")

    save("all_solutions", source)
    save("untouched_release", student)

    nb = nbformat.read(NB02, as_version=4)
    answer_cell(nb, "sigmoid-grad").source = "def sigmoid_grad(x):\n    while True:\n        pass"
    save("infinite_loop", nb)

    (subs / "malformed_json").mkdir(parents=True)
    (subs / "malformed_json" / "02_backprop.ipynb").write_text('{"cells": [ this is not json')

    nb = nbformat.read(NB02, as_version=4)
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    nb.cells = [nb.cells[0]] + answers[::-1] + answers[:1]           # tests deleted, answers reordered + duplicated
    save("tests_deleted", nb)

    nb = nbformat.read(NB02, as_version=4)
    answer_cell(nb, "path-sum").source = "import os\nos._exit(1)"
    save("kernel_killed", nb)

    nb = nbformat.read(NB02, as_version=4)
    answer_cell(nb, "sigmoid-grad").source = (
        "def sigmoid_grad(x):\n    return 0.25\n\n"
        "cnnkit.check.sigmoid_grad = lambda fn, **kw: print('✔ sigmoid_grad: passed')\n"
        "import torch\ntorch.sigmoid = lambda t: t * 0 + 0.5\n"
        "print('✔ sigmoid_grad: passed (200 checks)')")
    save("monkeypatched_check", nb)

    nb = nbformat.read(NB02, as_version=4)
    cell = answer_cell(nb, "mlp-params")
    cell.source = ("import sys, warnings\nprint('x' * 20_000_000)\nwarnings.warn('just a warning')\n"
                   "sys.stderr.write('Warning: noise on stderr\\n')\n" + cell.source)
    save("huge_output", nb)

    nb = nbformat.read(NB02, as_version=4)
    nb.cells.remove(answer_cell(nb, "mlp-params"))
    save("missing_answer", nb)
    return subs


EXPECTED = {
    "all_solutions": grades("passed"),
    "untouched_release": grades("failed"),
    "infinite_loop": grades("passed", sigmoid_grad="timeout"),
    "malformed_json": grades("error"),
    "tests_deleted": grades("passed"),
    "kernel_killed": grades("passed", path_sum="error"),
    "monkeypatched_check": grades("passed", sigmoid_grad="failed"),
    "huge_output": grades("passed"),
    "missing_answer": grades("passed", mlp_params="missing"),
}


@pytest.mark.notebook
def test_hostile_submissions_get_exact_grades_and_statuses(tmp_path):
    subs = make_submissions(tmp_path)
    out = tmp_path / "grades"
    # 30 s is >10x what any correct answer or test cell of this notebook needs on a loaded 2-core machine
    grade(subs, out, jobs=2, timeout=30, parameters={"FAST": True}, progress=False)
    rows = read_rows(out)
    assert list(rows[0]) == ["student", "notebook", "exercise", "status", "points", "max_points"]
    assert {r["max_points"] for r in rows} == {f"{p:g}" for p in POINTS.values()}
    feedback = {p.parent.name: p.read_text() for p in (out / "feedback").glob("*/02_backprop.md")}
    got = by_student(rows)
    assert got == EXPECTED, {k: feedback[k] for k in got if got[k] != EXPECTED[k]}
    assert set(feedback) == set(EXPECTED)
    assert "could not be read" in feedback["malformed_json"]
    assert "kernel died" in feedback["kernel_killed"]
    assert "time limit" in feedback["infinite_loop"]
    assert "no answer cell" in feedback["missing_answer"]
    assert len(feedback["huge_output"]) < 5000
    for text in feedback.values():   # hidden test code never reaches students
        assert "seed=3" not in text and "n=500" not in text and "HIDDEN" not in text


@pytest.mark.notebook
def test_hidden_test_failures_are_reported_without_details(tmp_path):
    from cnnkit.check._core import CHECKS
    from cnnkit.instructor.grade import _call_seed
    check, secret = CHECKS["sigmoid_grad"], 1234
    public = [c["x"] for c in check.cases(0, check.default_n)]
    hidden = [c["x"] for c in check.cases(_call_seed(secret, "carol", "90_tiny", "sigmoid-grad", 1), 300)]
    x0 = max(hidden, key=lambda x: min(abs(x - p) for p in public))     # hidden, far from every public case
    nb = tiny_notebook()
    # right on every public case, wrong near one hidden case only
    answer_cell(nb, "sigmoid-grad").source = (
        "def sigmoid_grad(x):\n    s = 1.0 / (1.0 + math.exp(-x))\n"
        f"    return s * (1.0 - s) + (0.5 if abs(x - {x0!r}) < 1e-9 else 0.0)")
    source, subs = write_source(tmp_path / "source"), tmp_path / "subs" / "carol"
    subs.mkdir(parents=True)
    nbformat.write(nb, subs / TINY)
    out = tmp_path / "grades"
    grade(tmp_path / "subs", out, source_dir=source, timeout=30, progress=False, seed=secret)
    assert by_student(read_rows(out))["carol"]["sigmoid-grad"] == ("failed", 0.0)
    text = (out / "feedback" / "carol" / "90_tiny.md").read_text()
    assert "failed a hidden test (details withheld)" in text
    assert f"{x0:.4g}" not in text and "torch.autograd" not in text


@pytest.mark.notebook
def test_partial_credit_comes_from_the_trusted_judge(tmp_path, monkeypatch):
    """A partial check's points are passed/total cases as judged in the grader, never a displayed Score."""
    from cnnkit.check._core import CHECKS
    from cnnkit.instructor.grade import Job, grade_notebook
    from cnnkit.instructor.sandbox import isolation_level
    monkeypatch.setattr(CHECKS["mlp_params"], "partial", True)
    nb = tiny_notebook()
    # right for two-layer networks only; prints and displays a perfect score
    answer_cell(nb, "mlp-params").source = (
        "def count_mlp_params(sizes):\n    return (sizes[0] + 1) * sizes[1] if len(sizes) == 2 else 0\n"
        "print('partial credit: 2 of 2')\ncnnkit.check.Score(4, 4)")
    job = Job("fay", "90_tiny", nbformat.writes(nb).encode(), nbformat.writes(tiny_notebook()), timeout=30,
              secret=7, isolation=isolation_level()[0], token="test-partial")
    rows = {r.exercise: r for r in grade_notebook(job)}
    r = rows["mlp-params"]
    assert r.status == "failed" and 0 < r.points < 2, r
    assert "partial credit" in r.message
    assert rows["sigmoid-grad"].status == rows["path-sum"].status == "passed"


@pytest.mark.notebook
def test_byte_identical_reruns_with_the_same_seed(tmp_path, capsys):
    source = write_source(tmp_path / "source")
    subs = tmp_path / "subs"
    for student, body in {"dan": None, "eve": "return 0.25"}.items():
        nb = tiny_notebook()
        if body:
            answer_cell(nb, "sigmoid-grad").source = f"def sigmoid_grad(x):\n    {body}"
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, subs / student / TINY)
    first, second = tmp_path / "g1", tmp_path / "g2"
    one = grade(subs, first, source_dir=source, timeout=30, progress=False, seed=11)
    from cnnkit.instructor.cli import main
    assert main(["grade", str(subs), "--out", str(second), "--source", str(source), "-j", "2", "--timeout", "30",
                 "--seed", "11", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"grades.csv sha256 {one.sha256}" in printed and f"isolation: {one.isolation}" in printed
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes()
    assert str(tmp_path) not in (first / "grades.csv").read_text()
    assert by_student(read_rows(first))["eve"]["sigmoid-grad"] == ("failed", 0.0)


@pytest.mark.parametrize("source,match", [
    ("cnnkit.check.sigmoid_grad(sigmoid_grad)\nassert sigmoid_grad(0.0) == 0.25", "may only call"),
    ("cnnkit.check.sigmoid_grad(sigmoid_grad, n=N)", "integer literal"),
    ("cnnkit.check.sigmoid_grad(sigmoid_grad, tol=1)", "only n= and seed="),
    ("cnnkit.check.sigmoid_grad(lambda x: 0.25)", "may only call"),
    ("import os\ncnnkit.check.sigmoid_grad(sigmoid_grad)", "may only call"),
    ("", "at least one"),
])
def test_test_cells_may_only_call_checks(source, match):
    with pytest.raises(ReleaseError, match=match):
        test_calls(source)


def test_test_calls_are_parsed_public_then_hidden():
    calls = test_calls("cnnkit.check.a(f)\n### BEGIN HIDDEN TESTS\ncnnkit.check.a(f, n=5, seed=2)\n"
                       "### END HIDDEN TESTS")
    assert [(c.check, c.answer, c.n, c.seed, c.hidden) for c in calls] == [("a", "f", None, 0, False),
                                                                          ("a", "f", 5, 2, True)]


def test_release_refuses_an_unknown_check(tmp_path):
    from cnnkit.instructor.release import release_notebook
    nb = tiny_notebook()
    nb.cells[nb.cells.index(answer_cell(nb, "path-sum")) + 1].source = "cnnkit.check.no_such_check(df_dy)"
    with pytest.raises(ReleaseError, match="not a registered check"):
        release_notebook(nb, TINY)


def test_grade_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        grade(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no submissions"):
        grade(tmp_path / "empty", tmp_path / "out", progress=False)
    (tmp_path / "subs" / "x").mkdir(parents=True)
    (tmp_path / "subs" / "x" / "02_backprop.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="unknown parameter"):
        grade(tmp_path / "subs", tmp_path / "out", parameters={"fast": True}, progress=False)


def test_command_line(tmp_path, capsys):
    from cnnkit.__main__ import main
    assert main(["release", str(NB02), "--out", str(tmp_path / "s")]) == 0
    assert main(["release", str(NB02), "--out", str(tmp_path / "s")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "g")]) == 2
    assert parse_parameter("True") is True and parse_parameter("3") == 3
    assert parse_parameter("hello") == "hello"


def test_grading_does_not_import_matplotlib():
    code = ("import sys\nfrom cnnkit.instructor import cli, batch, grade, release, sandbox, kernel\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
            "assert 'cnnkit.plot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_check_package_does_not_import_the_grader():
    code = "import sys, cnnkit.check\nassert not [m for m in sys.modules if m.startswith('cnnkit.instructor')]"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_check_accepts_the_largest_secret_seed():
    """Hidden calls get seeds from _call_seed; every check must make its cases from the largest one
    (train_loop's `seed * 1000 + i` overflowed torch's int64 with 62-bit seeds: the whole notebook errored)."""
    from cnnkit.check import CHECKS
    from cnnkit.instructor.grade import _call_seed
    assert max(_call_seed(s, "x") for s in range(200)).bit_length() <= 40
    for name, check in CHECKS.items():
        check.cases(2 ** 40 - 1, 3)
