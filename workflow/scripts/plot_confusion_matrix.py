"""Snakemake script: the final model's confusion matrix on the test set."""

import sys

from snaketune.scriptjob import hand_over

# The rest runs in the run's warm worker when it has one (its imports are warm there).
sm = hand_over(snakemake, __file__)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.evaluate import confusion_on_test_set  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.plots import plot_confusion_matrix  # noqa: E402

confusion = confusion_on_test_set(sm.input.model, sm.input.data)
reported = read_json(sm.input.metrics).get("test_accuracy")
title = f"Final model on the test set: accuracy {confusion.accuracy:.4f} ({int(confusion.matrix.sum())} examples)"
plot_confusion_matrix(sm.output.plot, confusion.matrix, confusion.classes, title=title)
print(f"test accuracy from the confusion matrix: {confusion.accuracy}; final/metrics.json: {reported}", file=log)
if reported is not None and abs(reported - confusion.accuracy) > 1e-6:
    print("WARNING: they differ: the model file is not applied as the trainer applied it", file=log)
