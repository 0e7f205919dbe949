"""One sandbox per submission: a fresh folder, a read-only course copy, limits and isolation.

The student's kernel gets

- a fresh temporary folder holding only the student release of the notebook being
  graded, a read-only copy of `cnnkit` (without these instructor tools, and with every
  check's `reference`/`compare` replaced by a stub that raises) and of `data/`,
  and its own HOME, IPYTHONDIR, JUPYTER_* and MPLCONFIGDIR (so an IPython startup file
  or a patched `cnnkit` dies with the submission);
- a cleaned environment (nothing of the grader's but thread counts and the device);
- resource limits (address space, CPU time, file size, processes, no core files);
- its own session, and a per-job token in its environment by which every descendant
  is found and killed before the results are written (a double fork + `setsid` too);
- the strongest isolation the machine allows, reported in the grading summary:
  ``bubblewrap``   `bwrap` is installed and works: new pid, network, ipc and mount
                   namespaces, no capabilities; the kernel sees only the system, the
                   Python installation and its sandbox (no instructor notebooks, no
                   other submissions, no output folder, no network);
  ``uid``          run as root without bwrap: the kernel runs as an unprivileged user
                   (nobody), which cannot read the course tree's 0700 parts or write
                   anywhere but its sandbox; needs a Python installation nobody can read;
  ``process``      none of the above: limits, session, clean environment and a
                   throwaway folder only; student code has the grader's permissions.

See: README.md, "For instructors" (the threat model)
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "Sandbox", "isolation_level", "kill_tagged", "remove_left", "TOKEN_VAR", "LEVELS"]

TOKEN_VAR = "CNNKIT_GRADE_TOKEN"
LEVELS = ("bubblewrap", "uid", "process")
NOBODY = 65534
COURSE = Path(__file__).resolve().parent.parent.parent         # the folder holding cnnkit/ and data/
PASS_THROUGH = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CNNKIT_DEVICE", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one kernel (setrlimit in the kernel's preexec)."""
    address_space: int = 16 << 30      # bytes of virtual memory (torch maps a lot; 16 GiB)
    cpu_seconds: int = 1800            # of CPU time over the kernel's whole life
    file_size: int = 256 << 20         # largest file the kernel may write
    processes: int = 512               # per user (threads count): effective under `uid` only


def _bwrap_works() -> bool:
    exe = shutil.which("bwrap")
    if not exe:
        return False
    import subprocess
    try:
        proc = subprocess.run([exe, "--die-with-parent", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
                               "--proc", "/proc", "--dev", "/dev", "--cap-drop", "ALL", "true"],
                              capture_output=True, timeout=20)
        return proc.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _readable_by_others(path: Path) -> bool:
    """Every folder above `path` searchable and `path` itself readable by any user."""
    try:
        path = path.resolve()
        for parent in [path, *path.parents]:
            mode = os.stat(parent).st_mode
            need = stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
            if not mode & need:
                return False
        return True
    except OSError:
        return False


def isolation_level(requested: str | None = None) -> tuple[str, str]:
    """(level, reason): the strongest isolation available, or `requested` if it is available."""
    requested = requested or os.environ.get("CNNKIT_GRADE_ISOLATION") or None
    if requested is not None and requested not in LEVELS:
        raise ValueError(f"isolation must be one of {LEVELS}, got {requested!r}")
    order = LEVELS[LEVELS.index(requested):] if requested else LEVELS
    reasons = []
    for level in order:
        if level == "bubblewrap":
            if _bwrap_works():
                return level, "bwrap: new pid/net/ipc/mount namespaces, no capabilities"
            reasons.append("bwrap is not installed or cannot create namespaces here")
        elif level == "uid":
            if os.geteuid() != 0:
                reasons.append("not running as root, so the kernel cannot switch to an unprivileged user")
                continue
            prefixes = {Path(sys.executable), Path(sys.prefix), Path(sys.base_prefix)}
            unreadable = sorted(str(p) for p in prefixes if not _readable_by_others(p))
            if not unreadable:
                return level, f"kernel runs as uid {NOBODY}"
            reasons.append(f"uid {NOBODY} cannot read the Python installation ({unreadable[0]})")
        else:
            return level, "limits and a throwaway folder only; " + "; ".join(reasons)
    raise AssertionError("unreachable")


