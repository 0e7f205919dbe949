"""Instructor tools: release and grading, including a folder of hostile submissions."""

import csv
from pathlib import Path

import nbformat
import pytest

from cnnkit import grading

# The grading tests start kernels of their own; keep them on one xdist worker
# (make test uses --dist loadgroup) so that they do not compete with each other.
pytestmark = pytest.mark.xdist_group("grading")
from cnnkit.grading import ReleaseError

from conftest import NOTEBOOKS, ROOT

NB02 = ROOT / "notebooks" / "02_backprop.ipynb"
IDS = ["sigmoid-grad", "path-sum", "numerical-derivative", "mlp-params"]


def read_rows(out):
    with open(out / "grades.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def by_student(rows):
    table = {}
    for r in rows:
        table.setdefault(r["student"], {})[r["exercise"]] = (r["status"], float(r["points"]))
    return table


def answer_cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


# ----------------------------------------------------------------------------
# release
# ----------------------------------------------------------------------------

def test_release_replaces_solutions_removes_hidden_tests_and_clears_outputs(tmp_path):
    out = tmp_path / "student"
    written = grading.release([ROOT / "notebooks"], out)
    assert sorted(p.name for p in written) == sorted(p.name for p in NOTEBOOKS)
    for path in written:
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code")
        source = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        for e in grading.exercises_of(source):
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
        grading.release([NB02], out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    grading.release([NB02], out, force=True)
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
        grading.release([path], out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".release-")]


# ----------------------------------------------------------------------------
# grading: the hostile folder
# ----------------------------------------------------------------------------

def make_submissions(root: Path) -> Path:
    subs = root / "submissions"
    source = nbformat.read(NB02, as_version=4)
    student = nbformat.read(grading.release([NB02], root / "student")[0], as_version=4)

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
    "all_solutions": {i: ("passed", 2.0) for i in IDS},
    "untouched_release": {i: ("failed", 0.0) for i in IDS},
    "infinite_loop": {"sigmoid-grad": ("timeout", 0.0), "path-sum": ("passed", 2.0),
                      "numerical-derivative": ("passed", 2.0), "mlp-params": ("passed", 2.0)},
    "malformed_json": {i: ("error", 0.0) for i in IDS},
    "tests_deleted": {i: ("passed", 2.0) for i in IDS},
    "kernel_killed": {"sigmoid-grad": ("passed", 2.0), "path-sum": ("error", 0.0),
                      "numerical-derivative": ("passed", 2.0), "mlp-params": ("passed", 2.0)},
    "monkeypatched_check": {"sigmoid-grad": ("failed", 0.0), "path-sum": ("passed", 2.0),
                            "numerical-derivative": ("passed", 2.0), "mlp-params": ("passed", 2.0)},
    "huge_output": {i: ("passed", 2.0) for i in IDS},
    "missing_answer": {"sigmoid-grad": ("passed", 2.0), "path-sum": ("passed", 2.0),
                       "numerical-derivative": ("passed", 2.0), "mlp-params": ("missing", 0.0)},
}


@pytest.mark.notebook
def test_hostile_submissions_get_exact_grades_and_statuses(tmp_path):
    subs = make_submissions(tmp_path)
    out = tmp_path / "grades"
    # 30 s is >10x what any correct answer or test cell of this notebook needs on a loaded 2-core machine
    grading.grade(subs, out, jobs=2, timeout=30, parameters={"FAST": True}, progress=False)
    rows = read_rows(out)
    assert list(rows[0]) == ["student", "notebook", "exercise", "status", "points", "max_points"]
    assert {r["max_points"] for r in rows} == {"2"}
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


