"""The static course site (`make site`): no solutions in the student edition, and every page
renders offline in a real browser (no outside request, no console error, no broken image,
every formula typeset)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from .browser_support import ROOT, ConsoleLog

sys.path.insert(0, str(ROOT / "scripts"))
import build_site  # noqa: E402

MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The student site, built the way `make site` builds it."""
    out = tmp_path_factory.mktemp("site") / "site"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_site.py"), "--out", str(out)],
                   cwd=ROOT, check=True)
    return out


def page_text(path: Path) -> str:
    """What a reader can see or copy: tags removed (code is split into highlighting spans), entities decoded."""
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def removed_lines(notebook: Path) -> list[list[str]]:
    """The solution and hidden-test regions of an instructor notebook, each as its stripped lines."""
    regions = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        region = None
        for line in cell.source.splitlines():
            if line.strip() in MARKERS:
                region = [] if "BEGIN" in line else None
                if region is not None:
                    regions.append(region)
            elif region is not None:
                region.append(line.strip())
    return [r for r in regions if r]


def leaks(regions: list[list[str]], text: str) -> list[str]:
    """Lines of `regions` visible in `text`, by the release's own rule: a distinctive line (30+
    characters, not a comment) or two consecutive removed lines found together."""
    shown = [line.strip() for line in text.splitlines() if line.strip()]
    single, pairs = set(shown), set(zip(shown, shown[1:]))
    found = []
    for region in regions:
        for a, b in zip(region, region[1:] + [""]):
            if len(a.replace(" ", "")) >= 30 and not a.startswith("#") and a in single:
                found.append(a)
            elif min(len(a), len(b)) >= 8 and (a, b) in pairs:
                found.append(f"{a} / {b}")
    return found


def test_student_site_has_no_solutions(site):
    pages = sorted(site.glob("*.html"))
    lessons = build_site.course_notebooks(ROOT / "notebooks")
    assert [p.name for p in pages] == sorted([p.stem + ".html" for p in lessons] + ["index.html"])
    secret = {p.stem: removed_lines(p) for p in lessons}
    assert sum(map(len, secret.values())) >= len(lessons), "no solutions found: the test would prove nothing"
    everything = [region for regions in secret.values() for region in regions]
    for page in pages:
        raw = page.read_text(encoding="utf-8")
        text = page_text(page)
        for marker in MARKERS + ("BEGIN SOLUTION", "HIDDEN TESTS"):
            assert marker not in raw and marker not in text, f"{page.name} contains {marker!r}"
        leaked = leaks(everything, text)
        assert not leaked, f"{page.name} shows solution/hidden-test lines: {leaked[:5]}"
    # the exercises are still there, marked, with the stub students fill in
    first = site / lessons[0].with_suffix(".html").name
    assert 'class="exercise exercise-answer"' in first.read_text(encoding="utf-8")
    assert 'class="exercise exercise-check"' in first.read_text(encoding="utf-8")
    assert "raise NotImplementedError()" in page_text(first)


def test_instructor_site_would_show_them(tmp_path):
    """The leak test can see a solution: the instructor edition shows every region."""
    notebook = build_site.course_notebooks(ROOT / "notebooks")[0]
    nb = build_site.prepare(nbformat.read(notebook, as_version=4))
    exporter = build_site.HTMLExporter(template_name="lab")
    (tmp_path / "page.html").write_text(exporter.from_notebook_node(nb)[0], encoding="utf-8")
    text = page_text(tmp_path / "page.html")
    assert "### BEGIN SOLUTION" in text
    assert len(leaks(removed_lines(notebook), text)) >= len(removed_lines(notebook))


def _visit(browser, url: str):
    """Open `url` with every request outside file:// refused; return (page, console, blocked)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []

    def only_local(route):
        if route.request.url.startswith(("file://", "data:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    console = ConsoleLog(page)
    page.goto(url, wait_until="load")
    page.wait_for_function("window.courseMath && window.courseMath.done", timeout=60_000)
    return page, console, blocked


PAGE_PROBLEMS = """() => {
  const broken = Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)
                      .map(i => (i.getAttribute('src') || '').slice(0, 60));
  const typeset = document.querySelectorAll('mjx-container').length;
  const texts = Array.from(document.querySelectorAll('.jp-RenderedMarkdown'))
                     .map(e => e.innerText).join('\\n');
  const raw = (texts.match(/\\$\\$[^$]+\\$\\$|\\$[^$\\s][^$\\n]*\\$|\\\\\\(|\\\\\\[/g) || []).slice(0, 5);
  return {broken, typeset, raw, mathErrors: window.courseMath.errors, images: document.images.length};
}"""


def test_every_page_renders_offline(site, browser, shots):
    failures = []
    for path in sorted(site.glob("*.html")):
        page, console, blocked = _visit(browser, path.as_uri())
        found = page.evaluate(PAGE_PROBLEMS)
        has_math = "$" in "".join(c.source for c in _markdown_cells(path))
        problems = []
        if blocked:
            problems.append(f"requests outside the site: {blocked[:5]}")
        if console.errors:
            problems.append(console.report())
        if found["broken"]:
            problems.append(f"broken images: {found['broken']}")
        if found["mathErrors"] or found["raw"]:
            problems.append(f"formulas not typeset: {found['mathErrors'][:5]} {found['raw']}")
        if has_math and not found["typeset"]:
            problems.append("the page has formulas but MathJax typeset none")
        if path.stem != "index" and not found["images"]:
            problems.append("a lesson without a single figure")
        if path.name == "index.html" or path.name.startswith("01_"):
            page.screenshot(path=str(shots / f"site-{path.stem}.png"))
        if path.name.startswith("01_"):                     # the first exercise, marked, with its stub
            page.locator(".exercise-answer").first.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.screenshot(path=str(shots / f"site-{path.stem}-exercise.png"))
        if problems:
            page.screenshot(path=str(shots / f"site-FAILED-{path.stem}.png"), full_page=True)
            failures.append(f"{path.name}: " + "; ".join(problems))
        page.context.close()
    assert not failures, "\n".join(failures)


def _markdown_cells(page: Path):
    source = ROOT / "notebooks" / page.with_suffix(".ipynb").name
    if not source.exists():
        return []
    return [c for c in nbformat.read(source, as_version=4).cells if c.cell_type == "markdown"]
