"""Instructor tools: make the student release of the notebooks, and grade submissions.

    python -m cnnkit release [NOTEBOOK_OR_DIR ...] --out student/ [--force]
    python -m cnnkit grade SUBMISSIONS --out grades/ [-j N] [--timeout S] [-p FAST True]

Both work offline from the repository alone: no database, no server, no Docker.

Grading never trusts the submitted notebook's structure. Each notebook is
rebuilt from the instructor's source, and only the student's *answer cells*
(matched by their nbgrader ``grade_id``) are spliced in, so edited, deleted,
duplicated or reordered test cells change nothing. Every submission runs in a
fresh kernel; each answer and test cell has a timeout; a kernel that dies is
restarted and the notebook replayed up to where it was; before every test cell
the grader restores ``cnnkit.check`` and the functions the checks rely on, in
case the answer monkeypatched them. Scores come only from whether the grader's
own test code raised (or from a ``cnnkit.check.Score`` it returned), never from
what the student's code printed.

Limits, honestly: student code runs with the grader's permissions inside the
kernel. The guards above stop accidents and casual tampering; for untrusted
submissions run the grader in a throwaway container or VM.

See: README.md, "For instructors"
"""

from __future__ import annotations

import ast
import copy
import csv
import io
import json
import os
import queue
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["release", "grade", "ReleaseError", "STUB", "parse_parameter"]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
STATUSES = ("passed", "failed", "error", "timeout", "missing")
SCORE_MIME = "application/vnd.cnnkit.score+json"
MAX_FEEDBACK_CHARS = 600


class ReleaseError(ValueError):
    """The instructor notebooks cannot be released as they are."""


# ----------------------------------------------------------------------------
# Markers
# ----------------------------------------------------------------------------

def _region(lines: list[str], begin: str, end: str, where: str) -> tuple[int, int] | None:
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


def _grade_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


@dataclass
class Exercise:
    grade_id: str
    answer_index: int
    test_index: int
    points: float


def exercises_of(nb, name: str = "notebook") -> list[Exercise]:
    """The exercises of an instructor notebook, validated (ReleaseError on any problem)."""
    found, seen = [], set()
    cells = nb.cells
    for i, cell in enumerate(cells):
        meta = _grade_meta(cell)
        where = f"{name}, cell {i}"
        lines = cell.source.splitlines()
        sol = _region(lines, BEGIN_SOLUTION, END_SOLUTION, where)
        hid = _region(lines, BEGIN_HIDDEN, END_HIDDEN, where)
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
            tmeta = _grade_meta(nxt) if nxt is not None else {}
            if not tmeta.get("grade") or tmeta.get("solution"):
                raise ReleaseError(f"{where}: answer cell {gid!r} must be followed by its graded test cell")
            found.append(Exercise(gid, i, i + 1, float(tmeta.get("points", 0))))
    return found


# ----------------------------------------------------------------------------
# Release
# ----------------------------------------------------------------------------

def _student_cell_source(source: str, where: str) -> tuple[str, list[str]]:
    """Replace the solution region by the stub and drop hidden tests; return (text, removed lines)."""
    lines = source.splitlines()
    removed: list[str] = []
    for begin, end, replace in ((BEGIN_SOLUTION, END_SOLUTION, True), (BEGIN_HIDDEN, END_HIDDEN, False)):
        region = _region(lines, begin, end, where)
        if region is None:
            continue
        start, stop = region
        indent = re.match(r"\s*", lines[start]).group(0)
        removed += lines[start + 1:stop]
        stub = [indent + s for s in STUB.splitlines()] if replace else []
        lines = lines[:start] + stub + lines[stop + 1:]
    return "\n".join(lines), removed


