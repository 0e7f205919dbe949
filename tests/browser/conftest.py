"""Browser tests: Debian's chromium driven by Playwright (nothing downloaded).

These tests run only when asked for by path (`make test-browser`, i.e.
`pytest tests/browser`); `pytest tests` (`make test`) leaves them out.
Screenshots go to build/browser/ (printed at the end of the run).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .browser_support import CHROMIUM_ARGS, SHOTS, chromium_path

HERE = Path(__file__).resolve().parent


def _asked_for(config) -> bool:
    """True when the command line names tests/browser (or something inside it)."""
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if not _asked_for(config):
        return True
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _asked_for(config) and SHOTS.is_dir():
        terminalreporter.write_line(f"browser screenshots: {SHOTS}/")


@pytest.fixture(scope="session")
def shots() -> Path:
    """An empty build/browser/ for this run's screenshots."""
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    print(f"\nbrowser screenshots: {SHOTS}/")
    return SHOTS


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
