"""A submitted notebook: read once and safely, then split into answers and the student's own cells.

See: cnnkit/instructor/grade.py
"""

from __future__ import annotations

import json
import os
import stat

from cnnkit.instructor.markers import grade_meta

__all__ = ["SubmissionError", "read_submission", "parse", "layout", "runnable", "MAX_SUBMISSION"]

MAX_SUBMISSION = 20 << 20       # bytes of one submitted notebook


class SubmissionError(ValueError):
    """A submission that cannot be graded at all (the reason goes to every exercise)."""


def read_submission(path) -> bytes:
    """The submitted file's bytes, read once: no symlink, no FIFO or device, at most MAX_SUBMISSION."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if os.path.islink(path):
            raise SubmissionError("the submission is a symbolic link; submit the notebook file itself") from None
        raise SubmissionError(f"the submission could not be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionError("the submission is not a regular file (a FIFO, device or folder)")
        if info.st_size > MAX_SUBMISSION:
            raise SubmissionError(f"the submission is larger than {MAX_SUBMISSION >> 20} MiB")
        chunks, size = [], 0
        while size <= MAX_SUBMISSION:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SUBMISSION:
            raise SubmissionError(f"the submission is larger than {MAX_SUBMISSION >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------
# The submitted notebook -> answers and added cells
# ----------------------------------------------------------------------------

def _source(cell) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _id(cell) -> str | None:
    """A cell's id when it is a non-empty str (anything else counts as no id)."""
    cid = cell.get("id")
    return cid if type(cid) is str and cid else None


def parse(submission: bytes) -> list:
    try:
        nb = json.loads(submission.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SubmissionError(f"the notebook could not be read: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise SubmissionError("the notebook could not be read: not a notebook (no list of cells)")
    return [c for c in nb["cells"] if isinstance(c, dict)]


def layout(cells: list, release) -> tuple[dict, dict, dict, list]:
    """Split the submission into answers, duplicate counts, and added cells by position.

    Returns (answers: grade_id -> source of the LAST copy, copies: grade_id -> count,
    added_before: release index -> [sources of student cells to run before that cell],
    added_at_end). A submitted cell is the instructor's when its nbgrader grade_id, its
    id, or (ids lost or renewed) its exact source matches a release cell further down
    than the previous match; an id that is not a string counts as none. Other code
    cells are the student's own, run before the next instructor cell that follows them.
    """
    by_id = {_id(c): i for i, c in enumerate(release.cells) if _id(c)}
    by_grade_id = {}                       # every nbgrader cell of the release (answers, tests, locked)
    by_source: dict[str, list[int]] = {}
    for i, c in enumerate(release.cells):
        gid = grade_meta(c).get("grade_id")
        if isinstance(gid, str):
            by_grade_id.setdefault(gid, i)
        by_source.setdefault(c.source, []).append(i)
    answer_index = {grade_meta(c).get("grade_id"): i for i, c in enumerate(release.cells)
                    if grade_meta(c).get("solution")}
    answers, copies, added_before, pending = {}, {}, {}, []
    last = -1                              # the latest anchor so far
    for cell in cells:
        meta = grade_meta(cell)
        gid = meta.get("grade_id")
        gid = gid if isinstance(gid, str) else None
        cid, source, is_code = _id(cell), _source(cell), cell.get("cell_type") == "code"
        anchor = None
        if meta.get("solution") and gid in answer_index:
            if is_code:
                answers[gid] = source
                copies[gid] = copies.get(gid, 0) + 1
            anchor = answer_index[gid]
        elif gid in by_grade_id:                         # a test or locked cell: the instructor's
            anchor = by_grade_id[gid]
        elif cid in by_id:
            anchor = by_id[cid]
        elif source in by_source and any(i > last for i in by_source[source]):
            anchor = next(i for i in by_source[source] if i > last)   # an unchanged instructor cell, id lost
        elif is_code and source.strip():
            pending.append(source)
        if anchor is not None:
            last = max(last, anchor)
            if pending:
                added_before.setdefault(anchor, []).extend(pending)
                pending = []
    return answers, copies, added_before, pending


def runnable(code: str) -> str | None:
    """Why `code` cannot be sent to a kernel (NUL byte, lone surrogate), or None."""
    if "\x00" in code:
        return "the cell contains a NUL byte"
    try:
        code.encode("utf-8")
    except UnicodeEncodeError:
        return "the cell contains a character that cannot be encoded (a lone surrogate)"
    return None
