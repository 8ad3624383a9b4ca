"""Snakemake script: a regression model's predicted against true values on the test set."""

import sys

from snaketune.scriptjob import hand_over

# The rest runs in the run's warm worker when it has one (its imports are warm there).
sm = hand_over(snakemake, __file__)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.evaluate import test_predictions  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.plots import plot_predictions  # noqa: E402
from snaketune.task import regression_metrics  # noqa: E402

predicted, true, scale = test_predictions(sm.input.model, sm.input.data)
scores = regression_metrics(predicted, true, scale)
reported = read_json(sm.input.metrics).get("test_rmse")
title = f"Final model on the test set: RMSE {scores['rmse']:.4g}, R² {scores['r2']:.3f} ({len(true)} examples)"
plot_predictions(sm.output.plot, true, predicted, title=title)
print(f"test RMSE from the predictions: {scores['rmse']}; final/metrics.json: {reported}", file=log)
if reported is not None and abs(reported - scores["rmse"]) > 1e-6 * max(1.0, abs(reported)):
    print("WARNING: they differ: the model file is not applied as the trainer applied it", file=log)
