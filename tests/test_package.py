"""The package as a whole: `import cnnkit` stays light, importing plot changes no matplotlib
setting, every lesson module is short and names its notebook."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnnkit"
# The lesson code a student reads (the checks and the instructor tools live apart).
LESSON_MODULES = ["core.py", "autograd.py", "norm.py", "init.py", "data.py", "plot.py", "tta.py", "transfer.py",
                  "pretrained.py", "train.py", "batches.py", "checkpoint.py", "lr_finder.py", "monitor.py",
                  "models/__init__.py", "models/classic.py", "models/resnet.py", "models/efficientnet.py",
                  "models/profile.py"]


def run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MPLBACKEND", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_cnnkit_imports_neither_matplotlib_nor_torchvision():
    out = run_python("import sys, cnnkit\n"
                     "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torchvision')))")
    assert out == "[]"


def test_names_of_the_package_still_resolve_on_first_use():
    out = run_python("import cnnkit\n"
                     "print(cnnkit.fit is cnnkit.train.fit, cnnkit.History is cnnkit.train.History,\n"
                     "      cnnkit.conv.__name__, cnnkit.check.__name__, cnnkit.models.resnet18.__module__,\n"
                     "      'plot' in dir(cnnkit), hasattr(cnnkit, 'no_such_thing'))")
    assert out == "True True cnnkit.conv cnnkit.check cnnkit.models.resnet True False"


@pytest.mark.parametrize("name", ["data", "scenes", "detect", "conv", "pooling", "check", "train", "models"])
def test_submodule_imports_first_in_a_fresh_process(name):
    """No circular imports: each of the modules that import one another can be imported first."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", f"import cnnkit.{name}"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_importing_plot_changes_no_matplotlib_setting():
    # rcParams["backend"] is left out: reading it resolves the backend, which imports pyplot.
    out = run_python("import matplotlib, sys\n"
                     "def settings():\n"
                     "    return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != 'backend'}\n"
                     "before = settings()\n"
                     "import cnnkit.plot\n"
                     "print(settings() == before, 'matplotlib.pyplot' in sys.modules)")
    assert out == "True False"


@pytest.mark.parametrize("module", LESSON_MODULES)
def test_every_lesson_module_is_short_and_names_its_notebook(module):
    path = PACKAGE / module
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 410, f"{module} has {len(lines)} lines: split it (one topic, one sitting)"
    doc = ast.get_docstring(ast.parse("\n".join(lines)))
    named = re.findall(r"notebooks/(\d\d_\w+)\.ipynb", doc or "")
    assert named, f"{module}'s docstring names no notebook (See: notebooks/NN_....ipynb)"
    for name in named:
        assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), f"{module} names a missing notebook {name}"


def test_train_names_the_training_lesson():
    import cnnkit.train
    assert "See: notebooks/05_training.ipynb" in cnnkit.train.__doc__
