"""Red team of issue 15's grader: NEW attacks beyond tests/test_grading_hostile.py.

Each test asserts the outcome a sound grader gives, so an attack that still works shows up
as a FAILING test. Most attacks run in ONE batch (-j 2) against the tiny instructor
notebook of tests/grading_fixtures.py; the trusted-side attacks on `judge` run in-process
(no kernel) under a wall-clock limit.
"""

import csv
import multiprocessing
import time
from pathlib import Path

import nbformat
import pytest
import torch

from cnnkit.instructor.batch import grade
from conftest import ROOT
from grading_fixtures import TINY, TINY_IDS, answer_cell, write_source

WRONG_SIG = "def sigmoid_grad(x):\n    return 0.25\n"
FULL = {i: ("passed", 2.0) for i in TINY_IDS}

# A probe that needs no working answer: the reference implementations ship with the kernel's cnnkit.
FORGE = ("def _forge(name, answer, cases_path, results_path):\n"
         "    import torch\n    from cnnkit.check._core import CHECKS\n"
         "    cases = torch.load(cases_path, weights_only=True)\n"
         "    torch.save([{'ok': CHECKS[name].reference(c)} for c in cases], results_path)\n")

HONEST = {
    "sigmoid-grad": "import numpy as np\ndef sigmoid_grad(x):\n    s = 1.0 / (1.0 + np.exp(-x))\n"
                    "    return np.float64(s * (1.0 - s))\n",
    "mlp-params": "import numpy as np\ndef count_mlp_params(sizes):\n"
                  "    return np.int64(sum((a + 1) * b for a, b in zip(sizes, sizes[1:])))\n",
}


