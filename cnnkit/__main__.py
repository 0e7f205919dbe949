"""`python -m cnnkit`: the instructor tools (see cnnkit/instructor/cli.py and README, "For instructors")."""

import sys

from cnnkit.instructor.cli import main

if __name__ == "__main__":
    sys.exit(main())
