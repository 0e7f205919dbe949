"""JupyterLab in a real browser, as a student meets it after `make lab`.

JupyterLab starts as `make lab` starts it (the course kernel, no browser window, a token,
--allow-root as root) on a free port, serving a copy of 01_convolutions.ipynb in a
temporary folder with autosave off, so the repository's notebook is never touched.
Chromium then: checks the kernel name, runs the cells up to the first graded exercise
(a figure and the ✔ line), types a wrong answer (the ✘ line with its hint, no traceback),
and trains a tiny model for one epoch (the progress bar as a widget, the live curve).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from .browser_support import ROOT, ConsoleLog

NOTEBOOK = "01_convolutions.ipynb"
KERNEL_DISPLAY_NAME = "Python (CNN course)"
RUN_TIMEOUT_MS = 120_000            # importing torch and the first check on a busy 2-core machine

# JupyterLab settings for the test session only: never save, render every cell, no news.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}

# A scratch cell: a tiny model on a few real digits, one short epoch.
FIT_CELL = ("tiny = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))\n"
            "few = torch.utils.data.Subset(cnnkit.data.SmallMNIST(train=True), range(256))\n"
            "history = cnnkit.fit(tiny, few, few, epochs=1, batch_size=32)")


# Counts progress-bar widgets rendered anywhere in the page (window.__progressWidgets).
PROGRESS_OBSERVER = """() => {
  window.__progressWidgets = 0;
  const selector = '.widget-progress, .jupyter-widgets .progress, .widget-hprogress';
  new MutationObserver(records => {
    for (const record of records)
      for (const node of record.addedNodes)
        if (node.nodeType === 1 && (node.matches(selector) || node.querySelector(selector)))
          window.__progressWidgets += 1;
  }).observe(document.body, {childList: true, subtree: true});
}"""


def first_exercise(path: Path) -> tuple[int, int, str]:
    """(answer cell index, check cell index, exercise id) of the notebook's first graded exercise."""
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells):
        if cell.metadata.get("nbgrader", {}).get("solution"):
            check = cells[i + 1].metadata.get("nbgrader", {})
            assert check.get("grade"), f"{path.name}: the answer cell {i} is not followed by its check cell"
            return i, i + 1, cell.metadata["nbgrader"]["grade_id"]
    raise AssertionError(f"{path.name} has no graded exercise")


def answer_name(path: Path, index: int) -> str:
    """The function the first answer cell defines (`def NAME(` on its first line)."""
    first = nbformat.read(path, as_version=4).cells[index].source.splitlines()[0]
    assert first.startswith("def "), f"unexpected answer cell: {first!r}"
    return first[len("def "):first.index("(")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the notebook; yields (base url, token, notebook path)."""
    work = tmp_path_factory.mktemp("lab")
    notebooks, settings = work / "notebooks", work / "settings"
    notebooks.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, notebooks / NOTEBOOK)
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    # `make lab`: $(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", f"--notebook-dir={notebooks}",
               "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={work / 'workspaces'}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1", CNNKIT_DEVICE="cpu", JUPYTER_CONFIG_DIR=str(work / "config"))
    env.pop("MPLBACKEND", None)               # figures must go inline, as for a student
    log = open(work / "jupyter.log", "w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(work / 'jupyter.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token, notebooks / NOTEBOOK
    finally:
        server.terminate()             # shuts its kernels down too
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def notebook(lab, browser, shots):
    """The notebook open in JupyterLab, its kernel started and idle; yields (page, console log)."""
    base, token, _ = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    console = ConsoleLog(page)
    page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
    n_cells = len(nbformat.read(lab[2], as_version=4).cells)
    with step(page, console, shots, "open"):
        page.wait_for_function("n => document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')"
                               ".length === n", arg=n_cells, timeout=RUN_TIMEOUT_MS)
        # the status bar reads "No Kernel | Initializing", then "<kernel> | Idle" once it is ready
        page.wait_for_function("() => Array.from(document.querySelectorAll('.jp-StatusBar-Widget'))"
                               ".some(e => /\\S.*\\| Idle/.test(e.textContent) && !/No Kernel/.test(e.textContent))",
                               timeout=RUN_TIMEOUT_MS)
    yield page, console
    context.close()


@contextmanager
def step(page, console: ConsoleLog, shots: Path, name: str):
    """Run one step; on failure save a screenshot and fail with the page's console errors."""
    try:
        yield
    except Exception as exc:
        page.screenshot(path=str(shots / f"lab-FAILED-{name}.png"))
        pytest.fail(f"step {name!r} failed: {exc}\n{console.report()}\n"
                    f"screenshot: {shots / f'lab-FAILED-{name}.png'}", pytrace=False)


def cell(page, index: int):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def prompt(page, index: int) -> str:
    return cell(page, index).locator(".jp-InputPrompt").inner_text()


def wait_done(page, index: int, before: str = "", timeout: int = RUN_TIMEOUT_MS) -> None:
    """Wait until code cell `index` has run: its prompt shows a number (not '*'), other than `before`."""
    element = cell(page, index).locator(".jp-InputPrompt").element_handle()
    page.wait_for_function("([el, before]) => /\\[\\d+\\]/.test(el.textContent) && el.textContent !== before",
                           arg=[element, before], timeout=timeout)


def test_kernel_is_the_course_kernel(notebook, shots):
    page, console = notebook
    with step(page, console, shots, "kernel"):
        name = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName").first
        assert KERNEL_DISPLAY_NAME in name.inner_text(timeout=10_000), name.inner_text()
        assert page.locator(".jp-Dialog").count() == 0, "JupyterLab asks to select a kernel"
    page.screenshot(path=str(shots / "lab-1-kernel.png"))


def test_run_up_to_first_exercise(notebook, lab, shots):
    page, console = notebook
    answer, check, exercise = first_exercise(lab[2])
    with step(page, console, shots, "clear-outputs"):
        # Start from a blank notebook, so every output checked below comes from this kernel.
        page.locator(".lm-MenuBar-itemLabel", has_text="Edit").click()
        page.locator(".lm-Menu-itemLabel", has_text="Clear Outputs of All Cells").click()
        page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel .jp-OutputArea-output')",
                               timeout=10_000)
    with step(page, console, shots, "run-to-first-exercise"):
        cell(page, 0).click()
        page.keyboard.press("Escape")                        # command mode
        for _ in range(check + 1):                          # Shift+Enter: run, move to the next cell
            page.keyboard.press("Shift+Enter")
        wait_done(page, check)
        outputs = cell(page, check).locator(".jp-OutputArea-output")
        text = outputs.inner_text()
        assert "✔" in text and "✘" not in text, f"the check of {exercise!r} did not pass: {text}"
        figures = page.locator(".jp-Notebook .jp-OutputArea-output img, .jp-Notebook .jp-OutputArea-output canvas")
        assert figures.count() > 0, "no figure in any output above the first exercise"
        widths = figures.evaluate_all("els => els.map(e => e.naturalWidth ?? e.width)")
        assert all(w > 0 for w in widths), f"a figure did not load: widths {widths}"
        # the screenshot: the last figure's cell at the top, the ✔ line below it
        figures.last.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
    page.screenshot(path=str(shots / "lab-2-check-passed.png"))