def kill_tagged(token: str, prefix: bool = False) -> int:
    """SIGKILL every process whose environment has TOKEN_VAR=token (or starting with it); returns how many."""
    needle = f"{TOKEN_VAR}={token}".encode()
    match = (lambda var: var.startswith(needle)) if prefix else (lambda var: var == needle)
    killed = 0
    for _ in range(3):                  # a process may fork while we scan: repeat until none is left
        found = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as fh:
                    env = fh.read()
            except OSError:
                continue
            if any(match(var) for var in env.split(b"\0")):
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                    found += 1
                except OSError:
                    pass
        killed += found
        if not found:
            break
        time.sleep(0.05)
    return killed


GRADER_ONLY = ("reference", "compare")     # Check methods the grader runs itself: stubbed in the kernel's copy
STUB = "the reference values and verdicts are computed by the grader, not in this kernel"


def _without_grader_code(source: str, filename: str) -> str:
    """`source` with the body of every class's reference/compare replaced by a raise, the private
    helpers of a lesson's module that only they used removed, and interactive checks turned into
    a note (the grader probes the answers itself)."""
    import ast
    tree = ast.parse(source, filename)
    raise_stub = ast.parse(f"raise RuntimeError({STUB!r})").body
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in GRADER_ONLY:
                    item.body = list(raise_stub)
    for item in tree.body:
        if isinstance(item, ast.FunctionDef) and item.name == "interactive":
            item.body = ast.parse("print(f'{check.name}: checked by the grader')").body
    if not Path(filename).name.startswith("_"):    # a lesson's module: drop the private helpers left unused
        while True:
            unused = [item for item in tree.body if isinstance(item, ast.FunctionDef) and item.name.startswith("_")
                      and item.name not in {n.id for other in tree.body if other is not item
                                            for n in ast.walk(other) if isinstance(n, ast.Name)}]
            if not unused:
                break
            tree.body = [item for item in tree.body if item not in unused]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _build_course(root: Path) -> None:
    """The kernels' course copy in `root`: cnnkit/ without the instructor tools and without the
    checks' reference code (an answer cannot hand back what it cannot compute), and data/."""
    import compileall
    shutil.copytree(COURSE / "cnnkit", root / "cnnkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "instructor"), symlinks=False)
    for path in sorted((root / "cnnkit" / "check").glob("*.py")):
        path.write_text(_without_grader_code(path.read_text(encoding="utf-8"), str(path)), encoding="utf-8")
    if (COURSE / "data").is_dir():
        shutil.copytree(COURSE / "data", root / "data", symlinks=False)
    compileall.compile_dir(root / "cnnkit", quiet=1)   # kernels start faster with bytecode


def _make_read_only(root: Path) -> None:
    for folder, dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)


_SHARED: list[Path] = []


