"""Exercise checks with immediate feedback, one module per lesson.

A check runs the student's answer on many cases and compares it with PyTorch
or exact values. It prints one ✔ line on success; on failure it raises
``ExerciseFailed`` (an AssertionError) shown as a ✘ reason and a hint. The
first failures show a nudge; the full formula appears from the third failure
in a row, or with ``cnnkit.check.hint("name")``. An answer that still raises
``NotImplementedError`` is reported as "not implemented yet".

    def output_size(size, kernel_size, stride=1, padding=0, dilation=1):
        ...
    cnnkit.check.output_size(output_size)             # fixed cases, then random ones
    cnnkit.check.output_size(output_size, n=300, seed=7)

Every check is a ``Check`` registered in ``CHECKS`` (see ``_core``); the
module-level functions below are generated from that registry.

See: notebooks/01_convolutions.ipynb
"""

from __future__ import annotations

# Importing a lesson's module registers its checks.
from cnnkit.check import (architectures, augmentation, backprop, convolutions, detection,  # noqa: F401
                          normalization, training, transfer)
from cnnkit.check._core import (CHECKS, Check, ExerciseFailed, Failure, NotImplementedYet, PlainDataError,
                                Score, Verdict, as_function, hint, judge, probe, register, to_plain)

__all__ = ["CHECKS", "Check", "ExerciseFailed", "Failure", "NotImplementedYet", "PlainDataError", "Score",
           "Verdict", "hint", "judge", "probe", "register", "to_plain", *CHECKS]

for _name, _check in CHECKS.items():
    globals()[_name] = as_function(_check)
del _name, _check
