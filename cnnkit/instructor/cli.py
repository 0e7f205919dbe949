"""Command line of the instructor tools.

    python -m cnnkit release [NOTEBOOK_OR_DIR ...] --out DIR [--force]
    python -m cnnkit grade SUBMISSIONS --out DIR [-j N] [--timeout SECONDS] [-p NAME VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cnnkit", description="CNN course instructor tools")
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="make the student version of the notebooks")
    rel.add_argument("inputs", nargs="*", type=Path, help="notebooks or folders (default: notebooks/)")
    rel.add_argument("--out", type=Path, default=Path("student"), help="output folder (default: student/)")
    rel.add_argument("--force", action="store_true", help="replace the output folder if it exists")

    grd = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<notebook>.ipynb")
    grd.add_argument("submissions", type=Path)
    grd.add_argument("--out", type=Path, default=Path("grades"), help="output folder (default: grades/)")
    grd.add_argument("--source", type=Path, default=None, help="instructor notebooks (default: notebooks/)")
    grd.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded in parallel")
    grd.add_argument("--timeout", type=float, default=60,
                     help="seconds per exercise: its answer cell and its checks (default 60)")
    grd.add_argument("--notebook-timeout", type=float, default=900,
                     help="seconds for everything run in one notebook (default 900)")
    grd.add_argument("--seed", type=int, default=None,
                     help="secret seed of the hidden tests (default: a fresh random one; set it to rerun exactly)")
    grd.add_argument("--isolation", choices=["bubblewrap", "uid", "process"], default=None,
                     help="weakest isolation to accept is the one named (default: the strongest available)")
    grd.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a notebook parameter, e.g. -p FAST True")
    grd.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "release":
            from cnnkit.instructor.nbtools import NOTEBOOKS_DIR
            from cnnkit.instructor.release import release
            written = release(args.inputs or [NOTEBOOKS_DIR], args.out, force=args.force)
            print(f"wrote {len(written)} student notebook(s) to {args.out}/")
        else:
            from cnnkit.instructor.batch import grade, parse_parameter
            params = {name: parse_parameter(value) for name, value in args.parameter}
            summary = grade(args.submissions, args.out, args.source, jobs=args.jobs, timeout=args.timeout,
                            notebook_timeout=args.notebook_timeout, parameters=params,
                            progress=not args.no_progress, seed=args.seed, isolation=args.isolation)
            rows = summary.rows
            students = len({r.student for r in rows})
            counts = {s: sum(r.status == s for r in rows) for s in ("passed", "failed", "error", "timeout", "missing")}
            print(f"graded {students} student(s), {len(rows)} exercise result(s) in {summary.seconds:.0f} s: "
                  + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
            print(f"isolation: {summary.isolation} ({summary.isolation_reason})")
            print(f"{args.out}/grades.csv sha256 {summary.sha256}")
            print(f"feedback: {args.out}/feedback/")
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
