"""Execute notebooks in place, top to bottom, in a fresh kernel, in full mode.

This is how the committed notebooks are produced (their outputs are part of
the course). Usage:

    .venv/bin/python scripts/execute_notebooks.py                 # all of notebooks/
    .venv/bin/python scripts/execute_notebooks.py notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    # cwd = notebooks/, as when a student opens the notebook in JupyterLab
    NotebookClient(nb, timeout=timeout, kernel_name=nb.metadata.kernelspec.name,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        print(f"  done in {execute(path, args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
