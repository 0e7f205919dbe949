"""The pinned stack: constraints.txt, environment.yml and pyproject agree."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pins(path):
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_torch_pair_is_the_known_good_one():
    c = pins(ROOT / "constraints.txt")
    assert c["torch"] == "2.14.1" and c["torchvision"] == "0.29.1"


def test_environment_yml_lists_the_same_versions_as_constraints():
    c = pins(ROOT / "constraints.txt")
    env = pins(ROOT / "environment.yml")
    required = {line.strip().lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    missing = sorted(name for name in required if name not in env)
    assert not missing, f"environment.yml lacks direct dependencies {missing}"
    differ = {k: (v, c.get(k)) for k, v in env.items() if k != "python" and c.get(k) != v}
    assert not differ, f"environment.yml and constraints.txt disagree (env, constraints): {differ}"


def test_every_direct_dependency_is_pinned():
    c = pins(ROOT / "constraints.txt")
    required = [line.strip().lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert [r for r in required if r not in c] == []


def test_installed_versions_are_the_pinned_ones():
    """What make test runs against is what constraints.txt says."""
    from importlib.metadata import PackageNotFoundError, version
    c = pins(ROOT / "constraints.txt")
    wrong = {}
    for name in ("torch", "torchvision", "numpy", "matplotlib", "papermill", "nbval", "jupyterlab"):
        try:
            got = version(name).split("+")[0]
        except PackageNotFoundError:
            pytest.skip(f"{name} not installed")
        if got != c[name]:
            wrong[name] = (got, c[name])
    assert not wrong, f"installed vs pinned: {wrong} (run `make setup` again)"


def test_cnnkit_declares_loose_lower_bounds():
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    assert "==" not in deps, "cnnkit itself must not pin exact versions (it runs on older torch too)"
    assert '"torch>=' in deps


def test_course_kernel_is_registered():
    """make setup registers the kernel the notebooks ask for (metadata kernelspec cnn-course)."""
    from jupyter_client.kernelspec import KernelSpecManager
    specs = KernelSpecManager().find_kernel_specs()
    assert "cnn-course" in specs, f"kernel cnn-course not registered (found {sorted(specs)}); run make setup"
