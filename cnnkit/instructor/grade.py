"""Grade one submission: the kernel runs the student's code, the grader decides.

    rows = grade_notebook(job)          # in a worker process; see cnnkit/instructor/batch.py

What runs in the student's kernel (in notebook order): the context cells of the
STUDENT RELEASE (never a solution or hidden-test line), the injected parameters,
the cells the student added (kept in place, as nbgrader does), the student's answer
cells, and for every check call of a test cell one line of the grader's:

    from cnnkit.check._core import probe as _cnnkit_grader_probe
    _cnnkit_grader_probe(NAME, answer, "work/cases-K.pt", "work/results-K.pt")

The kernel's copy of cnnkit has no reference code (every check's `reference` and
`compare` raise there, see sandbox.py), so a replaced probe or an answer that spots
the probe's frame has nothing right to hand back: it must compute the values itself.

The grader generates the cases itself (public calls keep the notebook's seed, so the
feedback matches what the student saw; hidden calls get a secret per-run seed),
reads the results file (no symlink, regular file, size cap, weights_only), and
decides with the same `judge` the interactive checks use. Nothing the kernel
prints, displays or returns as a status is trusted: an execute_reply only tells
"this answer cell raised". Every cell counts against the exercise's and the
notebook's time budget.

Duplicated answer ids (an old attempt left above the fixed copy): the LAST copy is
graded, with a warning in the feedback.

See: README.md, "For instructors"
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
import warnings
from dataclasses import dataclass, field

import nbformat

from cnnkit.contract import HIDDEN_WITHHELD
from cnnkit.instructor.kernel import Kernel, RunResult
from cnnkit.instructor.markers import Exercise, exercises_of
from cnnkit.instructor.submission import SubmissionError, layout, parse, runnable

__all__ = ["Row", "Job", "grade_notebook", "MAX_RESULTS"]

MAX_RESULTS = 64 << 20          # bytes of one results file written by the kernel
MAX_FEEDBACK_CHARS = 600
STATUSES = ("passed", "failed", "error", "timeout", "missing")


@dataclass
class Row:
    student: str
    notebook: str
    exercise: str
    status: str
    points: float
    max_points: float
    message: str = ""


@dataclass
class Job:
    """Everything a worker needs to grade one (student, notebook); plain data, picklable."""
    student: str
    notebook: str                    # stem, e.g. "02_backprop"
    submission: bytes | str          # the bytes read once by the batch, or the reason it was refused
    source: str                      # the instructor notebook's JSON text
    parameters: dict = field(default_factory=dict)
    timeout: float = 60.0            # seconds per exercise: answer cell + its probes
    notebook_timeout: float = 900.0  # seconds for everything the grader runs in this notebook
    secret: int = 0                  # the run's secret seed (hidden test cases)
    isolation: str = "process"
    token: str = ""                  # marks every process of this job (killed at the end)


# ----------------------------------------------------------------------------
# Probing one check call and judging it
# ----------------------------------------------------------------------------

def _call_seed(secret: int, *parts) -> int:
    digest = hashlib.sha256(":".join(map(str, (secret, *parts))).encode()).digest()
    # 40 bits: unguessable per run, and small enough that a check may still combine it
    # (seed * 1000 + i) and stay inside torch.manual_seed's int64
    return int.from_bytes(digest[:5], "big")


def _read_results(dir_fd: int, name: str) -> list | None:
    """The kernel's results file, or None: no symlink, regular file, size cap, weights_only."""
    import torch
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RESULTS:
            return None
        data = os.read(fd, MAX_RESULTS + 1)
        if len(data) > MAX_RESULTS:
            return None
    finally:
        os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception:
        return None
    return results if type(results) is list else None


