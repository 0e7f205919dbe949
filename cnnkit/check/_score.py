"""Partial credit for hand-written test cells, in a form nbgrader and cnnkit's grader both read.

See: cnnkit/contract.py (SCORE_MIME)
"""

from __future__ import annotations

from cnnkit import contract

__all__ = ["Score"]


class Score:
    """Partial credit: make it the LAST expression of a test cell, e.g.

        cnnkit.check.Score(passed_cases, total_cases, points=2)

    Displays three ways: `text/plain` is the points earned as a bare number
    (what nbgrader's determine_grade parses as partial credit, so `points`
    should be the cell's points; without it, `possible` is taken as the
    points), `text/markdown` is the friendly line, and contract.SCORE_MIME
    holds {"earned": fraction} for cnnkit's grader.
    """

    def __init__(self, earned: float, possible: float, points: float | None = None):
        for arg, value in (("earned", earned), ("possible", possible), ("points", points)):
            if value is not None and (type(value) not in (int, float)):
                raise TypeError(f"{arg} must be an int or float, got {type(value).__name__}")
        if possible <= 0:
            raise ValueError(f"possible must be positive, got {possible}")
        if points is not None and points < 0:
            raise ValueError(f"points must be >= 0, got {points}")
        self.fraction = max(0.0, min(1.0, earned / possible))
        self.earned, self.possible = earned, possible
        self.points = possible if points is None else points

    def _repr_mimebundle_(self, include=None, exclude=None):
        friendly = f"partial credit: {self.earned:g} of {self.possible:g} ({self.fraction:.0%})"
        return {"text/plain": repr(round(self.fraction * self.points, 6)),
                "text/markdown": friendly,
                contract.SCORE_MIME: {"earned": self.fraction}}

    def __repr__(self) -> str:
        return f"Score({self.earned!r}, {self.possible!r})"
