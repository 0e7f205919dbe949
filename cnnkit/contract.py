"""The strings shared by the exercise checks and the instructor's grader.

Both sides import them from here, so a renamed marker or MIME type cannot
make the two drift apart. Nothing here imports torch or the grader.

See: cnnkit/check/_core.py (the checks) and cnnkit/instructor/ (the grader).
"""

from __future__ import annotations

__all__ = ["SCORE_MIME", "EXERCISE_FAILED", "NOT_IMPLEMENTED_YET", "FAILURE_NAMES",
           "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN", "STUB",
           "HIDDEN_WITHHELD", "RESULT_OK", "RESULT_NOT_IMPLEMENTED", "RESULT_RAISED",
           "MAX_RESULT_MESSAGE"]

# The MIME type of `cnnkit.check.Score` in a cell's execute_result: {"earned": fraction 0..1}.
SCORE_MIME = "application/vnd.cnnkit.score+json"

# Class names of the failures a check raises (ExerciseFailed is an AssertionError).
EXERCISE_FAILED = "ExerciseFailed"
NOT_IMPLEMENTED_YET = "NotImplementedYet"
FAILURE_NAMES = ("AssertionError", EXERCISE_FAILED, NOT_IMPLEMENTED_YET)

# nbgrader's markers: an answer cell's solution region, a test cell's hidden region,
# and what the release puts in place of a solution.
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"

# The only feedback a failed hidden test gets: no case, no value, no student text.
HIDDEN_WITHHELD = "failed a hidden test (details withheld)"

# Keys of one per-case result written by `cnnkit.check._core.probe` (see SPEC):
#   {"ok": plain} | {"not_implemented": True} | {"raised": "TypeName", "message": str, "line": str}
RESULT_OK, RESULT_NOT_IMPLEMENTED, RESULT_RAISED = "ok", "not_implemented", "raised"
MAX_RESULT_MESSAGE = 300          # characters of an exception message kept in a result
