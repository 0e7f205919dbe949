"""Grading throughput: seconds per submission, today's grader vs the design at a commit.

    python benchmarks/bench_grade.py [-n 6] [-j 2] [--old 9263395] [--only new|old]

Grades N copies of the instructor's solution of notebooks/02_backprop.ipynb with
`python -m cnnkit grade -j J -p FAST True`, once with this working tree's cnnkit
and once with the cnnkit of commit OLD (extracted by `git archive` into a temporary
folder and run with PYTHONPATH pointing there), and prints seconds per submission
and the ratio new/old. Every submission must get full marks in both designs.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "02_backprop.ipynb"


def make_submissions(folder: Path, source: Path, n: int) -> Path:
    subs = folder / "submissions"
    for k in range(n):
        (subs / f"student{k:02d}").mkdir(parents=True)
        shutil.copyfile(source, subs / f"student{k:02d}" / NOTEBOOK)
    return subs


def run_grader(code_root: Path, subs: Path, out: Path, jobs: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(code_root), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg", CNNKIT_DEVICE="cpu")
    cmd = [sys.executable, "-m", "cnnkit", "grade", str(subs), "--out", str(out), "-j", str(jobs),
           "-p", "FAST", "True", "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code_root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"grader at {code_root} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    with open(out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lost = [r for r in rows if r["status"] != "passed"]
    if lost or not rows:
        raise RuntimeError(f"the solution did not get full marks at {code_root}: {lost or 'no rows'}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=6, help="submissions (copies of the solution)")
    parser.add_argument("-j", type=int, default=2, help="grader jobs")
    parser.add_argument("--old", default="9263395", help="commit of the design to compare with")
    parser.add_argument("--only", choices=["new", "old"], default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        tmp = Path(tmp)
        subs = make_submissions(tmp, ROOT / "notebooks" / NOTEBOOK, args.n)
        designs = {"new": ROOT}
        if args.only != "new":
            old = tmp / "old"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            designs["old"] = old
        for name in ("old", "new"):
            if name not in designs or (args.only and args.only != name):
                continue
            seconds = run_grader(designs[name], subs, tmp / f"grades-{name}", args.j)
            results[name] = seconds / args.n
            print(f"{name:>3}: {seconds:7.1f} s for {args.n} submissions, -j {args.j}: "
                  f"{results[name]:.2f} s per submission", flush=True)
    if len(results) == 2:
        print(f"ratio new/old: {results['new'] / results['old']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
