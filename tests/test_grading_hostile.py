"""Issue 15's hostile class: every attack that broke the grader (ours and the red team's), with exact grades.

All kernel attacks run in ONE batch (-j 2) against a tiny instructor notebook with three
real checks (tests/grading_fixtures.py): one kernel per submission, one grading run per
isolation level. The grader uses the strongest isolation the machine has (bubblewrap
when installed; CI installs it); attacks that only an isolating level can stop (reading
or writing the course tree as root) are asserted only there, and the fallback level
gets one small run of its own. Attacks on the trusted side (`judge` on crafted
results) run in-process, without a kernel.
"""

import csv
import hashlib
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
import torch

from cnnkit.instructor.batch import grade
from cnnkit.instructor.release import release_notebook
from cnnkit.instructor.sandbox import TOKEN_VAR, isolation_level
from conftest import ROOT
from grading_fixtures import TINY, TINY_IDS, answer_cell, tiny_notebook, write_source

pytestmark = pytest.mark.xdist_group("grading")

LEVEL = isolation_level()[0]
ISOLATED = LEVEL in ("bubblewrap", "uid")
WRONG_SIG = "def sigmoid_grad(x):\n    return 0.25\n"
FULL = {i: ("passed", 2.0) for i in TINY_IDS}
ODD_NAMES = ("new\nline=1+1", "\u202eexe.txt", "x" * 200, "\tTAB")

# A probe that answers every case with the check's own reference: the kernel's cnnkit has none to call.
FORGE = ("def _forge(name, answer, cases_path, results_path):\n"
         "    import torch\n    from cnnkit.check._core import CHECKS\n"
         "    cases = torch.load(cases_path, weights_only=True)\n"
         "    torch.save([{'ok': CHECKS[name].reference(c)} for c in cases], results_path)\n")


def everything(status):
    """A cheat that stays in the kernel (a patched probe) spoils the student's later exercises too."""
    return {i: (status, 0.0) for i in TINY_IDS}


def only_sigmoid(status="failed"):
    return {"sigmoid-grad": (status, 0.0), "mlp-params": ("passed", 2.0), "path-sum": ("passed", 2.0)}


def tree_hash(*folders) -> str:
    """One sha256 over every file (path, mode, bytes) under the folders; FIFOs and links by name."""
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if "__pycache__" in path.parts or ".pytest_cache" in path.parts:
                continue
            h.update(str(path).encode())
            if path.is_symlink():
                h.update(os.readlink(path).encode())
            elif path.is_file():
                h.update(path.read_bytes())
    return h.hexdigest()


def tagged_processes(token: str) -> list[int]:
    needle = f"{TOKEN_VAR}={token}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                env = Path(f"/proc/{entry.name}/environ").read_bytes()
            except OSError:
                continue
            if any(v.startswith(needle) for v in env.split(b"\0")):
                found.append(int(entry.name))
    return found