def test_wrong_answer_shows_the_hint(notebook, lab, shots):
    page, console = notebook
    answer, check, _ = first_exercise(lab[2])
    name = answer_name(lab[2], answer)
    with step(page, console, shots, "wrong-answer"):
        before = prompt(page, check)
        editor = cell(page, answer).locator(".cm-content")
        editor.click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(f"def {name}(image, kernel): return image[:2, :2] * 0")
        page.keyboard.press("Shift+Enter")                  # runs the answer, selects the check cell
        page.keyboard.press("Shift+Enter")                  # runs the check
        wait_done(page, check, before)
        text = cell(page, check).locator(".jp-OutputArea").inner_text()
        assert "✘" in text, text
        assert "hint" in text.lower(), f"no hint in: {text}"
        for noise in ("Traceback", "ExerciseFailed", "AssertionError", "----> "):
            assert noise not in text, f"a traceback instead of a message: {text}"
        cell(page, check).scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "lab-3-wrong-answer.png"))


def test_fit_shows_progress_bar_and_live_curve(notebook, lab, shots):
    page, console = notebook
    _, check, _ = first_exercise(lab[2])
    with step(page, console, shots, "fit"):
        cell(page, check).click()
        page.keyboard.press("Escape")
        page.keyboard.press("b")                            # a new cell below the check
        page.keyboard.press("Enter")
        for i, line in enumerate(FIT_CELL.splitlines()):
            if i:
                page.keyboard.press("Enter")
            page.keyboard.type(line)
        # The bar is a widget while the epoch runs and becomes its final text line when fit
        # closes it (monitor._TextWhenClosed), so a short epoch may end before any poll sees
        # the widget: an observer records every rendered progress widget from now on.
        page.evaluate(PROGRESS_OBSERVER)
        page.keyboard.press("Shift+Enter")
        scratch = check + 1
        wait_done(page, scratch)
        out = cell(page, scratch).locator(".jp-OutputArea")
        out.locator("img").first.wait_for(timeout=30_000)    # the live curve after the epoch
        assert page.evaluate("() => window.__progressWidgets") > 0, "no progress-bar widget was rendered"
        text = out.inner_text()
        for stuck in ("Error displaying widget", "Loading widget..."):
            assert stuck not in text, f"the progress bar did not render: {text}"
        assert "100%" in text and "8/8" in text, f"no finished bar (256 digits / 32 = 8 batches): {text}"
        assert "Error" not in text and "Traceback" not in text, text
        cell(page, scratch).scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "lab-4-fit.png"))


def test_repository_notebook_untouched(lab):
    """The test worked on a copy with autosave off; the copy was not saved either."""
    _, _, copy = lab
    assert copy.read_bytes() == (ROOT / "notebooks" / NOTEBOOK).read_bytes()
