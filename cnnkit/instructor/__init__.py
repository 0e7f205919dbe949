"""Instructor tools (never imported by a notebook): release the notebooks, grade submissions.

    python -m cnnkit release [NOTEBOOK_OR_DIR ...] --out student/ [--force]
    python -m cnnkit grade SUBMISSIONS --out grades/ [-j N] [--timeout S] [-p FAST True]

    markers.py   nbgrader markers, exercises, the test-cell grammar (check calls only)
    release.py   the student release (solutions stubbed, hidden tests removed)
    sandbox.py   one sandbox per submission: folders, environment, limits, isolation level
    kernel.py    a sandboxed kernel the grader can time out, restart and always kill
    grade.py     one submission: the kernel runs the answers, the grader judges
    batch.py     a folder of submissions: worker processes, grades.csv, feedback
    nbtools.py   notebook parameters and papermill runs (also used by the tests)
    cli.py       the command line

See: README.md, "For instructors"
"""
