"""A fingerprint of the cnnkit sources, so committed notebook outputs cannot go stale.

``scripts/execute_notebooks.py`` stores ``source_hash()`` in each notebook's
metadata (``metadata.cnnkit.source_hash``) when it executes the notebook;
``tests/test_freshness.py`` fails when the stored hash differs from today's.

Hashed: every ``cnnkit/**/*.py`` except ``cnnkit/instructor/`` (instructor tools
never run inside a notebook), in sorted path order, each as its relative POSIX
path and its contents with line endings normalised to ``\\n`` (so a Windows
checkout hashes the same).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["source_files", "source_hash", "PACKAGE_DIR"]

PACKAGE_DIR = Path(__file__).resolve().parent
EXCLUDED = ("instructor",)   # sub-packages whose code never runs in a notebook


def source_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The hashed files: cnnkit/**/*.py minus the excluded sub-packages, sorted by relative path."""
    files = [p for p in package_dir.rglob("*.py")
             if p.relative_to(package_dir).parts[0] not in EXCLUDED
             and "__pycache__" not in p.parts]
    return sorted(files, key=lambda p: p.relative_to(package_dir).as_posix())


def source_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 (hex) over the relative paths and newline-normalised contents of source_files()."""
    digest = hashlib.sha256()
    for path in source_files(package_dir):
        text = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(text + b"\0")
    return digest.hexdigest()
