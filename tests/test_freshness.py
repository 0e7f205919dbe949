"""Committed notebook outputs were made by today's cnnkit (issue 17 §2).

scripts/execute_notebooks.py records `source_hash()` of the cnnkit sources in each
notebook's metadata; a notebook whose hash differs ran with other code, so its
outputs may no longer be what the code produces.
"""

import nbformat
import pytest

from cnnkit import _sources
from cnnkit._sources import source_files, source_hash

from conftest import NOTEBOOKS, ROOT

ids = [p.stem for p in NOTEBOOKS]


def rerun_command(path) -> str:
    return f"PYTHONPATH=$PWD .venv/bin/python scripts/execute_notebooks.py {path.relative_to(ROOT).as_posix()}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_outputs_made_by_current_cnnkit(path):
    recorded = nbformat.read(path, as_version=4).metadata.get("cnnkit", {}).get("source_hash")
    assert recorded == source_hash(), (
        f"{path.name}: its outputs were made by "
        + ("an unrecorded version of cnnkit" if recorded is None else f"cnnkit sources {recorded[:12]}")
        + f", today's sources hash to {source_hash()[:12]}. Re-execute it:\n    {rerun_command(path)}")


def test_hash_covers_every_module_but_the_instructor_tools(tmp_path):
    pkg = tmp_path / "cnnkit"
    (pkg / "instructor").mkdir(parents=True)
    (pkg / "check").mkdir()
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "check" / "_core.py").write_text("y = 2\n")
    (pkg / "instructor" / "grade.py").write_text("z = 3\n")
    (pkg / "notes.txt").write_text("not code\n")
    assert [p.relative_to(pkg).as_posix() for p in source_files(pkg)] == ["__init__.py", "check/_core.py"]

    before = source_hash(pkg)
    (pkg / "instructor" / "grade.py").write_text("z = 4\n")
    (pkg / "notes.txt").write_text("changed\n")
    assert source_hash(pkg) == before, "instructor tools and non-Python files must not count"
    (pkg / "check" / "_core.py").write_text("y = 3\n")
    assert source_hash(pkg) != before, "a change in a lesson module must change the hash"


def test_hash_ignores_line_endings_but_not_renames(tmp_path):
    pkg = tmp_path / "cnnkit"
    pkg.mkdir()
    (pkg / "a.py").write_bytes(b"x = 1\ny = 2\n")
    unix = source_hash(pkg)
    (pkg / "a.py").write_bytes(b"x = 1\r\ny = 2\r\n")
    assert source_hash(pkg) == unix
    (pkg / "a.py").rename(pkg / "b.py")
    assert source_hash(pkg) != unix


def test_hashes_this_checkouts_package():
    assert _sources.PACKAGE_DIR == ROOT / "cnnkit"
    assert ROOT / "cnnkit" / "_sources.py" in source_files()
