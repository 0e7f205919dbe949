"""Re-resolve constraints.txt from requirements.txt (make lock).

Resolves for Python 3.10 on manylinux x86-64 (the oldest Python the course
supports, so that one lock also installs on 3.11-3.13), keeping the known-good
torch/torchvision pair from the current constraints.txt. Needs network access.
torch's own CUDA packages are left out: torch pins them exactly itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "3.10"
SKIP = re.compile(r"^(nvidia-|triton$|cuda-)")
HEADER = """\
# Exact versions of the whole course stack (direct and indirect dependencies).
# Resolved for Python 3.10 so that one lock serves Python 3.10-3.13 on Linux, macOS, Windows;
# torch pins its own CUDA packages (Linux) exactly, so they are left out here;
# packages missing here (platform-specific ones) resolve freely. Regenerate with
#   make lock   (resolves requirements.txt for Python 3.10), then run make test.
# torch/torchvision are a matched pair: torchvision built for another torch fails at import.
"""


def current_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def main() -> int:
    keep = {k: v for k, v in current_pins().items() if k in ("torch", "torchvision")}
    platforms = ["linux_x86_64", "any", "manylinux1_x86_64", "manylinux2010_x86_64",
                 "manylinux2014_x86_64"] + [f"manylinux_2_{n}_x86_64" for n in range(5, 40)]
    with tempfile.TemporaryDirectory() as tmp:
        pair = Path(tmp) / "pair.txt"
        pair.write_text("".join(f"{k}=={v}\n" for k, v in keep.items()))
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--python-version", PYTHON, "--only-binary=:all:", "--target", str(Path(tmp) / "t"),
               "-c", str(pair), "-r", str(ROOT / "requirements.txt"), "--report", str(report)]
        for p in platforms:
            cmd += ["--platform", p]
        subprocess.run(cmd, check=True)
        installed = json.loads(report.read_text())["install"]
    lines = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in installed)
    body = "".join(f"{n}=={v}\n" for n, v in sorted(lines, key=lambda t: t[0].lower())
                   if not SKIP.match(n.lower()))
    (ROOT / "constraints.txt").write_text(HEADER + body)
    print(f"wrote constraints.txt ({body.count(chr(10))} pins); update environment.yml to match "
          "(tests/test_environment.py checks it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
