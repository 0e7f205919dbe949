"""Notebook tooling shared by the tests and the instructor tools.

    run_notebook("notebooks/01_convolutions.ipynb", parameters={"FAST": True})

Parameters are checked against the notebook's ``parameters`` cell before
anything runs: papermill itself only warns about an unknown name, which would
let a typo like ``fast=True`` silently run the slow notebook.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

__all__ = ["notebook_parameters", "parameters_from_source", "run_notebook", "parameters_cell", "NOTEBOOKS_DIR"]

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent.parent / "notebooks"


def _read(path):
    import nbformat
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {path} does not exist")
    return nbformat.read(path, as_version=4)


def parameters_cell(nb):
    """The one code cell tagged `parameters`; ValueError if there is none or several."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"a course notebook needs exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def notebook_parameters(path) -> dict:
    """Names and default values assigned in the notebook's `parameters` cell."""
    return parameters_from_source(parameters_cell(_read(path)).source)


def run_notebook(path, output_path=None, parameters: dict | None = None,
                 cell_timeout: int | None = 600, kernel_name: str | None = None) -> tuple[object, float]:
    """Execute a notebook with papermill in a fresh kernel; returns (executed notebook, seconds).

    Unknown parameter names raise ValueError before anything runs; an error in
    any cell raises papermill's PapermillExecutionError naming the cell.
    """
    import papermill

    path = Path(path)
    parameters = dict(parameters or {})
    known = notebook_parameters(path)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {path.name}; "
                         f"its parameters cell defines {sorted(known)}")
    output_path = Path(output_path) if output_path else path.with_name(path.stem + ".out.ipynb")
    start = time.perf_counter()
    nb = papermill.execute_notebook(
        str(path), str(output_path), parameters=parameters, cwd=str(path.parent),
        kernel_name=kernel_name, execution_timeout=cell_timeout, progress_bar=False,
    )
    return nb, time.perf_counter() - start


def parameters_from_source(source: str) -> dict:
    """Names and literal values assigned in a parameters cell's source."""
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values
