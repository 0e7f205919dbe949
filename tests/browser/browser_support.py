"""What the browser tests share: paths, Debian's chromium and its flags, the page's console log."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = ROOT / "build" / "browser"

# Debian's chromium, headless; no sync, updates or background traffic of its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail("no chromium found: install Debian's package (apt-get install chromium; "
                    ".ci/run does it as root) or set CHROMIUM=/path/to/chromium", pytrace=False)
    return path


class ConsoleLog:
    """The page's console errors and uncaught exceptions, for failure messages."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("requestfailed", lambda req: self.errors.append(f"request failed: {req.url[:120]} "
                                                                 f"({req.failure})"))

    def report(self) -> str:
        if not self.errors:
            return "no console errors"
        return "console errors:\n  " + "\n  ".join(self.errors[-20:])
