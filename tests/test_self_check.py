"""Every course notebook through the real grader: the instructor's version earns full marks, the
released version (stubs) earns zero.

Not in the "grading" xdist group: these tests only use temporary folders, so xdist spreads them over
both workers (tests/conftest.py runs them first, being the longest).
"""

import pytest

from cnnkit.instructor.batch import grade
from cnnkit.instructor.release import release
from conftest import NOTEBOOKS


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_self_check_instructor_full_marks_release_zero(path, tmp_path):
    released = release([path], tmp_path / "student")[0]
    subs = tmp_path / "subs"
    for name, nb_path in (("instructor", path), ("release", released)):
        (subs / name).mkdir(parents=True)
        (subs / name / path.name).write_bytes(nb_path.read_bytes())
    rows = grade(subs, tmp_path / "grades", jobs=2, timeout=300, parameters={"FAST": True},
                 progress=False).rows
    instructor = [r for r in rows if r.student == "instructor"]
    fresh = [r for r in rows if r.student == "release"]
    assert instructor and all(r.status == "passed" and r.points == r.max_points for r in instructor), instructor
    assert all(r.points == 0 and r.status == "failed" for r in fresh), fresh
