"""A tiny instructor notebook with real checks, and helpers to build submissions from it."""

from pathlib import Path

import nbformat

TINY = "90_tiny.ipynb"
TINY_IDS = ["sigmoid-grad", "mlp-params", "path-sum"]
KERNEL = {"name": "cnn-course", "display_name": "Python (CNN course)", "language": "python"}


def _answer(gid, source):
    return nbformat.v4.new_code_cell(source, metadata={"nbgrader": {
        "grade": False, "grade_id": gid, "locked": False, "schema_version": 3, "solution": True, "task": False}})


def _test(gid, source, points=2):
    return nbformat.v4.new_code_cell(source, metadata={"nbgrader": {
        "grade": True, "grade_id": gid + "-tests", "locked": True, "points": points, "schema_version": 3,
        "solution": False, "task": False}})


def tiny_notebook():
    """Three exercises of 02_backprop with their real checks; context cells that run in milliseconds."""
    cells = [
        nbformat.v4.new_markdown_cell("# A tiny course notebook"),
        nbformat.v4.new_code_cell("FAST = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import math\n\nimport cnnkit\nSTEPS = 1 if FAST else 2"),
        _answer("sigmoid-grad", "def sigmoid_grad(x):\n    ### BEGIN SOLUTION\n    s = 1.0 / (1.0 + math.exp(-x))\n"
                                "    return s * (1.0 - s)\n    ### END SOLUTION"),
        _test("sigmoid-grad", "cnnkit.check.sigmoid_grad(sigmoid_grad)\n### BEGIN HIDDEN TESTS\n"
                              "cnnkit.check.sigmoid_grad(sigmoid_grad, n=300, seed=3)\n### END HIDDEN TESTS"),
        nbformat.v4.new_markdown_cell("Counting parameters."),
        nbformat.v4.new_code_cell("sizes = [784, 128, 10]\nprint(sizes)"),
        _answer("mlp-params", "def count_mlp_params(sizes):\n    ### BEGIN SOLUTION\n"
                              "    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))\n"
                              "    ### END SOLUTION"),
        _test("mlp-params", "cnnkit.check.mlp_params(count_mlp_params)\n### BEGIN HIDDEN TESTS\n"
                            "cnnkit.check.mlp_params(count_mlp_params, n=100, seed=4)\n### END HIDDEN TESTS"),
        _answer("path-sum", "def df_dy(x, y):\n    ### BEGIN SOLUTION\n    s = x * y + y\n"
                            "    d_tanh = 1 - math.tanh(s) ** 2\n    return d_tanh * x + d_tanh\n    ### END SOLUTION"),
        _test("path-sum", "cnnkit.check.path_sum(df_dy)\n### BEGIN HIDDEN TESTS\n"
                          "cnnkit.check.path_sum(df_dy, n=200, seed=9)\n### END HIDDEN TESTS"),
        nbformat.v4.new_code_cell("print('done')"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNEL)
    return nb


def write_source(folder: Path) -> Path:
    """The tiny instructor notebook written into `folder` (the --source of a grading run)."""
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(tiny_notebook(), folder / TINY)
    return folder


def answer_cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
