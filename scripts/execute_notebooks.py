"""Execute notebooks in place, top to bottom, in a fresh kernel, in full mode.

This is how the committed notebooks are produced (their outputs are part of
the course). Each executed notebook records the hash of the cnnkit sources it
ran with in ``metadata.cnnkit.source_hash``; tests/test_freshness.py fails when
that hash no longer matches the sources. Usage:

    .venv/bin/python scripts/execute_notebooks.py                 # all of notebooks/
    .venv/bin/python scripts/execute_notebooks.py notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
# The cnnkit of this checkout, whatever is installed: here and in the kernels (they inherit
# the environment), so the recorded hash is the hash of the code the notebook ran with.
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

from cnnkit._sources import source_hash  # noqa: E402


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    sources = source_hash()
    start = time.perf_counter()
    # cwd = notebooks/, as when a student opens the notebook in JupyterLab
    NotebookClient(nb, timeout=timeout, kernel_name=nb.metadata.kernelspec.name,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    if source_hash() != sources:
        raise RuntimeError(f"cnnkit changed while {path.name} was executing; run it again")
    nb.metadata.setdefault("cnnkit", {})["source_hash"] = sources
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