def test_hidden_test_failures_are_reported_without_details(tmp_path):
    nb = nbformat.read(NB02, as_version=4)
    # passes the public check (seed 0: no x in (4.2, 4.5)) but not the hidden one (seed 3 has 12 there)
    answer_cell(nb, "sigmoid-grad").source = (
        "def sigmoid_grad(x):\n    s = 1.0 / (1.0 + math.exp(-x))\n    return s * (1.0 - s) + (1e-6 if 4.2 < x < 4.5 else 0)")
    subs = tmp_path / "subs" / "carol"
    subs.mkdir(parents=True)
    nbformat.write(nb, subs / "02_backprop.ipynb")
    out = tmp_path / "grades"
    grading.grade(tmp_path / "subs", out, timeout=30, parameters={"FAST": True}, progress=False)
    assert by_student(read_rows(out))["carol"]["sigmoid-grad"] == ("failed", 0.0)
    text = (out / "feedback" / "carol" / "02_backprop.md").read_text()
    assert "failed a hidden test (details withheld)" in text and "4.3" not in text


def test_partial_credit_and_byte_identical_reruns(tmp_path):
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    cells = [nbformat.v4.new_code_cell("FAST = False", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("import cnnkit"),
             nbformat.v4.new_code_cell("def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION",
                                       metadata={"nbgrader": {"grade_id": "square", "solution": True, "grade": False,
                                                              "locked": False, "schema_version": 3}}),
             nbformat.v4.new_code_cell("ok = sum(square(v) == v * v for v in (0, 1, 2, 3))\ncnnkit.check.Score(ok, 4)",
                                       metadata={"nbgrader": {"grade_id": "square-tests", "solution": False,
                                                              "grade": True, "points": 2, "locked": True,
                                                              "schema_version": 3}})]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "cnn-course", "display_name": "Python (CNN course)", "language": "python"}
    nbformat.write(nb, source_dir / "99_tiny.ipynb")
    subs = tmp_path / "subs"
    for student, body in {"dan": "return x * x", "eve": "return x * x if x < 2 else 0",
                          "fay": "print('partial credit: 2 of 2')\n    return 0"}.items():
        (subs / student).mkdir(parents=True)
        sub = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            f"def square(x):\n    {body}", metadata={"nbgrader": {"grade_id": "square", "solution": True}})])
        nbformat.write(sub, subs / student / "99_tiny.ipynb")
    first, second = tmp_path / "g1", tmp_path / "g2"
    grading.grade(subs, first, source_dir=source_dir, timeout=20, progress=False)
    grading.grade(subs, second, source_dir=source_dir, jobs=3, timeout=20, progress=False)
    table = by_student(read_rows(first))
    assert table["dan"]["square"] == ("passed", 2.0)
    assert table["eve"]["square"] == ("failed", 1.0)                 # 2 of 4 cases: half the points
    assert table["fay"]["square"] == ("failed", 0.5)                 # printing a score counts for nothing
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes()
    assert str(tmp_path) not in (first / "grades.csv").read_text()


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_self_check_instructor_full_marks_release_zero(path, tmp_path):
    release = grading.release([path], tmp_path / "student")[0]
    subs = tmp_path / "subs"
    for name, nb_path in (("instructor", path), ("release", release)):
        (subs / name).mkdir(parents=True)
        (subs / name / path.name).write_bytes(nb_path.read_bytes())
    rows = grading.grade(subs, tmp_path / "grades", jobs=2, timeout=300, parameters={"FAST": True},
                         progress=False)
    instructor = [r for r in rows if r.student == "instructor"]
    fresh = [r for r in rows if r.student == "release"]
    assert instructor and all(r.status == "passed" and r.points == r.max_points for r in instructor), instructor
    assert all(r.points == 0 and r.status == "failed" for r in fresh), fresh


def test_grade_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        grading.grade(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no submissions"):
        grading.grade(tmp_path / "empty", tmp_path / "out", progress=False)
    (tmp_path / "subs" / "x").mkdir(parents=True)
    (tmp_path / "subs" / "x" / "02_backprop.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="unknown parameter"):
        grading.grade(tmp_path / "subs", tmp_path / "out", parameters={"fast": True}, progress=False)


def test_command_line(tmp_path, capsys):
    from cnnkit.__main__ import main
    assert main(["release", str(NB02), "--out", str(tmp_path / "s")]) == 0
    assert main(["release", str(NB02), "--out", str(tmp_path / "s")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "g")]) == 2
    assert grading.parse_parameter("True") is True and grading.parse_parameter("3") == 3
    assert grading.parse_parameter("hello") == "hello"