def _release_notebook(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    exercises_of(nb, path.name)               # validates markers and ids
    removed: list[tuple[str, str]] = []
    out = copy.deepcopy(nb)
    for i, cell in enumerate(out.cells):
        if cell.cell_type == "code":
            cell.source, gone = _student_cell_source(cell.source, f"{path.name}, cell {i}")
            removed += [(f"cell {i}", line) for line in gone]
            cell.outputs = []
            cell.execution_count = None
        meta = _grade_meta(cell)
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
            raise ReleaseError(f"{path.name}: {a!r} ({where}, removed for students) also appears elsewhere "
                               f"in the notebook and would leak into the release")
    nbformat.validate(out)
    return out


def _collect(inputs: list[Path]) -> list[Path]:
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
    notebooks = {p.name: _release_notebook(p) for p in _collect([Path(i) for i in inputs])}
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


# ----------------------------------------------------------------------------
# A kernel we can time out, interrupt, restart and survive
# ----------------------------------------------------------------------------

@dataclass
class RunResult:
    status: str                       # "ok", "error", "timeout", "dead"
    ename: str = ""
    evalue: str = ""
    score: dict | None = None         # from a cnnkit.check.Score returned by the cell


class Kernel:
    """One Jupyter kernel with per-call timeouts; restarts itself when it dies or hangs."""

    def __init__(self, kernel_name: str, cwd: Path):
        self.kernel_name, self.cwd = kernel_name, cwd
        self.km = self.kc = None
        self.generation = 0          # incremented by every restart: the kernel's state is gone
        self.start()

    def start(self) -> None:
        from jupyter_client import KernelManager
        # A new manager each time: shutting one down destroys its ZMQ context.
        self.km = KernelManager(kernel_name=self.kernel_name)
        env = dict(os.environ, PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
        self.km.start_kernel(cwd=str(self.cwd), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def restart(self) -> None:
        self.generation += 1
        try:
            self.kc.stop_channels()
        except Exception:
            pass
        self.km.shutdown_kernel(now=True)
        self.start()

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        except Exception:
            pass

    def run(self, code: str, timeout: float) -> RunResult:
        """Execute code; finished when the shell channel's execute_reply arrives.

        The reply is reliable; IOPub (outputs, errors, "idle") is a PUB socket that
        may drop messages under a flood of output, so it is only used for the
        optional score and waited for briefly after the reply.
        """
        # stop_on_error=False: a failing cell must not abort the requests queued behind it.
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        reply, reply_time, idle, score = None, 0.0, False, None
        while True:
            now = time.monotonic()
            if reply is not None and (idle or now - reply_time > 2.0):
                content = reply["content"]
                if content.get("status") == "ok":
                    return RunResult("ok", score=score)
                return RunResult("error", content.get("ename", ""),
                                 str(content.get("evalue", ""))[:MAX_FEEDBACK_CHARS], score)
            if reply is None and now > deadline:
                return self._after_timeout()
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
                if msg["parent_header"].get("msg_id") == msg_id:
                    kind, content = msg["msg_type"], msg["content"]
                    if kind == "execute_result" and SCORE_MIME in content.get("data", {}):
                        # Only the value of the grader's own last expression counts (not display_data).
                        score = content["data"][SCORE_MIME]
                    elif kind == "status" and content.get("execution_state") == "idle":
                        idle = True
            except queue.Empty:
                pass
            if reply is None:
                try:
                    msg = self.kc.get_shell_msg(timeout=0.05)
                    if msg["parent_header"].get("msg_id") == msg_id:
                        reply, reply_time = msg, time.monotonic()
                except queue.Empty:
                    if not self.km.is_alive():
                        return RunResult("dead", "DeadKernelError",
                                         "the kernel died (exit, crash or out of memory)")

    def _after_timeout(self) -> RunResult:
        """Interrupt; if the kernel does not come back within 15 s, restart it."""
        self.km.interrupt_kernel()
        alive = self.run_quiet("None", 15.0)
        if not alive:
            self.restart()
            return RunResult("timeout", "TimeoutError", "time limit exceeded; the kernel was restarted")
        return RunResult("timeout", "TimeoutError", "time limit exceeded")

    def run_quiet(self, code: str, timeout: float) -> bool:
        """Drain pending messages and check that the kernel answers within `timeout`."""
        try:
            reply = self.kc.execute_interactive(code, timeout=timeout, store_history=False,
                                                stop_on_error=False, output_hook=lambda msg: None)
            return reply["content"]["status"] in ("ok", "error", "aborted")   # it answered
        except Exception:
            return False


# The grader's guard, run before every test cell: undo monkeypatching of the checks
# and of what they compare against, and remove input/AST transformers and custom
# exception handlers that could swallow a failing test.
GUARD_SETUP = """
import builtins as _g_builtins, importlib as _g_importlib, sys as _g_sys
import torch as _g_torch, torch.nn.functional as _g_F, math as _g_math
_g_snapshot = {m: dict(vars(m)) for m in (_g_builtins, _g_torch, _g_F, _g_torch.nn, _g_math)}
_g_ip = get_ipython()
_g_input_transformers = (list(_g_ip.input_transformers_cleanup), list(_g_ip.input_transformers_post))
_g_displayhook = _g_sys.displayhook
"""
GUARD = """
for _g_mod, _g_vars in _g_snapshot.items():
    for _g_key, _g_val in _g_vars.items():
        if vars(_g_mod).get(_g_key, _g_val) is not _g_val:
            setattr(_g_mod, _g_key, _g_val)
import cnnkit.check
_g_importlib.reload(cnnkit.check)
cnnkit.check = _g_sys.modules["cnnkit.check"]
_g_ip.input_transformers_cleanup[:], _g_ip.input_transformers_post[:] = map(list, _g_input_transformers)
_g_ip.ast_transformers[:] = []
_g_ip.set_custom_exc((), None)
_g_sys.displayhook = _g_displayhook
"""


# ----------------------------------------------------------------------------
# Grading one submission
# ----------------------------------------------------------------------------

@dataclass
class Row:
    student: str
    notebook: str
    exercise: str
    status: str
    points: float
    max_points: float
    message: str = ""


def parse_parameter(value: str):
    """'True' -> True, '3' -> 3, '0.5' -> 0.5, anything else stays a string (like papermill -p)."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _split_test(source: str) -> tuple[str, str]:
    """(public part, hidden part) of a test cell."""
    lines = source.splitlines()
    region = _region(lines, BEGIN_HIDDEN, END_HIDDEN, "test cell")
    if region is None:
        return source, ""
    start, stop = region
    return "\n".join(lines[:start] + lines[stop + 1:]), "\n".join(lines[start + 1:stop])


def _answers(student_nb) -> dict[str, str]:
    """grade_id -> source of the student's answer cell (the first one, if duplicated)."""
    answers: dict[str, str] = {}
    for cell in student_nb.get("cells", []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id")
        if meta.get("solution") and isinstance(gid, str) and gid not in answers:
            source = cell.get("source", "")
            answers[gid] = "".join(source) if isinstance(source, list) else str(source)
    return answers


def _message(res: RunResult, part: str) -> str:
    if res.status == "timeout":
        return f"time limit exceeded in the {part}"
    if res.status == "dead":
        return f"the kernel died while running the {part} (exit, crash or out of memory); it was restarted"
    text = f"{res.ename}: {res.evalue}".strip(": ")
    return text[:MAX_FEEDBACK_CHARS]


def grade_submission(student: str, path: Path, source_path: Path, parameters: dict,
                     timeout: float, context_timeout: float) -> list[Row]:
    """Grade one notebook of one student; never raises for a bad submission."""
    source = nbformat.read(source_path, as_version=4)
    exercises = exercises_of(source, source_path.name)
    by_answer = {e.answer_index: e for e in exercises}
    by_test = {e.test_index: e for e in exercises}
    rows: dict[str, Row] = {}

    def row(e: Exercise, status: str, message: str = "", points: float = 0.0) -> None:
        rows[e.grade_id] = Row(student, source_path.stem, e.grade_id, status, points, e.points, message)

    try:
        with open(path, encoding="utf-8") as fh:
            submitted = json.load(fh)
        if not isinstance(submitted, dict) or not isinstance(submitted.get("cells"), list):
            raise ValueError("not a notebook: no list of cells")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = f"the notebook could not be read: {type(exc).__name__}: {str(exc)[:200]}"
        for e in exercises:
            row(e, "error", reason)
        return [rows[e.grade_id] for e in exercises]
    answers = _answers(submitted)

    from cnnkit.nbtools import parameters_cell, notebook_parameters
    known = notebook_parameters(source_path)
    param_index = source.cells.index(parameters_cell(source))
    injected = "\n".join(f"{k} = {v!r}" for k, v in parameters.items() if k in known)

    kernel = Kernel(source.metadata.get("kernelspec", {}).get("name", "python3"), source_path.parent)
    # Code that built the current kernel state, replayed after a restart. The guard's
    # snapshot is taken first, before any student code has run.
    done: list[str] = [GUARD_SETUP]
    kernel.run(GUARD_SETUP, context_timeout)

    def replay(restart: bool = True) -> None:
        """Rebuild the kernel state after a death or a hang: restart, re-run what succeeded."""
        if restart:
            kernel.restart()
        kernel.run_quiet("None", 60)
        for code in done:
            kernel.run(code, context_timeout)

    def execute(code: str, limit: float) -> RunResult:
        """Run code; whatever happened to the kernel, leave it in the state `done` describes."""
        generation = kernel.generation
        res = kernel.run(code, limit)
        if res.status == "dead":
            replay()
        elif kernel.generation != generation:        # it hung and had to be restarted
            replay(restart=False)
        elif res.status == "timeout" and not kernel.run_quiet("None", 15):
            replay()
        return res

    def run_context(code: str, limit: float) -> RunResult:
        res = execute(code, limit)
        if res.status == "ok":
            done.append(code)
        return res

    try:
        for i, cell in enumerate(source.cells):
            if cell.cell_type != "code":
                continue
            if i in by_answer:
                e = by_answer[i]
                code = answers.get(e.grade_id)
                if code is None:
                    row(e, "missing", "no answer cell with this exercise id was found")
                    continue
                res = execute(code, timeout)
                if res.status == "ok":
                    done.append(code)
                elif res.status == "dead":
                    row(e, "error", _message(res, "answer cell"))
                elif res.status == "timeout":
                    row(e, "timeout", _message(res, "answer cell"))
                else:
                    row(e, "error", _message(res, "answer cell"))
                continue
            if i in by_test:
                e = by_test[i]
                if e.grade_id in rows:          # missing, or the answer cell already failed
                    continue
                execute(GUARD, context_timeout)
                public, hidden = _split_test(cell.source)
                outcome = None
                for part, code in (("public checks", public), ("hidden tests", hidden)):
                    if not code.strip():
                        continue
                    res = execute(code, timeout)
                    if res.status == "dead":
                        outcome = ("error", _message(res, part), 0.0)
                        break
                    if res.status == "timeout":
                        outcome = ("timeout", _message(res, part), 0.0)
                        break
                    if res.status == "error":
                        failed = res.ename in ("AssertionError", "ExerciseFailed", "NotImplementedYet")
                        if part == "hidden tests":
                            msg = "passed the public checks, but failed a hidden test (details withheld)"
                        else:
                            msg = _message(res, part)
                        outcome = ("failed" if failed else "error", msg, 0.0)
                        break
                    if res.score is not None:
                        earned = max(0.0, min(float(res.score.get("earned", 0)), 1.0)) * e.points
                        outcome = ("passed" if earned >= e.points else "failed",
                                   f"partial credit: {earned:g} of {e.points:g}", earned)
                if outcome is None:
                    outcome = ("passed", "", e.points)
                status, msg, pts = outcome
                row(e, status, msg, pts)
                continue
            code = cell.source
            if i == param_index:
                run_context(code, context_timeout)
                if injected:
                    run_context(injected, context_timeout)
                continue
            run_context(code, context_timeout)
    finally:
        kernel.shutdown()
    for e in exercises:
        if e.grade_id not in rows:
            row(e, "error", "not graded (an earlier failure stopped the notebook)")
    return [rows[e.grade_id] for e in exercises]


# ----------------------------------------------------------------------------
# Grading a folder
# ----------------------------------------------------------------------------

def _grade_job(args) -> list[Row]:
    """Grade one (student, notebook); the grader itself never stops on one submission."""
    student, path, src, parameters, timeout, context_timeout = args
    try:
        return grade_submission(student, path, src, parameters, timeout, context_timeout)
    except Exception as exc:
        exercises = exercises_of(nbformat.read(src, as_version=4), src.name)
        return [Row(student, src.stem, e.grade_id, "error", 0.0, e.points,
                    f"grader error: {type(exc).__name__}: {str(exc)[:200]}") for e in exercises]


def _feedback(student: str, notebook: str, rows: list[Row]) -> str:
    total, possible = sum(r.points for r in rows), sum(r.max_points for r in rows)
    lines = [f"# {notebook}: feedback for {student}", "", f"**Score: {total:g} / {possible:g}**", "",
             "| exercise | status | points |", "|---|---|---|"]
    lines += [f"| {r.exercise} | {r.status} | {r.points:g} / {r.max_points:g} |" for r in rows]
    lines.append("")
    for r in rows:
        if r.message:
            lines += [f"## {r.exercise}", "", "```", r.message, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def grade(submissions: Path, out: Path, source_dir: Path | None = None, jobs: int = 1, timeout: float = 60,
          context_timeout: float = 600, parameters: dict | None = None, progress: bool = True) -> list[Row]:
    """Grade SUBMISSIONS/<student>/<notebook>.ipynb against the instructor notebooks.

    Writes out/grades.csv and out/feedback/<student>/<notebook>.md (sorted, no
    timestamps or paths: a rerun gives the same bytes). Returns the rows.
    """
    from cnnkit.nbtools import NOTEBOOKS_DIR, notebook_parameters
    submissions, out = Path(submissions), Path(out)
    source_dir = Path(source_dir) if source_dir else NOTEBOOKS_DIR
    if not submissions.is_dir():
        raise FileNotFoundError(f"submissions folder {submissions} does not exist")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    parameters = dict(parameters or {})
    jobs_list = []
    for student_dir in sorted(p for p in submissions.iterdir() if p.is_dir()):
        for nb_path in sorted(student_dir.glob("*.ipynb")):
            src = source_dir / nb_path.name
            if not src.is_file():
                continue            # not one of the course notebooks: not graded
            unknown = sorted(set(parameters) - set(notebook_parameters(src)))
            if unknown:
                raise ValueError(f"unknown parameter(s) {unknown} for {src.name}")
            jobs_list.append((student_dir.name, nb_path, src))
    if not jobs_list:
        raise FileNotFoundError(f"no submissions found: expected {submissions}/<student>/<notebook>.ipynb "
                                f"named like the notebooks in {source_dir}")

    from tqdm.auto import tqdm
    jobs_args = [(student, path, src, parameters, timeout, context_timeout) for student, path, src in jobs_list]
    results: list[Row] = []
    if jobs == 1:
        for args in tqdm(jobs_args, desc="grading", unit="notebook", disable=not progress):
            results += _grade_job(args)
    else:
        # Separate processes ("spawn": no state shared with this one), each with its own kernels.
        import multiprocessing
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for rows in tqdm(pool.map(_grade_job, jobs_args), total=len(jobs_args), desc="grading",
                             unit="notebook", disable=not progress):
                results += rows
    order = {}
    for src in {src for _, _, src in jobs_list}:          # each source notebook read once
        for k, e in enumerate(exercises_of(nbformat.read(src, as_version=4), src.name)):
            order[(src.stem, e.grade_id)] = k
    results.sort(key=lambda r: (r.student, r.notebook, order[(r.notebook, r.exercise)]))

    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "notebook", "exercise", "status", "points", "max_points"])
    for r in results:
        writer.writerow([r.student, r.notebook, r.exercise, r.status, f"{r.points:g}", f"{r.max_points:g}"])
    (out / "grades.csv").write_text(buffer.getvalue(), encoding="utf-8")
    feedback = out / "feedback"
    for student, path, src in jobs_list:
        rows = [r for r in results if r.student == student and r.notebook == src.stem]
        target = feedback / student / f"{src.stem}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_feedback(student, src.stem, rows), encoding="utf-8")
    return results