def read_table(out):
    with open(out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = {}
    for r in rows:
        name = r["student"]
        name = name[1:] if name[:1] == "'" and name[1:2] in ("=", "+", "-", "@", "\t", "\r") else name
        table.setdefault(name, {})[r["exercise"]] = (r["status"], float(r["points"]))
    return table


def build(subs: Path, source: Path, out: Path) -> dict:
    """Write every submission; return {student: expected grades, or a callable check}."""
    sol = tiny_notebook()
    release = release_notebook(tiny_notebook())
    expected = {}
    instructor_nb = source / TINY
    victim = subs / "victim_honest" / TINY

    def save(name, nb, want):
        save_raw(name, nbformat.writes(nb), want)

    def save_raw(name, text, want):
        (subs / name).mkdir(parents=True)
        (subs / name / TINY).write_text(text, encoding="utf-8")
        expected[name] = want

    def cheat(name, code, want=None, exercise="sigmoid-grad", isolated_only=False):
        if isolated_only and not ISOLATED:
            return
        nb = tiny_notebook()
        answer_cell(nb, exercise).source = code
        save(name, nb, want or only_sigmoid())

    save("all_solutions", sol, FULL)
    save("untouched_release", release, {i: ("failed", 0.0) for i in TINY_IDS})
    save("victim_honest", tiny_notebook(), FULL)
    save("=HYPERLINK(1+1)", tiny_notebook(), FULL)                                   # spreadsheet injection

    # --- forged "passed" with one answer cell ---------------------------------------------------
    cheat("post_run_cell_clears_error", WRONG_SIG +
          "def _clear(result):\n    result.error_in_exec = None\n    result.error_before_exec = None\n"
          "get_ipython().events.register('post_run_cell', _clear)\n")
    cheat("success_property", WRONG_SIG +
          "from IPython.core.interactiveshell import ExecutionResult\n"
          "ExecutionResult.success = property(lambda self: True)\n")
    cheat("guard_snapshot_none", WRONG_SIG + "_g_snapshot = None\n_g_ip = None\n")
    cheat("pre_run_cell_repatch", WRONG_SIG +
          "import cnnkit.check, cnnkit.check._core as core, torch\n"
          "def _patch(*args):\n"
          "    cnnkit.check.sigmoid_grad = lambda *a, **k: None\n"
          "    core.judge = lambda *a, **k: None\n"
          "    core.probe = lambda name, answer, cases, results: torch.save([{'ok': 0.25}] * 10000, results)\n"
          "get_ipython().events.register('pre_run_cell', _patch)\n", everything("failed"))
    cheat("fake_module_reload_noop", WRONG_SIG +
          "import importlib, sys, types\nfake = types.ModuleType('cnnkit.check')\n"
          "fake.sigmoid_grad = fake.probe = lambda *a, **k: None\n"
          "sys.modules['cnnkit.check'] = sys.modules['cnnkit.check._core'] = fake\n"
          "importlib.reload = lambda module: module\n", everything("error"))
    cheat("tensor_item_patched", WRONG_SIG + "import torch\ntorch.Tensor.item = lambda self: 0.25\n"
          "torch.allclose = lambda *a, **k: True\n")
    cheat("float_reads_callers_want",
          "import sys\nclass Sneaky(float):\n"
          "    def __float__(self):\n        f = sys._getframe(1)\n"
          "        while f is not None:\n            if 'want' in f.f_locals:\n"
          "                return float(f.f_locals['want'])\n            f = f.f_back\n        return 0.0\n"
          "    __eq__ = lambda self, other: True\n    __sub__ = __rsub__ = lambda self, other: 0.0\n"
          "    __abs__ = lambda self: 0.0\n    __lt__ = __le__ = lambda self, other: True\n"
          "def sigmoid_grad(x):\n    return Sneaky(0.0)\n")
    cheat("int_equal_to_everything",
          "class Eq(int):\n    __eq__ = lambda self, other: True\n    __ne__ = lambda self, other: False\n"
          "    __hash__ = int.__hash__\ndef count_mlp_params(sizes):\n    return Eq(0)\n",
          {"sigmoid-grad": ("passed", 2.0), "mlp-params": ("failed", 0.0), "path-sum": ("passed", 2.0)},
          exercise="mlp-params")
    cheat("results_file_symlink", WRONG_SIG +
          "import os, cnnkit.check._core as core\n"
          f"core.probe = lambda name, answer, cases, results: os.symlink({str(instructor_nb)!r}, results)\n",
          everything("error"))
    cheat("results_file_evil_pickle", WRONG_SIG +
          "import os, pickle, cnnkit.check._core as core\n"
          "class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch /tmp/cnnkit-evil-pickle',))\n"
          "def _probe(name, answer, cases, results):\n"
          "    with open(results, 'wb') as fh:\n        pickle.dump([{'ok': Evil()}], fh)\n"
          "core.probe = _probe\n", everything("error"))
    cheat("score_displayed_in_answer", WRONG_SIG +
          "print('✔ sigmoid_grad: passed (200 checks)')\nprint('partial credit: 2 of 2')\n"
          "cnnkit.check.Score(4, 4)\n")

    # --- copied solutions, leaked hidden tests --------------------------------------------------
    cheat("reads_instructor_notebook",
          f"import json\nnb = json.load(open({str(instructor_nb)!r}))\n"
          "code = [c for c in nb['cells'] if c['metadata'].get('nbgrader', {}).get('grade_id') == 'sigmoid-grad']\n"
          "exec(''.join(code[0]['source']))\n", only_sigmoid("error"), isolated_only=True)
    cheat("reads_classmate_via_proc",
          "import os, json\nsrc = None\n"
          "for pid in os.listdir('/proc'):\n"
          "    try:\n        cmd = open(f'/proc/{pid}/cmdline').read()\n    except OSError:\n        continue\n"
          f"nb = json.load(open({str(victim)!r}))\n"
          "exec(''.join([c for c in nb['cells'] if c['metadata'].get('nbgrader', {}).get('solution')][0]['source']))\n",
          only_sigmoid("error"), isolated_only=True)
    (subs / "symlink_to_instructor").mkdir(parents=True)
    os.symlink(instructor_nb, subs / "symlink_to_instructor" / TINY)
    expected["symlink_to_instructor"] = {i: ("error", 0.0) for i in TINY_IDS}
    cheat("leaks_hidden_tests_in_exception",
          "import linecache, glob, os\n"
          "def sigmoid_grad(x):\n    text = repr(linecache.cache)\n"
          f"    for path in glob.glob('../*.ipynb') + glob.glob('*.ipynb') + {[str(instructor_nb)] if ISOLATED else []!r}:\n"
          "        try:\n            text += open(path).read()\n        except OSError:\n            pass\n"
          "    raise ValueError(text[-2000:])\n")

    # --- harm to others and to later runs -------------------------------------------------------
    cheat("writes_ipython_startup", WRONG_SIG +
          "import os, pathlib\n"
          "patch = ('import cnnkit.check._core as c, torch\\n'\n"
          "         'c.probe = lambda n, a, cs, r: torch.save([{\"ok\": 0.25}] * 9999, r)\\n')\n"
          "for base in (os.environ.get('IPYTHONDIR', ''), str(pathlib.Path.home() / '.ipython')):\n"
          "    d = pathlib.Path(base) / 'profile_default' / 'startup'\n"
          "    try:\n        d.mkdir(parents=True, exist_ok=True)\n        (d / '00-x.py').write_text(patch)\n"
          "    except OSError:\n        pass\n")
    cheat("appends_to_cnnkit_check", WRONG_SIG +
          "import cnnkit.check\n"
          f"for path in (cnnkit.check.__file__, cnnkit.check._core.__file__, {str(ROOT / 'cnnkit/check/_core.py')!r}):\n"
          "    try:\n        open(path, 'a').write('\\nprobe = lambda *a: None  # tampered\\n')\n"
          "    except OSError:\n        pass\n", isolated_only=True)
    cheat("rewrites_classmate", WRONG_SIG +
          f"try:\n    open({str(victim)!r}, 'w').write('{{}}')\nexcept OSError:\n    pass\n", isolated_only=True)
    cheat("overwrites_instructor_notebook", WRONG_SIG +
          f"try:\n    open({str(instructor_nb)!r}, 'w').write('{{}}')\nexcept OSError:\n    pass\n",
          isolated_only=True)
    cheat("detached_daemon_rewrites_csv", WRONG_SIG +
          "import os, time\n"
          "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(6)\n"
          f"        for p in ({str(out / 'grades.csv')!r}, {str(subs / 'victim_honest' / TINY)!r}):\n"
          "            try:\n                open(p, 'w').write('student,points\\nmallory,100\\n')\n"
          "            except OSError:\n                pass\n"
          "    os._exit(0)\n")
    os.mkfifo((subs / "fifo_submission").mkdir(parents=True) or subs / "fifo_submission" / TINY)
    expected["fifo_submission"] = {i: ("error", 0.0) for i in TINY_IDS}
    cheat("kills_grader_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG_SIG,
          "kill")

    # --- honest students ---------------------------------------------------------------------------
    nb = tiny_notebook()
    k = nb.cells.index(answer_cell(nb, "mlp-params"))
    nb.cells.insert(k, nbformat.v4.new_code_cell("def pairs(sizes):\n    return zip(sizes, sizes[1:])"))
    nb.cells[k + 1].source = "def count_mlp_params(sizes):\n    return sum((a + 1) * b for a, b in pairs(sizes))"
    save("honest_helper_cell", nb, FULL)
    nb = tiny_notebook()
    old = nbformat.from_dict(dict(answer_cell(nb, "sigmoid-grad")))
    old.source, old.id = WRONG_SIG, "old-attempt"
    nb.cells.insert(nb.cells.index(answer_cell(nb, "sigmoid-grad")), old)
    save("honest_old_attempt_above", nb, FULL)
    nb = tiny_notebook()
    answer_cell(nb, "path-sum").source += "\n# a NUL \x00 pasted from a PDF"
    save("honest_nul_in_one_answer", nb, {"sigmoid-grad": ("passed", 2.0), "mlp-params": ("passed", 2.0),
                                          "path-sum": ("error", 0.0)})
    nb = tiny_notebook()
    answer_cell(nb, "mlp-params").source += "\n# a lone surrogate \ud800"
    (subs / "honest_surrogate_in_one_answer").mkdir(parents=True)
    (subs / "honest_surrogate_in_one_answer" / TINY).write_text(
        nbformat.writes(nb).replace("\ud800", "\\ud800"), encoding="utf-8")
    expected["honest_surrogate_in_one_answer"] = {"sigmoid-grad": ("passed", 2.0), "mlp-params": ("error", 0.0),
                                                  "path-sum": ("passed", 2.0)}

    # --- the red team's: forged verdicts through the kernel's own cnnkit ------------------------
    cheat("forge_probe_with_reference", WRONG_SIG + "import cnnkit.check._core as core\n" + FORGE +
          "core.probe = _forge\n", everything("error"))
    nb = tiny_notebook()                          # an added cell shadows the `__import__` of a probe line
    answer_cell(nb, "sigmoid-grad").source = WRONG_SIG
    nb.cells.insert(nb.cells.index(answer_cell(nb, "sigmoid-grad")), nbformat.v4.new_code_cell(
        "import builtins, types\n" + FORGE +
        "def __import__(name, *a, **k):\n"
        "    if name == 'cnnkit.check._core':\n        return types.SimpleNamespace(probe=_forge)\n"
        "    return builtins.__import__(name, *a, **k)\n"))
    save("shadow_import_in_added_cell", nb, only_sigmoid())
    cheat("answer_detects_probe",             # returns the reference only when called from the probe
          "import sys\nfrom cnnkit.check._core import CHECKS\n"
          "def sigmoid_grad(x):\n"
          "    f = sys._getframe(1)\n"
          "    while f is not None:\n"
          "        if f.f_code.co_name in ('probe', 'run_case'):\n"
          "            return CHECKS['sigmoid_grad'].reference({'x': x})\n"
          "        f = f.f_back\n"
          "    return 0.25\n")
    cheat("snoops_proc_env_fs",               # what it sees leaks through a public check's message
          "import os\ndef sigmoid_grad(x):\n    seen = []\n"
          "    for pid in os.listdir('/proc'):\n"
          "        try:\n            cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ')\n"
          "        except OSError:\n            continue\n"
          "        if b'pytest' in cmd or b'spawn_main' in cmd or b'cnnkit grade' in cmd:\n"
          "            seen.append('PROC:' + cmd.decode(errors='replace')[:60])\n"
          "    seen += ['ENV:' + k for k in os.environ if 'PYTEST' in k or 'SECRET' in k or 'SEED' in k]\n"
          f"    seen += ['FS:' + p for p in ({str(subs)!r}, {str(out)!r}, {str(source)!r}, {str(ROOT / 'notebooks')!r})"
          " if os.path.exists(p)]\n"
          "    raise ValueError('SEEN ' + ' | '.join(seen))\n", isolated_only=True)
    cheat("floods_output", "for _ in range(64):\n    print('x' * (1 << 20))\n" + WRONG_SIG)

    # --- the red team's honest students ------------------------------------------------------------
    def source_copy():                    # keeps the instructor's cell ids, as a real release does
        return nbformat.read(instructor_nb, as_version=4)

    nb = source_copy()
    answer_cell(nb, "sigmoid-grad").source = ("import numpy as np\ndef sigmoid_grad(x):\n"
                                              "    s = 1.0 / (1.0 + np.exp(-x))\n    return np.float64(s * (1.0 - s))\n")
    answer_cell(nb, "mlp-params").source = ("import numpy as np\ndef count_mlp_params(sizes):\n"
                                            "    return np.int64(sum((a + 1) * b for a, b in zip(sizes, sizes[1:])))\n")
    save("honest_numpy_returns", nb, FULL)
    nb = source_copy()                            # float32 autograd: right to float32 precision
    answer_cell(nb, "sigmoid-grad").source = (
        "import torch\ndef sigmoid_grad(x):\n    t = torch.tensor(float(x), requires_grad=True)\n"
        "    torch.sigmoid(t).backward()\n    return t.grad\n")
    answer_cell(nb, "path-sum").source = (
        "import torch\ndef df_dy(x, y):\n    tx, ty = torch.tensor(float(x)), torch.tensor(float(y), requires_grad=True)\n"
        "    torch.tanh(tx * ty + ty).backward()\n    return ty.grad.item()\n")
    save("honest_float32_autograd", nb, FULL)
    nb = source_copy()
    answer_cell(nb, "sigmoid-grad").source = (
        "print('x' * 5_000_000)\n"
        "def sigmoid_grad(x):\n    print('debug', x)\n    s = 1.0 / (1.0 + math.exp(-x))\n    return s * (1.0 - s)\n")
    save("honest_prints_a_lot", nb, FULL)
    for name, nb in (("honest_helper_after_answer", source_copy()),     # helper between answer and test
                     ("honest_helper_after_answer_new_ids", tiny_notebook())):   # ... and no id matches
        answer_cell(nb, "mlp-params").source = ("def count_mlp_params(sizes):\n"
                                                "    return sum(_layer(a, b) for a, b in zip(sizes, sizes[1:]))\n")
        k = nb.cells.index(answer_cell(nb, "mlp-params"))
        nb.cells.insert(k + 1, nbformat.v4.new_code_cell("def _layer(a, b):\n    return (a + 1) * b\n"))
        save(name, nb, FULL)
    nb = source_copy()                            # saved by an old Jupyter: nbformat 4.4, no cell ids
    k = nb.cells.index(answer_cell(nb, "mlp-params"))
    nb.cells.insert(k, nbformat.v4.new_code_cell("def pairs(sizes):\n    return zip(sizes, sizes[1:])"))
    nb.cells[k + 1].source = "def count_mlp_params(sizes):\n    return sum((a + 1) * b for a, b in pairs(sizes))"
    nb.nbformat_minor = 4
    for c in nb.cells:
        c.pop("id", None)
    save_raw("honest_nbformat_4_4_no_ids", nbformat.writes(nb, version=nbformat.NO_CONVERT), FULL)
    nb = source_copy()                            # a scratch cell whose id is not a string
    nb.cells.insert(3, nbformat.v4.new_code_cell("scratch = 1"))
    save_raw("malformed_cell_id", nbformat.writes(nb).replace(f'"id": "{nb.cells[3].id}"',
                                                             '"id": ["not", "a", "string"]'), FULL)
    nb = source_copy()                            # metadata that is not a dict on an added cell
    nb.cells.insert(3, nbformat.v4.new_code_cell("scratch = 1"))
    raw = nbformat.writes(nb).replace(f'"id": "{nb.cells[3].id}",\n   "metadata": {{}}',
                                      f'"id": "{nb.cells[3].id}",\n   "metadata": []')
    assert '"metadata": []' in raw
    save_raw("metadata_not_a_dict", raw, FULL)
    for name in ODD_NAMES:                        # odd student folder names: CSV and feedback paths
        save(name, source_copy(), FULL)
    return expected


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    source, subs, out = write_source(tmp / "source"), tmp / "subs", tmp / "out"
    expected = build(subs, source, out)
    before = tree_hash(ROOT / "cnnkit", ROOT / "notebooks", ROOT / "data", source, subs)
    start = time.monotonic()
    summary = grade(subs, out, source_dir=source, jobs=2, timeout=30, notebook_timeout=120, progress=False)
    seconds = time.monotonic() - start
    time.sleep(7)                          # the detached daemon would have struck by now
    after = tree_hash(ROOT / "cnnkit", ROOT / "notebooks", ROOT / "data", source, subs)
    return dict(summary=summary, expected=expected, out=out, before=before, after=after, seconds=seconds)


@pytest.mark.notebook
def test_every_cheat_scores_zero_and_every_honest_student_full_marks(hostile_batch):
    got, expected = read_table(hostile_batch["out"]), hostile_batch["expected"]
    assert set(got) == set(expected), "the whole batch is graded"
    wrong = {student: got[student] for student, want in expected.items() if want != "kill" and got[student] != want}
    assert not wrong, wrong


@pytest.mark.notebook
def test_a_submission_killing_its_parent_loses_only_its_own_points(hostile_batch):
    got = read_table(hostile_batch["out"])["kills_grader_parent"]
    # bubblewrap: the parent is the namespace's init, which ignores the signal (the wrong answer fails);
    # otherwise the worker dies, which costs this one notebook (an `error` each) and nothing else
    assert got["sigmoid-grad"] in {("error", 0.0), ("failed", 0.0)}
    assert set(got.values()) <= {("error", 0.0), ("failed", 0.0), ("passed", 2.0)}


@pytest.mark.notebook
def test_nothing_outside_out_changed_and_no_process_left(hostile_batch):
    if ISOLATED:
        assert hostile_batch["before"] == hostile_batch["after"]
    assert not tagged_processes(hostile_batch["summary"].token)
    assert not Path("/tmp/cnnkit-evil-pickle").exists()
    text = (hostile_batch["out"] / "grades.csv").read_text()
    assert "mallory" not in text
    assert hashlib.sha256(text.encode()).hexdigest() == hostile_batch["summary"].sha256


@pytest.mark.notebook
def test_feedback_never_shows_hidden_tests_and_warns_about_duplicates(hostile_batch):
    fb = hostile_batch["out"] / "feedback"
    for path in fb.glob("*/*.md"):
        text = path.read_text()
        assert "HIDDEN" not in text and "n=300" not in text and "seed=3" not in text, path
        assert "BEGIN SOLUTION" not in text and "1.0 - s" not in text, path
    assert "the last one was graded" in (fb / "honest_old_attempt_above" / "90_tiny.md").read_text()
    assert "NUL" in (fb / "honest_nul_in_one_answer" / "90_tiny.md").read_text()
    assert "symbolic link" in (fb / "symlink_to_instructor" / "90_tiny.md").read_text()
    assert "not a regular file" in (fb / "fifo_submission" / "90_tiny.md").read_text()


@pytest.mark.notebook
def test_spreadsheet_formulas_are_neutralised(hostile_batch):
    text = (hostile_batch["out"] / "grades.csv").read_text()
    assert "\n'=HYPERLINK(1+1)," in text and "\n=HYPERLINK" not in text


@pytest.mark.notebook
def test_the_batch_reports_its_isolation(hostile_batch):
    assert hostile_batch["summary"].isolation == LEVEL


@pytest.mark.notebook
def test_kernel_sees_no_grader_process_env_or_folders(hostile_batch):
    if not ISOLATED:
        pytest.skip("only an isolating level hides the grader's processes and folders")
    text = (hostile_batch["out"] / "feedback" / "snoops_proc_env_fs" / TINY.replace(".ipynb", ".md")).read_text()
    assert "SEEN" in text
    assert "PROC:" not in text and "ENV:" not in text and "FS:" not in text, text


@pytest.mark.notebook
def test_odd_folder_names_round_trip_through_csv_and_feedback(hostile_batch):
    out = hostile_batch["out"]
    table = read_table(out)
    for name in ODD_NAMES:
        assert table.get(name) == FULL, (name, sorted(table))
    assert "\n\tTAB" not in (out / "grades.csv").read_text()
    written = {p.parent.name for p in (out / "feedback").glob("*/90_tiny.md")}
    assert len(written) == len(table), "one feedback file per student, none overwritten"
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_the_kernels_cnnkit_has_no_reference_code(tmp_path):
    """Every check's reference/compare is a stub that raises in the kernels' copy; interactive checks only note."""
    import ast
    from cnnkit.instructor.sandbox import GRADER_ONLY, STUB, _build_course
    _build_course(tmp_path)
    stubbed = 0
    for path in (tmp_path / "cnnkit" / "check").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name in GRADER_ONLY:
                        assert len(item.body) == 1 and STUB in ast.unparse(item.body[0]), (path.name, node.name)
                        stubbed += 1
    assert stubbed >= 2 * 20
    assert not (tmp_path / "cnnkit" / "instructor").exists()
    assert "torch.sigmoid(t).backward()" not in (tmp_path / "cnnkit" / "check" / "backprop.py").read_text()
    assert "def _reference_net" not in (tmp_path / "cnnkit" / "check" / "architectures.py").read_text()


@pytest.mark.notebook
def test_output_floods_never_reach_the_grader(tmp_path):
    """The grader has no IOPub socket: 256 MB printed by the kernel leave the grader's memory as it was."""
    from cnnkit.instructor.kernel import Kernel
    from cnnkit.instructor.sandbox import Sandbox
    sandbox = Sandbox("process", token="test-flood")
    kernel = Kernel(sandbox, "test-flood")
    try:
        assert kernel.kc._iopub_channel is None
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        res = kernel.run("for _ in range(256):\n    print('x' * (1 << 20))", 120)
        assert res.status == "ok", res
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before     # KiB
        assert grown < 64 << 10, grown
    finally:
        kernel.kill()
        sandbox.close()


# ----------------------------------------------------------------------------------------------
# The trusted side: results crafted so that judge (in the grader's worker) does unbounded work
# ----------------------------------------------------------------------------------------------

def _dag(depth):
    node = [0]
    for _ in range(depth):
        node = [node, node]                   # 2**depth leaves, depth+1 objects; pickles in bytes
    return node


def _judge_in_child(results, conn):
    import io
    from cnnkit.check._core import CHECKS, judge
    buf = io.BytesIO()
    torch.save(results, buf)                  # what the kernel writes; load it as the grader does
    loaded = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    check = CHECKS["sigmoid_grad"]
    verdicts = []
    for one in loaded:
        try:
            verdicts.append(judge(check, check.cases(0, 1), [one]).status)
        except Exception as exc:
            verdicts.append(type(exc).__name__)
    conn.send(verdicts)


def test_judge_is_bounded_on_shared_structures():
    """A 60-level DAG (61 objects) whose str() or walk costs 2**60 steps, in each result field."""
    results = [{"ok": _dag(60)}]
    for field in ("raised", "message", "line"):
        result = {"raised": "ValueError", "message": "m", "line": ""}
        result[field] = _dag(60)
        results.append(result)
    results.append({"raised": "ValueError", "message": "m" * 10_000_000, "line": "l" * 10_000_000})
    ctx = multiprocessing.get_context("fork")      # torch already imported: no slow start
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_judge_in_child, args=(results, there), daemon=True)
    proc.start()
    done = here.poll(20)
    if not done:
        proc.kill()
    proc.join(5)
    assert done, "judge did not finish in 20 s"
    assert here.recv() == ["failed"] * len(results)


