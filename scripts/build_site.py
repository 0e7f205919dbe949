"""Build the course as a static web site from the committed, executed notebooks.

Nothing is executed: each page shows the outputs stored in `notebooks/`. The
site works offline and from any static host: figures are embedded, formulas are
typeset by a bundled copy of MathJax 3 (from the `django-static-mathjax` wheel,
which needs no Django), no page loads anything from outside the site.

    .venv/bin/python scripts/build_site.py                  # student site -> build/site/
    .venv/bin/python scripts/build_site.py --instructor     # with solutions -> build/site-instructor/

The default, student site is made from `python -m cnnkit release` (solutions
replaced by stubs, hidden tests removed); a cell the release changed is shown
without its outputs, every other cell with the outputs of the executed notebook.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "site_templates"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def course_notebooks(folder: Path) -> list[Path]:
    """The lessons in syllabus order: their file names start with the lesson number."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def student_notebooks(work: Path) -> dict[str, nbformat.NotebookNode]:
    """Student versions with the executed notebook's outputs on every cell the release left unchanged."""
    out = work / "student"
    subprocess.run([sys.executable, "-m", "cnnkit", "release", "--out", str(out)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    merged = {}
    for source_path in course_notebooks(ROOT / "notebooks"):
        executed = nbformat.read(source_path, as_version=4)
        student = nbformat.read(out / source_path.name, as_version=4)
        for cell, done in _pair_cells(student.cells, executed.cells, source_path.name):
            if cell.cell_type == "code" and cell.source == done.source:
                cell.outputs, cell.execution_count = done.outputs, done.execution_count
        student.metadata["widgets"] = executed.metadata.get("widgets", {})   # for the progress bars
        merged[source_path.name] = student
    return merged


def _pair_cells(student: list, executed: list, name: str) -> list[tuple]:
    """Each released cell with its executed original: by cell id, or by position in notebooks without ids."""
    by_id = {cell.get("id"): cell for cell in executed if cell.get("id")}
    if len(by_id) == len(executed) and all(cell.get("id") in by_id for cell in student):
        return [(cell, by_id[cell["id"]]) for cell in student]
    if len(student) != len(executed):
        raise ValueError(f"{name}: the release has {len(student)} cells, the notebook {len(executed)}, "
                         "and no cell ids to pair them by")
    return list(zip(student, executed))


def instructor_notebooks() -> dict[str, nbformat.NotebookNode]:
    return {p.name: nbformat.read(p, as_version=4) for p in course_notebooks(ROOT / "notebooks")}


def _static_widget(model_id: str, state: dict) -> str | None:
    """A progress-bar widget (tqdm's HBox of text, bar, text) as plain HTML from its saved state."""
    box = state.get(model_id)
    if not box or box.get("model_name") != "HBoxModel":
        return None
    parts = []
    for child in box["state"].get("children", []):
        model = state.get(child.replace("IPY_MODEL_", ""), {})
        values = model.get("state", {})
        if model.get("model_name") == "HTMLModel":
            parts.append(f'<span>{html.escape(html.unescape(values.get("value", "")))}</span>')
        elif model.get("model_name") in ("FloatProgressModel", "IntProgressModel"):
            style = html.escape(values.get("bar_style") or "")
            parts.append(f'<progress class="{style}" value="{values.get("value", 0)}" '
                         f'max="{values.get("max", 100)}"></progress>')
    return f'<div class="static-widget">{"".join(parts)}</div>' if parts else None


def prepare(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace widget outputs by static HTML (no widget JavaScript on the site) and drop the widget state."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                static = _static_widget(data.pop(WIDGET_VIEW)["model_id"], state)
                if static:
                    data["text/html"] = static
    return nb


def lesson_title(name: str, nb: nbformat.NotebookNode) -> str:
    title = nb.metadata.get("cnnkit", {}).get("title")
    if not title:
        first = nb.cells[0].source.splitlines()[0] if nb.cells else name
        title = first.lstrip("# ").split("·")[-1].strip()
    return f"{name[:2]} · {title}"


def front_page_markdown() -> str:
    """README from the title up to the helper package's section, lesson names linked to their pages."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = text.split("\n## `cnnkit`")[0]
    return re.sub(r"`(\d\d_\w+)\.ipynb`", r"[`\1`](\1.html)", text)


def build(out: Path, instructor: bool = False) -> list[Path]:
    """Write the site into `out` (replaced); return the pages written."""
    with tempfile.TemporaryDirectory(prefix="site-") as work:
        notebooks = instructor_notebooks() if instructor else student_notebooks(Path(work))
    lessons = [(name[:-len(".ipynb")] + ".html", lesson_title(name, nb)) for name, nb in notebooks.items()]
    edition = "instructor edition (with solutions)" if instructor else "student edition"

    if out.exists():
        shutil.rmtree(out)
    (out / "_static").mkdir(parents=True)
    shutil.copy(TEMPLATES / "course.css", out / "_static" / "course.css")
    (out / "_static" / "mathjax").mkdir()
    shutil.copy(mathjax_script(), out / "_static" / "mathjax" / "tex-svg-full.js")

    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATES)],
                            template_file="lesson.html.j2", exclude_input_prompt=False)
    pages = []
    for i, (name, nb) in enumerate(notebooks.items()):
        page, title = lessons[i]
        resources = {"course": {"lessons": lessons, "current": page, "title": title, "edition": edition,
                                "notebook": name,
                                "prev": lessons[i - 1] if i > 0 else ("index.html", "Home"),
                                "next": lessons[i + 1] if i + 1 < len(lessons) else None}}
        body, _ = exporter.from_notebook_node(prepare(nb), resources=resources)
        (out / page).write_text(body, encoding="utf-8")
        pages.append(out / page)

    front = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(front_page_markdown())])
    resources = {"course": {"lessons": lessons, "current": "index.html", "title": "Home", "edition": edition,
                            "notebook": None, "prev": None, "next": lessons[0] if lessons else None}}
    body, _ = exporter.from_notebook_node(front, resources=resources)
    (out / "index.html").write_text(body, encoding="utf-8")
    (out / ".nojekyll").write_text("")          # GitHub Pages: serve _static/ as is
    return [out / "index.html"] + pages


def mathjax_script() -> Path:
    """MathJax 3 (TeX in, SVG out, every TeX extension) as one file, from the django-static-mathjax wheel."""
    spec = importlib.util.find_spec("mathjax")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        script = Path(folder) / "static" / "mathjax" / "es5" / "tex-svg-full.js"
        if script.is_file():
            return script
    raise FileNotFoundError("MathJax not found: pip install -c constraints.txt django-static-mathjax")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructor", action="store_true",
                        help="publish the solutions and hidden tests too (default: the student release)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: build/site/, or build/site-instructor/)")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / ("site-instructor" if args.instructor else "site")
    pages = build(out, instructor=args.instructor)
    print(f"wrote {len(pages)} pages to {out}/ (open {out / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
