"""Print a study's summary: ``python workflow/scripts/summarise.py --results results/<study>``.

A plain command-line script (the final retrain appends its output to its log); Python puts this
file's folder on ``sys.path``, so ``import snaketune`` works without installing anything.
"""

import sys

from snaketune.summary import main

if __name__ == "__main__":
    sys.exit(main())
