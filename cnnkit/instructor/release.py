"""The student release: solutions replaced by a stub, hidden tests removed, outputs cleared.

    python -m cnnkit release [NOTEBOOK_OR_DIR ...] --out student/ [--force]

The grader builds its own copy of the release in memory (`release_notebook`), and
runs only those cells in a student's kernel: no solution and no hidden-test text
ever reaches student code.

See: README.md, "For instructors"
"""

from __future__ import annotations

import copy
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from cnnkit.contract import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION, STUB
from cnnkit.instructor.markers import ReleaseError, exercises_of, grade_meta, region

__all__ = ["release", "release_notebook", "collect"]


def _student_cell_source(source: str, where: str) -> tuple[str, list[str]]:
    """Replace the solution region by the stub and drop hidden tests; return (text, removed lines)."""
    lines = source.splitlines()
    removed: list[str] = []
    for begin, end, replace in ((BEGIN_SOLUTION, END_SOLUTION, True), (BEGIN_HIDDEN, END_HIDDEN, False)):
        found = region(lines, begin, end, where)
        if found is None:
            continue
        start, stop = found
        indent = re.match(r"\s*", lines[start]).group(0)
        removed += lines[start + 1:stop]
        stub = [indent + s for s in STUB.splitlines()] if replace else []
        lines = lines[:start] + stub + lines[stop + 1:]
    return "\n".join(lines), removed


def _check_names_exist(exercises, name: str) -> None:
    from cnnkit.check._core import CHECKS
    for e in exercises:
        for call in e.calls:
            if call.check not in CHECKS:
                raise ReleaseError(f"{name}: exercise {e.grade_id!r} calls cnnkit.check.{call.check}, "
                                   f"which is not a registered check")


def release_notebook(nb, name: str = "notebook"):
    """The student version of an instructor notebook (a new object); ReleaseError on any problem."""
    exercises = exercises_of(nb, name)               # validates markers, ids and test cells
    _check_names_exist(exercises, name)
    removed: list[tuple[str, str]] = []
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out.cells):
        if cell.cell_type == "code":
            cell.source, gone = _student_cell_source(cell.source, f"{name}, cell {i}")
            removed += [(f"cell {i}", line) for line in gone]
            cell.outputs = []
            cell.execution_count = None
        meta = grade_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            cell.metadata.setdefault("editable", False)
            cell.metadata.setdefault("deletable", False)
    out.metadata.pop("widgets", None)
    # Leak check: nothing removed for students may remain in the release. A distinctive line
    # (30+ characters) or two consecutive removed lines found together count as a leak;
    # short generic lines such as `model.eval()` may legitimately appear elsewhere.
    released = [line.strip() for c in out.cells for line in c.source.splitlines()]
    single = set(released)
    pairs = set(zip(released, released[1:]))
    for (where, line), (_, following) in zip(removed, removed[1:] + [("", "")]):
        a, b = line.strip(), following.strip()
        long_line = len(a.replace(" ", "")) >= 30 and not a.startswith("#") and a in single
        two_lines = min(len(a), len(b)) >= 8 and (a, b) in pairs
        if long_line or two_lines:
            raise ReleaseError(f"{name}: {a!r} ({where}, removed for students) also appears elsewhere "
                               f"in the notebook and would leak into the release")
    nbformat.validate(out)
    return out


def collect(inputs: list[Path]) -> list[Path]:
    """The course notebooks (NN_*.ipynb) named by `inputs`: files, or folders of them."""
    paths = []
    for item in inputs:
        if item.is_dir():
            paths += sorted(item.glob("[0-9]*.ipynb"))
        elif item.suffix == ".ipynb" and item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item} is neither a notebook nor a folder of notebooks")
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {', '.join(map(str, inputs))}")
    return paths


def release(inputs: list[Path], out: Path, force: bool = False) -> list[Path]:
    """Write student versions of the notebooks into `out`; nothing is written if anything fails."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; use --force to replace it")
    notebooks = {p.name: release_notebook(nbformat.read(p, as_version=4), p.name)
                 for p in collect([Path(i) for i in inputs])}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".release-", dir=out.parent))   # same disk: rename is atomic
    try:
        for name, nb in notebooks.items():
            nbformat.write(nb, staging / name)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / name for name in notebooks]
