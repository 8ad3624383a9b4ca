"""Snakemake script: the final model and metrics from several retrains (final.repeats)."""

import sys

from snaketune.scriptjob import hand_over

# The rest runs in the run's warm worker when it has one (its imports are warm there).
sm = hand_over(snakemake, __file__)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.final import finalise, shipped_test_metrics  # noqa: E402
from snaketune.layout import Layout  # noqa: E402

metrics = finalise(
    Layout(sm.params.study), sm.params.repeats, ensemble=sm.params.ensemble, builtin=sm.params.builtin, data=sm.input.data
)
print(f"{sm.params.repeats} retrains -> {sm.output.metrics}: {shipped_test_metrics(metrics)}", file=log)