def read_table(out):
    with open(out / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = {}
    for r in rows:
        name = r["student"][1:] if r["student"][:1] == "'" else r["student"]
        table.setdefault(name, {})[r["exercise"]] = (r["status"], float(r["points"]))
    return table


def build(subs: Path, source: Path, out: Path) -> dict:
    def base():                 # the student's copy keeps the instructor's cell ids, as a real release does
        return nbformat.read(source / TINY, as_version=4)

    expected = {}

    def save(name, nb, want, raw=None):
        (subs / name).mkdir(parents=True)
        if raw is None:
            nbformat.write(nb, subs / name / TINY)
        else:
            (subs / name / TINY).write_text(raw)
        expected[name] = want

    def cheat(name, code, want=None, exercise="sigmoid-grad"):
        nb = base()
        answer_cell(nb, exercise).source = code
        save(name, nb, want)

    # --- forged verdicts ---------------------------------------------------------------------
    # 1. the probe replaced by one that answers every case with the check's own reference
    cheat("forge_probe_with_reference", WRONG_SIG + "import cnnkit.check._core as core\n" + FORGE +
          "core.probe = _forge\n")
    # 2. a student-added cell shadows the builtin `__import__` the grader's probe line looks up
    nb = base()
    answer_cell(nb, "sigmoid-grad").source = WRONG_SIG
    nb.cells.insert(nb.cells.index(answer_cell(nb, "sigmoid-grad")), nbformat.v4.new_code_cell(
        "import builtins, types\n" + FORGE +
        "def __import__(name, *a, **k):\n"
        "    if name == 'cnnkit.check._core':\n        return types.SimpleNamespace(probe=_forge)\n"
        "    return builtins.__import__(name, *a, **k)\n"))
    save("shadow_import_in_added_cell", nb, None)
    # 3. the wrong answer detects grading (the probe's frame) and returns the reference there only
    cheat("answer_detects_probe",
          "import sys\nfrom cnnkit.check._core import CHECKS\n"
          "def sigmoid_grad(x):\n"
          "    f = sys._getframe(1)\n"
          "    while f is not None:\n"
          "        if f.f_code.co_name in ('probe', 'run_case'):\n"
          "            return CHECKS['sigmoid_grad'].reference({'x': x})\n"
          "        f = f.f_back\n"
          "    return 0.25\n")

    # --- reading what it should not (leaked through a public check's exception message) ------
    cheat("snoops_proc_env_fs",
          "import os\ndef sigmoid_grad(x):\n    seen = []\n"
          "    for pid in os.listdir('/proc'):\n"
          "        try:\n            cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ')\n"
          "        except OSError:\n            continue\n"
          "        if b'pytest' in cmd or b'spawn_main' in cmd or b'cnnkit grade' in cmd:\n"
          "            seen.append('PROC:' + cmd.decode(errors='replace')[:60])\n"
          "    seen += ['ENV:' + k for k in os.environ if 'PYTEST' in k or 'SECRET' in k or 'SEED' in k]\n"
          f"    seen += ['FS:' + p for p in ({str(subs)!r}, {str(out)!r}, {str(source)!r}, {str(ROOT / 'notebooks')!r})"
          " if os.path.exists(p)]\n"
          "    raise ValueError('SEEN ' + ' | '.join(seen))\n",
          {"sigmoid-grad": ("failed", 0.0), "mlp-params": ("passed", 2.0), "path-sum": ("passed", 2.0)})

    # --- honest students -----------------------------------------------------------------------
    nb = base()
    for gid, code in HONEST.items():
        answer_cell(nb, gid).source = code
    save("honest_numpy_returns", nb, FULL)
    nb = base()
    answer_cell(nb, "sigmoid-grad").source = (
        "import torch\ndef sigmoid_grad(x):\n    t = torch.tensor(float(x), requires_grad=True)\n"
        "    torch.sigmoid(t).backward()\n    return t.grad\n")
    save("honest_torch_tensor_return", nb, FULL)
    nb = base()
    answer_cell(nb, "sigmoid-grad").source = (
        "print('x' * 5_000_000)\n"
        "def sigmoid_grad(x):\n    print('debug', x)\n    s = 1.0 / (1.0 + math.exp(-x))\n    return s * (1.0 - s)\n")
    save("honest_prints_a_lot", nb, FULL)
    nb = base()                                   # helper in a cell added AFTER the answer
    answer_cell(nb, "mlp-params").source = "def count_mlp_params(sizes):\n    return sum(_layer(a, b) for a, b in zip(sizes, sizes[1:]))\n"
    k = nb.cells.index(answer_cell(nb, "mlp-params"))
    nb.cells.insert(k + 1, nbformat.v4.new_code_cell("def _layer(a, b):\n    return (a + 1) * b\n"))
    save("honest_helper_after_answer", nb, FULL)
    nb = base()                                   # saved by an old Jupyter: nbformat 4.4, no cell ids
    k = nb.cells.index(answer_cell(nb, "mlp-params"))
    nb.cells.insert(k, nbformat.v4.new_code_cell("def pairs(sizes):\n    return zip(sizes, sizes[1:])"))
    nb.cells[k + 1].source = "def count_mlp_params(sizes):\n    return sum((a + 1) * b for a, b in pairs(sizes))"
    nb.nbformat_minor = 4
    for c in nb.cells:
        c.pop("id", None)
    save("honest_nbformat_4_4_no_ids", nb, FULL, raw=nbformat.writes(nb, version=nbformat.NO_CONVERT))
    nb = base()                                   # a scratch cell whose id is not a string
    nb.cells.insert(3, nbformat.v4.new_code_cell("scratch = 1"))
    raw = nbformat.writes(nb).replace(f'"id": "{nb.cells[3].id}"', '"id": ["not", "a", "string"]')
    save("malformed_cell_id", nb, FULL, raw=raw)
    nb = base()                                   # metadata that is not a dict on an added cell
    nb.cells.insert(3, nbformat.v4.new_code_cell("scratch = 1"))
    raw = nbformat.writes(nb).replace('"source": "scratch = 1"', '"source": "scratch = 1", "x": 1')
    raw = raw.replace(f'"id": "{nb.cells[3].id}",\n   "metadata": {{}}', f'"id": "{nb.cells[3].id}",\n   "metadata": []')
    save("metadata_not_a_dict", nb, FULL, raw=raw)

    # --- odd student folder names (CSV, feedback paths) ------------------------------------------
    for name in ("new\nline=1+1", "\u202eexe.txt", "x" * 200, "\tTAB"):
        save(name, base(), FULL)
    return expected


@pytest.fixture(scope="module")
def redteam_batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redteam")
    source, subs, out = write_source(tmp / "source"), tmp / "subs", tmp / "out"
    expected = build(subs, source, out)
    start = time.monotonic()
    summary = grade(subs, out, source_dir=source, jobs=2, timeout=30, notebook_timeout=120, progress=False)
    return dict(summary=summary, expected=expected, out=out, seconds=time.monotonic() - start)


def _sigmoid(redteam_batch, student):
    return read_table(redteam_batch["out"])[student]["sigmoid-grad"]


@pytest.mark.notebook
def test_probe_forged_with_the_shipped_reference_scores_zero(redteam_batch):
    assert _sigmoid(redteam_batch, "forge_probe_with_reference")[1] == 0.0


@pytest.mark.notebook
def test_added_cell_shadowing_import_cannot_replace_the_probe(redteam_batch):
    assert _sigmoid(redteam_batch, "shadow_import_in_added_cell")[1] == 0.0


@pytest.mark.notebook
def test_answer_that_detects_the_probe_frame_scores_zero(redteam_batch):
    assert _sigmoid(redteam_batch, "answer_detects_probe")[1] == 0.0


@pytest.mark.notebook
def test_kernel_sees_no_grader_process_env_or_folders(redteam_batch):
    text = (redteam_batch["out"] / "feedback" / "snoops_proc_env_fs" / "90_tiny.md").read_text()
    assert "SEEN" in text
    assert "PROC:" not in text and "ENV:" not in text and "FS:" not in text, text


@pytest.mark.notebook
@pytest.mark.parametrize("student", ["honest_numpy_returns", "honest_torch_tensor_return", "honest_prints_a_lot",
                                     "honest_helper_after_answer", "honest_nbformat_4_4_no_ids"])
def test_honest_edge_cases_get_full_marks(redteam_batch, student):
    assert read_table(redteam_batch["out"])[student] == FULL


@pytest.mark.notebook
@pytest.mark.parametrize("student", ["malformed_cell_id", "metadata_not_a_dict"])
def test_malformed_scratch_cells_do_not_cost_the_answers(redteam_batch, student):
    assert read_table(redteam_batch["out"])[student] == FULL


@pytest.mark.notebook
def test_odd_folder_names_round_trip_through_csv_and_feedback(redteam_batch):
    out = redteam_batch["out"]
    table = read_table(out)
    for name in ("new\nline=1+1", "\u202eexe.txt", "x" * 200, "\tTAB"):
        assert table.get(name) == FULL, (name, sorted(table))
    text = (out / "grades.csv").read_text()
    assert "\n\tTAB" not in text
    written = {p.parent.name for p in (out / "feedback").glob("*/90_tiny.md")}
    assert len(written) == len(table), "one feedback file per student, none overwritten"
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


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
    conn.send("ready")                        # imports done: time only the judging
    buf = io.BytesIO()
    torch.save(results, buf)                  # what the kernel writes; load it as the grader does
    loaded = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    check = CHECKS["sigmoid_grad"]
    try:
        verdict = judge(check, check.cases(0, 10), loaded)
        conn.send(("ok", verdict.status))
    except Exception as exc:
        conn.send(("raised", type(exc).__name__))


@pytest.mark.parametrize("field", ["raised", "message", "ok"])
def test_judge_is_bounded_on_a_shared_structure(field):
    """A 60-level DAG (61 objects) whose str() or walk costs 2**60 steps must not stall the worker."""
    result = {"raised": "ValueError", "message": "m", "line": ""}
    if field == "ok":
        result = {"ok": _dag(60)}
    else:
        result[field] = _dag(60)
    ctx = multiprocessing.get_context("fork")      # torch already imported: no slow start
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_judge_in_child, args=([result] * 10, there), daemon=True)
    proc.start()
    assert here.poll(120) and here.recv() == "ready"
    done = here.poll(10)
    if not done:
        proc.kill()
    proc.join(5)
    assert done, f"judge did not finish in 10 s with a DAG in {field!r}"
    assert here.recv() == ("ok", "failed")
