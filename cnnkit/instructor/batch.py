"""Grade a folder of submissions: worker processes, grades.csv, feedback; always finishes.

    python -m cnnkit grade SUBMISSIONS --out grades/ [-j N] [--timeout S] [-p FAST True]

Each SUBMISSIONS/<student>/<notebook>.ipynb is read once into memory here (no
symlinks, FIFOs or devices; a size cap) and graded in a worker process of its own
(a worker that dies, or is killed by a submission, becomes an `error` for that one
job and is replaced). grades.csv is written atomically (temp file + rename), with
spreadsheet formulas neutralised, and its sha256 is returned for the summary.

See: README.md, "For instructors"
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

import nbformat

from cnnkit.instructor.grade import Job, Row, grade_notebook
from cnnkit.instructor.submission import SubmissionError, read_submission
from cnnkit.instructor.markers import exercises_of
from cnnkit.instructor.sandbox import isolation_level, kill_tagged, remove_left

__all__ = ["grade", "Summary", "csv_cell", "parse_parameter"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Summary:
    rows: list[Row]
    isolation: str
    isolation_reason: str
    sha256: str
    seconds: float
    token: str                   # every process of this run carried CNNKIT_GRADE_TOKEN=<token>-<job>


def parse_parameter(value: str):
    """'True' -> True, '3' -> 3, '0.5' -> 0.5, anything else stays a string (like papermill -p)."""
    import ast
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def csv_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ tab or CR gets a quote."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _worker(conn) -> None:
    """A worker process: grade the jobs it receives until it gets None."""
    import resource
    import torch
    from cnnkit.instructor.sandbox import Limits
    torch.set_num_threads(1)
    try:        # a memory cap (soft: a kernel still sets its own); a job that hits it becomes an `error`
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = Limits().address_space if hard == resource.RLIM_INFINITY else min(Limits().address_space, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):
        pass
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            rows = grade_notebook(job)
        except Exception as exc:          # a bug, a broken machine, MemoryError: this job only
            rows = _error_rows(job, f"grader error: {type(exc).__name__}: {str(exc)[:200]}")
        conn.send(rows)


def _error_rows(job: Job, message: str) -> list[Row]:
    source = nbformat.reads(job.source, as_version=4)
    return [Row(job.student, job.notebook, e.grade_id, "error", 0.0, e.points, message)
            for e in exercises_of(source, job.notebook)]


class _Pool:
    """Worker processes ('spawn': nothing shared with this one); a dead one is replaced."""

    def __init__(self, size: int):
        self.ctx = multiprocessing.get_context("spawn")
        self.size = size
        self.idle: list = []

    def _spawn(self):
        here, there = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(there,), daemon=True)
        proc.start()
        there.close()
        return proc, here

    def run(self, jobs: list[Job], hard_limit: float, progress=None) -> list[Row]:
        pending, busy, results = list(jobs), {}, []
        while pending or busy:
            while pending and len(busy) < self.size:
                worker = self.idle.pop() if self.idle else self._spawn()
                job = pending.pop(0)
                worker[1].send(job)
                busy[worker[1]] = (worker, job, time.monotonic())
            ready = wait(list(busy) + [w[0].sentinel for w, _, _ in busy.values()], timeout=1.0)
            for conn, (worker, job, started) in list(busy.items()):
                proc = worker[0]
                rows = None
                if conn in ready:
                    try:
                        rows = conn.recv()
                    except (EOFError, OSError):
                        rows = None
                if rows is not None:
                    self.idle.append(worker)
                elif proc.sentinel in ready or not proc.is_alive():
                    rows = _error_rows(job, "the grading worker died (a submission may have killed it); "
                                            "this notebook was not graded")
                elif time.monotonic() - started > hard_limit:
                    proc.kill()
                    rows = _error_rows(job, "the notebook did not finish within its time budget")
                else:
                    continue
                if rows is not None and worker not in self.idle:
                    proc.kill()
                    proc.join(5)
                kill_tagged(job.token)
                remove_left(job.token, None if worker in self.idle else proc.pid)
                del busy[conn]
                results += rows
                if progress:
                    progress()
        return results

    def close(self) -> None:
        for proc, conn in self.idle:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc, _ in self.idle:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            remove_left(None, proc.pid)          # its course copy, if it could not remove it itself


def _feedback(student: str, notebook: str, rows: list[Row]) -> str:
    total, possible = sum(r.points for r in rows), sum(r.max_points for r in rows)
    lines = [f"# {notebook}: feedback for {student}", "", f"**Score: {total:g} / {possible:g}**", "",
             "| exercise | status | points |", "|---|---|---|"]
    lines += [f"| {r.exercise} | {r.status} | {r.points:g} / {r.max_points:g} |" for r in rows]
    lines.append("")
    for r in rows:
        if r.message:
            lines += [f"## {r.exercise}", "", "```", r.message.replace("```", "'''"), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _safe_name(name: str) -> str:
    """A student folder name usable as a feedback folder (the CSV keeps the real one, neutralised)."""
    return name if name not in (".", "..") and "/" not in name and "\x00" not in name else "_"


def grade(submissions: Path, out: Path, source_dir: Path | None = None, jobs: int = 1, timeout: float = 60,
          notebook_timeout: float = 900, parameters: dict | None = None, progress: bool = True,
          seed: int | None = None, isolation: str | None = None) -> Summary:
    """Grade SUBMISSIONS/<student>/<notebook>.ipynb against the instructor notebooks.

    Writes out/grades.csv and out/feedback/<student>/<notebook>.md (sorted, no
    timestamps or paths: a rerun with the same `seed` gives the same bytes).
    `seed` is the secret of the hidden tests (default: a fresh random one).
    """
    from cnnkit.instructor.nbtools import NOTEBOOKS_DIR, notebook_parameters
    start = time.monotonic()
    submissions, out = Path(submissions), Path(out)
    source_dir = Path(source_dir) if source_dir else NOTEBOOKS_DIR
    if not submissions.is_dir():
        raise FileNotFoundError(f"submissions folder {submissions} does not exist")
    if type(jobs) is not int or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if timeout <= 0 or notebook_timeout <= 0:
        raise ValueError(f"timeouts must be positive, got timeout={timeout}, notebook_timeout={notebook_timeout}")
    parameters = dict(parameters or {})
    level, reason = isolation_level(isolation)
    secret = secrets.randbits(62) if seed is None else int(seed)
    run_token = secrets.token_hex(6)
    sources: dict[str, str] = {}
    job_list: list[Job] = []
    for student_dir in sorted(submissions.iterdir()):
        if student_dir.is_symlink() or not student_dir.is_dir():
            continue
        for entry in sorted(student_dir.iterdir()):
            if not entry.name.endswith(".ipynb"):
                continue
            src = source_dir / entry.name
            if not src.is_file():
                continue            # not one of the course notebooks: not graded
            if entry.name not in sources:
                unknown = sorted(set(parameters) - set(notebook_parameters(src)))
                if unknown:
                    raise ValueError(f"unknown parameter(s) {unknown} for {src.name}")
                sources[entry.name] = src.read_text(encoding="utf-8")
                exercises_of(nbformat.reads(sources[entry.name], as_version=4), entry.name)   # fail early
            try:
                data: bytes | str = read_submission(entry)
            except SubmissionError as exc:
                data = str(exc)
            job_list.append(Job(student_dir.name, src.stem, data, sources[entry.name], parameters, timeout,
                                notebook_timeout, secret, level, f"{run_token}-{len(job_list)}"))
    if not job_list:
        raise FileNotFoundError(f"no submissions found: expected {submissions}/<student>/<notebook>.ipynb "
                                f"named like the notebooks in {source_dir}")

    from tqdm.auto import tqdm
    bar = tqdm(total=len(job_list), desc="grading", unit="notebook", disable=not progress)
    pool = _Pool(min(jobs, len(job_list)))
    try:
        # per job: its notebook budget, the kernel's start and up to two restarts
        results = pool.run(job_list, hard_limit=notebook_timeout + 180, progress=lambda: bar.update(1))
    finally:
        pool.close()
        bar.close()
        kill_tagged(run_token + "-", prefix=True)
    order = {}
    for name, text in sources.items():
        for k, e in enumerate(exercises_of(nbformat.reads(text, as_version=4), name)):
            order[(Path(name).stem, e.grade_id)] = k
    results.sort(key=lambda r: (r.student, r.notebook, order[(r.notebook, r.exercise)]))

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "notebook", "exercise", "status", "points", "max_points"])
    for r in results:
        writer.writerow([csv_cell(v) for v in (r.student, r.notebook, r.exercise, r.status,
                                                f"{r.points:g}", f"{r.max_points:g}")])
    data = buffer.getvalue().encode("utf-8", "backslashreplace")
    out.mkdir(parents=True, exist_ok=True)
    for job in job_list:
        rows = [r for r in results if r.student == job.student and r.notebook == job.notebook]
        text = _feedback(job.student, job.notebook, rows)
        _write_atomic(out / "feedback" / _safe_name(job.student) / f"{job.notebook}.md",
                      text.encode("utf-8", "backslashreplace"))
    _write_atomic(out / "grades.csv", data)
    return Summary(results, level, reason, hashlib.sha256(data).hexdigest(),
                   time.monotonic() - start, run_token)
