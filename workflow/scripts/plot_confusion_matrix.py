"""Snakemake script: the final model's confusion matrix on the test set."""

import json

from snaketune.evaluate import confusion_on_test_set
from snaketune.plots import plot_confusion_matrix

sm = snakemake  # noqa: F821 (injected by Snakemake)
confusion = confusion_on_test_set(sm.input.model, sm.input.data)
with open(sm.input.metrics, encoding="utf-8") as fh:
    reported = json.load(fh).get("test_accuracy")
title = f"Final model on the test set: accuracy {confusion.accuracy:.4f} ({int(confusion.matrix.sum())} examples)"
plot_confusion_matrix(sm.output.plot, confusion.matrix, confusion.classes, title=title)
with open(sm.log[0], "w") as log:
    print(f"test accuracy from the confusion matrix: {confusion.accuracy}; final/metrics.json: {reported}", file=log)
    if reported is not None and abs(reported - confusion.accuracy) > 1e-6:
        print("WARNING: they differ: the model file is not applied as the trainer applied it", file=log)
