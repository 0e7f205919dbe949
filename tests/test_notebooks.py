"""Every course notebook: hygiene of the committed file, and ONE FAST run under nbval that
must fit the notebook's budget and reproduce the cells whose outputs are deterministic.

The hygiene tests are instant; the executing ones are marked `notebook`
(`make test-fast` skips them).
"""

import re
import subprocess
import sys
import time

import nbformat
import pytest

from cnnkit.instructor import nbtools
from cnnkit.instructor.markers import exercises_of, grade_meta

from conftest import NOTEBOOKS, ROOT

ids = [p.stem for p in NOTEBOOKS]
# A Windows drive is one letter on its own ("C:\\" in the JSON), not the end of a word ("with:\n").
MACHINE_PATH = re.compile(r"(/home/|/root/|/Users/|/tmp/|/work/|(?<![A-Za-z])[A-Za-z]:\\\\|site-packages|\.venv/)")


def test_machine_path_pattern():
    assert MACHINE_PATH.search(r'"C:\\Users\\ann"') and MACHINE_PATH.search('"/home/ann/x.png"')
    assert not MACHINE_PATH.search(r'print(f"failed with:\\n{message}")')


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
class TestHygiene:
    def test_valid_and_course_kernel(self, path):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "cnn-course"
        assert nb.metadata.cnnkit.fast_budget_seconds > 0

    def test_executed_top_to_bottom_in_one_kernel(self, path):
        nb = nbformat.read(path, as_version=4)
        counts = [c.execution_count for c in code_cells(nb) if c.source.strip()]
        assert counts == list(range(1, len(counts) + 1)), \
            "re-run the notebook top to bottom in a fresh kernel (scripts/execute_notebooks.py)"

    def test_no_errors_or_warnings_in_outputs(self, path):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(code_cells(nb)):
            for out in cell.outputs:
                assert out.output_type != "error", f"code cell {i} has an error output"
                if out.output_type == "stream" and out.name == "stderr":
                    assert "Warning" not in out.text, f"code cell {i} shows a warning: {out.text[:200]}"

    def test_no_machine_specific_paths(self, path):
        text = path.read_text()
        hits = sorted(set(m.group(0) for m in MACHINE_PATH.finditer(text)))
        assert not hits, f"machine-specific paths in {path.name}: {hits}"

    def test_one_parameters_cell_with_fast_false(self, path):
        nb = nbformat.read(path, as_version=4)
        assert nbtools.parameters_cell(nb).source.strip().splitlines()[-1].replace(" ", "") == "FAST=False"
        assert nbtools.notebook_parameters(path)["FAST"] is False

    def test_checked_cells_print_text_only(self, path):
        """nbval compares tagged cells; figures differ between machines and backends, so none there."""
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(code_cells(nb)):
            if "nbval-check-output" in cell.metadata.get("tags", []):
                rich = [o.output_type for o in cell.outputs if o.output_type != "stream"]
                assert not rich, f"code cell {i} is checked by nbval but has {rich} outputs: split the figure out"

    def test_file_stays_small(self, path):
        """Photos as JPEG or downsampled: a lesson must open fast and diff reasonably (issue 17)."""
        size = path.stat().st_size
        assert size < 1_200_000, f"{path.name} is {size / 1e6:.1f} MB; show photos as JPEG (cnnkit.lessons.jpeg)"

    def test_has_outputs_and_figures(self, path):
        nb = nbformat.read(path, as_version=4)
        images = sum(bool({"image/png", "image/jpeg"} & set(o.get("data", {}))) for c in code_cells(nb) for o in c.outputs)
        assert images >= 3, "a lesson without figures? (were the outputs cleared?)"

    def test_exercise_metadata_is_well_formed(self, path):
        """The grader's own parser (cnnkit.instructor.markers) accepts the notebook, plus course rules."""
        nb = nbformat.read(path, as_version=4)
        exercises = exercises_of(nb, path.name)       # markers, ids, answer -> test cell, test-cell grammar
        for cell in nb.cells:
            meta = grade_meta(cell)
            if meta:
                assert meta["schema_version"] == 3 and cell.cell_type == "code"
        for e in exercises:
            test = nb.cells[e.test_index]
            assert e.points > 0 and grade_meta(test).get("locked"), \
                f"cell {e.answer_index}: a solution cell must be followed by a locked, graded test cell"
            assert not grade_meta(nb.cells[e.answer_index]).get("grade")
        assert len(exercises) >= 4, f"{path.name} has {len(exercises)} graded exercises; every notebook needs at least 4"


def fast_copy(path, tmp_path):
    """The committed notebook with FAST = True in its parameters cell, outputs kept (for nbval)."""
    nb = nbformat.read(path, as_version=4)
    nbtools.parameters_cell(nb).source = "FAST = True"
    out = tmp_path / path.name
    nbformat.write(nb, out)
    return out


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_fast_run_fits_budget_and_checked_outputs_match(path, tmp_path):
    """ONE execution per notebook (CI time): nbval runs every cell of the FAST copy in a fresh
    kernel (any error fails its cell), compares the cells tagged nbval-check-output with the
    committed outputs (--nbval-lax), and the wall time of that run must fit the notebook's budget.
    """
    nb = nbformat.read(path, as_version=4)
    budget = nb.metadata.cnnkit.fast_budget_seconds
    cells = sum(1 for c in code_cells(nb) if c.source.strip())
    copy = fast_copy(path, tmp_path)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout", str(budget),
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
         "-p", "no:cacheprovider", "-p", "no:xdist", "-q", str(copy)],
        cwd=tmp_path, capture_output=True, text=True, timeout=3 * budget + 120,
    )
    seconds = time.perf_counter() - start
    print(f"{path.name}: {seconds:.0f} s in FAST mode (budget {budget} s)")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= cells, f"only {passed and passed.group(1)} of {cells} cells ran"
    assert seconds <= budget, f"{path.name} took {seconds:.0f} s in FAST mode, budget {budget} s"


def test_unknown_parameter_is_rejected():
    with pytest.raises(ValueError, match="unknown parameter.*fast"):
        nbtools.run_notebook(NOTEBOOKS[0], parameters={"fast": True})


def test_parameters_cell_is_required(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("FAST = False")])
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="parameters"):
        nbtools.notebook_parameters(path)
    with pytest.raises(FileNotFoundError):
        nbtools.notebook_parameters(tmp_path / "missing.ipynb")
