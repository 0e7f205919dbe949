"""Command line of the instructor tools.

    python -m cnnkit release [NOTEBOOK_OR_DIR ...] --out DIR [--force]
    python -m cnnkit grade SUBMISSIONS --out DIR [-j N] [--timeout SECONDS] [-p NAME VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from cnnkit import grading
    from cnnkit.nbtools import NOTEBOOKS_DIR

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
    grd.add_argument("--timeout", type=float, default=60, help="seconds per answer or test cell (default 60)")
    grd.add_argument("--context-timeout", type=float, default=600,
                     help="seconds per instructor cell (default 600)")
    grd.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a notebook parameter, e.g. -p FAST True")
    grd.add_argument("--no-progress", action="store_true")

    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            written = grading.release(args.inputs or [NOTEBOOKS_DIR], args.out, force=args.force)
            print(f"wrote {len(written)} student notebook(s) to {args.out}/")
        else:
            params = {name: grading.parse_parameter(value) for name, value in args.parameter}
            rows = grading.grade(args.submissions, args.out, args.source, jobs=args.jobs, timeout=args.timeout,
                                 context_timeout=args.context_timeout, parameters=params,
                                 progress=not args.no_progress)
            students = len({r.student for r in rows})
            print(f"graded {students} student(s), {len(rows)} exercise result(s): "
                  f"{args.out}/grades.csv and {args.out}/feedback/")
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