def _remove_read_only(path: Path) -> None:
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755, follow_symlinks=False)
    os.chmod(path, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def remove_left(token: str | None, worker_pid: int | None = None) -> None:
    """Remove the sandbox of the job `token` and the course copy of a worker, left when it was killed."""
    temp = Path(tempfile.gettempdir())
    paths = list(temp.glob(f"cnnkit-grade-{token}-*")) if token else []
    paths += list(temp.glob(f"cnnkit-course-{worker_pid}-*")) if worker_pid else []
    for path in paths:
        _remove_read_only(path)


def shared_course() -> Path:
    """This process's read-only, precompiled kernel copy of cnnkit/ and data/ (built once, removed at exit).

    Shared by the kernels of one worker only where they cannot write to it (bubblewrap binds it
    read-only; `nobody` does not own it); at the `process` level each sandbox gets its own copy.
    """
    if not _SHARED:
        import atexit
        root = Path(tempfile.mkdtemp(prefix=f"cnnkit-course-{os.getpid()}-"))   # see remove_left
        _build_course(root)
        _make_read_only(root)
        _SHARED.append(root)
        atexit.register(_remove_read_only, root)
    return _SHARED[0]


@dataclass
class Sandbox:
    """The folders of one submission's kernel; `close()` removes them."""
    level: str
    limits: Limits = field(default_factory=Limits)
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    def __post_init__(self):
        self.root = Path(tempfile.mkdtemp(prefix=f"cnnkit-grade-{self.token}-"))   # found again by remove_left
        os.chmod(self.root, 0o755)
        self.notebooks = self.root / "notebooks"           # the kernel's working folder
        self.home = self.root / "home"
        self.work = self.root / "work"                     # cases in, results out
        self.tmp = self.root / "tmp"
        if self.level == "process":                        # the kernel could write to a shared copy
            self.course = self.root / "course"             # read-only: cnnkit/ and data/
            _build_course(self.course)
            _make_read_only(self.course)
        else:
            self.course = shared_course()
        for folder in (self.notebooks, self.home, self.work, self.tmp):
            folder.mkdir(parents=True)
            if self.level == "uid":
                os.chown(folder, NOBODY, NOBODY)
        self.work_fd = os.open(self.work, os.O_RDONLY | os.O_DIRECTORY)   # survives a rename of `work`

    def env(self, job_token: str) -> dict:
        """The kernel's whole environment (nothing else of the grader's is passed on)."""
        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        home = str(self.home)
        env.update(
            PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            HOME=home, USERPROFILE=home, TMPDIR=str(self.tmp),
            IPYTHONDIR=f"{home}/.ipython", MPLCONFIGDIR=f"{home}/.matplotlib",
            JUPYTER_CONFIG_DIR=f"{home}/.jupyter", JUPYTER_DATA_DIR=f"{home}/.local/share/jupyter",
            JUPYTER_RUNTIME_DIR=f"{home}/.local/share/jupyter/runtime", JUPYTER_PLATFORM_DIRS="1",
            XDG_CACHE_HOME=f"{home}/.cache", XDG_CONFIG_HOME=f"{home}/.config",
            PYTHONPATH=str(self.course), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
            PYTHONWARNINGS="ignore", MPLBACKEND="Agg", TQDM_DISABLE="1", PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        env[TOKEN_VAR] = job_token
        return env

    def command(self, argv: list[str]) -> list[str]:
        """`argv` wrapped for the isolation level (bwrap's namespaces and mounts, or as is)."""
        if self.level != "bubblewrap":
            return argv
        cmd = [shutil.which("bwrap"), "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc",
               "--unshare-uts", "--unshare-cgroup-try", "--new-session", "--cap-drop", "ALL"]
        system = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"]
        python = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
        python |= {str(Path(p).resolve()) for p in sys.path
                   if p and Path(p).is_dir() and "site-packages" in p}
        for path in system + sorted(python):
            if os.path.lexists(path):
                cmd += ["--ro-bind", path, path]
        for link in {sys.prefix, str(Path(sys.executable).parent)}:   # a venv reached through a symlink
            if Path(link).resolve() != Path(link) and Path(link).is_dir():
                cmd += ["--ro-bind", str(Path(link).resolve()), link]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--bind", str(self.root), str(self.root),
                "--ro-bind", str(self.course), str(self.course),
                "--chdir", str(self.notebooks), "--"]
        return cmd + argv

    def preexec(self):
        """The function run in the kernel's process before exec: limits, then the user."""
        limits, level = self.limits, self.level

        def setup():
            for which, value in ((resource.RLIMIT_AS, limits.address_space),
                                 (resource.RLIMIT_CPU, limits.cpu_seconds),
                                 (resource.RLIMIT_FSIZE, limits.file_size),
                                 (resource.RLIMIT_NPROC, limits.processes),
                                 (resource.RLIMIT_CORE, 0)):
                try:
                    resource.setrlimit(which, (value, value))
                except (ValueError, OSError):
                    pass
            if level == "uid":
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
        return setup

    def close(self) -> None:
        try:
            os.close(self.work_fd)
        except OSError:
            pass
        _remove_read_only(self.root)
