"""Run one trial: ``python workflow/scripts/run_trial.py --spec '{...}'``.

A plain command-line script rather than a Snakemake ``script:`` so that the per-trial process
does not import Snakemake (every trial pays its start-up). Python puts this file's folder on
``sys.path``, so ``import snaketune`` works without installing anything.
"""

import sys

from snaketune.runner import main

if __name__ == "__main__":
    sys.exit(main())