def _remove(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


# ----------------------------------------------------------------------------
# One notebook
# ----------------------------------------------------------------------------

def _message(res: RunResult, part: str) -> str:
    if res.status == "timeout":
        return f"time limit exceeded in the {part}"
    if res.status == "dead":
        return f"the kernel died while running the {part} (exit, crash or out of memory); it was restarted"
    return f"the {part} raised {res.ename}: {res.evalue}".strip(": ")[:MAX_FEEDBACK_CHARS]


class _Budget:
    """Seconds left for the whole notebook."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def grade_notebook(job: Job) -> list[Row]:
    """Grade one notebook of one student; never raises for a bad submission."""
    from cnnkit.check._core import CHECKS, judge
    from cnnkit.instructor.release import release_notebook
    from cnnkit.instructor.nbtools import parameters_cell, parameters_from_source
    from cnnkit.instructor.sandbox import Limits, Sandbox

    source = nbformat.reads(job.source, as_version=4)
    exercises = exercises_of(source, job.notebook)
    release = release_notebook(source, job.notebook)
    rows: dict[str, Row] = {}
    notes: dict[str, str] = {}

    def row(e: Exercise, status: str, message: str = "", points: float = 0.0) -> None:
        note = notes.get(e.grade_id, "")
        message = "\n".join(m for m in (note, message) if m)
        rows[e.grade_id] = Row(job.student, job.notebook, e.grade_id, status, points, e.points, message)

    def finish() -> list[Row]:
        for e in exercises:
            if e.grade_id not in rows:
                row(e, "error", "not graded (an earlier failure stopped the notebook)")
        return [rows[e.grade_id] for e in exercises]

    try:
        if isinstance(job.submission, str):
            raise SubmissionError(job.submission)
        cells = parse(job.submission)
    except SubmissionError as exc:
        for e in exercises:
            row(e, "error", str(exc))
        return finish()
    answers, copies, added_before, _ = layout(cells, release)
    for gid, count in copies.items():
        if count > 1:
            notes[gid] = (f"warning: {count} answer cells have the id {gid!r}; the last one was graded "
                             f"(delete the old attempts)")

    by_answer = {e.answer_index: e for e in exercises}
    by_test = {e.test_index: e for e in exercises}
    param_index = release.cells.index(parameters_cell(release))
    known = parameters_from_source(release.cells[param_index].source)
    injected = "\n".join(f"{k} = {v!r}" for k, v in job.parameters.items() if k in known)

    budget = _Budget(job.notebook_timeout)
    sandbox = Sandbox(job.isolation, Limits(cpu_seconds=int(job.notebook_timeout) + 120), token=job.token)
    kernel = None
    nb_path = sandbox.notebooks / f"{job.notebook}.ipynb"
    nbformat.write(release, nb_path)
    done: list[str] = []             # code that built the kernel's state, replayed after a restart
    probes = 0
    try:
        kernel = Kernel(sandbox, job.token)

        def replay() -> None:
            kernel.restart()
            for code in done:
                kernel.run(code, budget.left())

        def execute(code: str, limit: float) -> RunResult:
            """Run code within min(limit, notebook budget); leave the kernel in the state `done` says."""
            generation = kernel.generation
            res = kernel.run(code, min(limit, budget.left()))
            if res.status == "dead":
                replay()
            elif kernel.generation != generation:          # it hung and was restarted
                for code_done in done:
                    kernel.run(code_done, budget.left())
            return res

        def run_context(code: str, limit: float) -> None:
            if runnable(code) is None and execute(code, limit).status == "ok":
                done.append(code)

        def probe(e: Exercise, k: int, call, spent: float) -> tuple:
            """(verdict or None, RunResult) of one check call, within the exercise's budget."""
            nonlocal probes
            import torch
            check = CHECKS[call.check]
            seed = _call_seed(job.secret, job.student, job.notebook, e.grade_id, k) if call.hidden else call.seed
            try:
                cases = check.cases(seed, call.n if call.n is not None else check.default_n)
            except Exception as exc:        # the instructor's check is broken: this exercise only
                return None, RunResult("error", "CheckError", f"the check could not make its cases: "
                                                              f"{type(exc).__name__}: {str(exc)[:200]}")
            probes += 1
            cases_name, results_name = f"cases-{probes}.pt", f"results-{probes}.pt"
            buffer = io.BytesIO()
            torch.save(cases, buffer)
            fd = os.open(cases_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                         dir_fd=sandbox.work_fd)
            with os.fdopen(fd, "wb") as fh:
                fh.write(buffer.getvalue())
            # an import statement takes __import__ from the builtins, never from a student global
            code = (f"from cnnkit.check._core import probe as _cnnkit_grader_probe\n"
                    f"_cnnkit_grader_probe({call.check!r}, {call.answer}, "
                    f"{str(sandbox.work / cases_name)!r}, {str(sandbox.work / results_name)!r})\n"
                    f"del _cnnkit_grader_probe")
            res = execute(code, job.timeout - spent)
            results = _read_results(sandbox.work_fd, results_name) if res.status == "ok" else None
            _remove(sandbox.work_fd, cases_name)
            _remove(sandbox.work_fd, results_name)
            if results is None:
                return None, res
            return judge(check, cases, results, hidden=call.hidden), res

        def grade_exercise(e: Exercise, answer_spent: float) -> None:
            passed = total = 0
            verdicts = []
            for k, call in enumerate(e.calls):
                if verdicts and verdicts[-1].status != "passed" and not verdicts[-1].partial:
                    break                          # all-or-nothing: the first failure decides
                start = time.monotonic()
                verdict, res = probe(e, k, call, answer_spent)
                answer_spent += time.monotonic() - start
                if verdict is None:
                    if res.status == "timeout":
                        row(e, "timeout", "time limit exceeded while checking the answer"
                                          + ("" if call.hidden else f" ({call.check})"))
                    elif res.status == "dead":
                        row(e, "error", "the kernel died while checking the answer "
                                        "(exit, crash or out of memory); it was restarted")
                    elif call.hidden:
                        row(e, "error", "passed the public checks, but a hidden test could not be run "
                                        "(details withheld)")
                    else:
                        row(e, "error", f"the check {call.check}({call.answer}) could not run: is "
                                        f"`{call.answer}` defined by the answer cell? ({res.ename or 'no results'})")
                    return
                verdicts.append(verdict)
                passed, total = passed + verdict.passed, total + verdict.total
            failed = [v for v in verdicts if v.status != "passed"]
            if not failed and len(verdicts) == len(e.calls):
                row(e, "passed", "", e.points)
                return
            partial = all(v.partial for v in verdicts)
            points = round(e.points * passed / total, 6) if partial and total else 0.0
            first = failed[0]
            hidden = e.calls[verdicts.index(first)].hidden
            if first.status == "not_implemented":
                message = "not implemented yet"
            elif hidden:
                message = "passed the public checks, but " + HIDDEN_WITHHELD
            else:
                message = first.message
            if partial:
                message += f"\npartial credit: {points:g} of {e.points:g}"
            row(e, "failed", message[:MAX_FEEDBACK_CHARS], points)

        pending_exercise: dict[str, float] = {}      # grade_id -> seconds its answer cell took
        for i, cell in enumerate(release.cells):
            if budget.left() <= 0:
                break
            for code in added_before.get(i, []):
                run_context(code, job.timeout)
            if cell.cell_type != "code":
                continue
            if i in by_answer:
                e = by_answer[i]
                code = answers.get(e.grade_id)
                if code is None:
                    row(e, "missing", "no answer cell with this exercise id was found")
                    continue
                problem = runnable(code)
                if problem:
                    row(e, "error", f"the answer cell cannot be run: {problem}")
                    continue
                start = time.monotonic()
                res = execute(code, job.timeout)
                if res.status == "ok":
                    done.append(code)
                    pending_exercise[e.grade_id] = time.monotonic() - start
                else:
                    row(e, "timeout" if res.status == "timeout" else "error", _message(res, "answer cell"))
                continue
            if i in by_test:
                e = by_test[i]
                if e.grade_id in pending_exercise:
                    grade_exercise(e, pending_exercise.pop(e.grade_id))
                continue
            run_context(cell.source, budget.left())
            if i == param_index and injected:
                run_context(injected, budget.left())
        # cells the student added after the last instructor cell cannot change a grade: not run
        if budget.left() <= 0:
            for e in exercises:
                if e.grade_id not in rows:
                    row(e, "timeout", f"the notebook's time budget ({job.notebook_timeout:g} s) ran out "
                                      f"before this exercise was graded")
    finally:
        if kernel is not None:
            kernel.kill()
        from cnnkit.instructor.sandbox import kill_tagged
        kill_tagged(job.token)
        sandbox.close()
    return finish()