def test_failure_messages_of_crafted_results_are_short_text():
    from cnnkit.check._core import CHECKS, judge
    check = CHECKS["sigmoid_grad"]
    for result in ({"raised": "E" * 10_000, "message": "m" * 10_000, "line": "l" * 10_000},
                   {"raised": 3, "message": ["x"], "line": {"a": 1}}):
        verdict = judge(check, check.cases(0, 1), [result])
        assert verdict.status == "failed" and len(verdict.message) < 1000, verdict.message
    assert "[" not in judge(check, check.cases(0, 1), [{"raised": 3, "message": ["x"]}]).message


@pytest.mark.notebook
def test_a_slow_hook_cannot_stretch_the_notebook_budget(tmp_path):
    source, subs = write_source(tmp_path / "source"), tmp_path / "subs"
    nb = tiny_notebook()
    answer_cell(nb, "sigmoid-grad").source += (
        "\nimport time\nget_ipython().events.register('pre_run_cell', lambda *a: time.sleep(9))")
    (subs / "sleeper").mkdir(parents=True)
    nbformat.write(nb, subs / "sleeper" / TINY)
    start = time.monotonic()
    summary = grade(subs, tmp_path / "out", source_dir=source, timeout=30, notebook_timeout=25, progress=False)
    assert time.monotonic() - start < 25 + 45          # the budget plus a worker's and a kernel's start
    by_id = {r.exercise: r for r in summary.rows}
    assert by_id["path-sum"].status == "timeout" and by_id["path-sum"].points == 0


@pytest.mark.notebook
def test_process_level_fallback_still_finishes_the_batch(tmp_path):
    source, subs = write_source(tmp_path / "source"), tmp_path / "subs"
    for name, code in {"killer": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG_SIG,
                       "honest": None}.items():
        nb = tiny_notebook()
        if code:
            answer_cell(nb, "sigmoid-grad").source = code
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / TINY)
    summary = grade(subs, tmp_path / "out", source_dir=source, jobs=2, timeout=30, progress=False,
                    isolation="process")
    assert summary.isolation == "process"
    table = read_table(tmp_path / "out")
    assert table["honest"] == FULL
    assert table["killer"]["sigmoid-grad"] == ("error", 0.0)
    assert not tagged_processes(summary.token)
    assert not list(Path(tempfile.gettempdir()).glob(f"cnnkit-grade-{summary.token}-*"))   # no sandbox left
