"""A trainer with heavy-tailed durations: it sleeps a log-normal time, then scores the Branin function.

    trainer.command: python benchmarks/trainers/sleepy_branin.py --median 1 --sigma 1 --cap 10

The sleep is drawn from the trial's seed (``SNAKETUNE_SEED``), so a trial takes the same time in
every run; it stands for training whose cost varies from trial to trial (a few take far longer
than the median), without using a CPU. benchmarks/async_bayes.py runs it under rounds and under
the sliding window (``search.parallel``).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path


def duration(seed: int, median: float, sigma: float, cap: float) -> float:
    """Seconds to sleep: log-normal with this median and sigma (of the log), at most ``cap``."""
    return min(random.Random(seed).lognormvariate(math.log(median), sigma), cap)


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    from _contract import run
    from branin import NAMES, objective

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--median", type=float, default=1.0, help="median sleep in seconds")
    parser.add_argument("--sigma", type=float, default=1.0, help="sigma of the sleep's logarithm")
    parser.add_argument("--cap", type=float, default=10.0, help="longest sleep in seconds")
    args = parser.parse_args()
    time.sleep(duration(int(os.environ.get("SNAKETUNE_SEED", "0")), args.median, args.sigma, args.cap))
    run(objective, NAMES)
