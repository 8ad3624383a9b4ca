"""What the built-in trainer learns from the labels: classes (classification) or values (regression).

The one home of the task (``data.task``): which sources hold classes, the rules that decide the
task of a label column when ``data.task`` is ``auto`` (:func:`detect_task`), the metrics the
built-in trainer reports for each task (:data:`TASK_METRICS`), the check that the objective is one
of them (:func:`check_objective`), and the regression metrics themselves
(:func:`regression_metrics`: the trainer's and the final model's test scores are computed by it).
This module imports neither torch nor pandas (config checks import it); numpy only inside functions.

>>> import numpy as np
>>> detect_task(np.array([0.5, 1.25, 2.0])).task
'regression'
>>> detect_task(np.array(["cat", "dog"])).reason
"the labels are text (e.g. 'cat'): classes"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snaketune.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
AUTO = "auto"

# The metrics the built-in trainer reports during the search for each task, with the direction that
# makes sense. Regression: `val_loss` is the training loss, the mean squared error of the target
# standardised with the training rows' mean and std (so train_loss and val_loss share a scale);
# `val_rmse` and `val_mae` are on the target's own scale; `val_r2` is 1 - SSE / SST (SST around
# the evaluated rows' own mean; 1 = perfect, 0 = no better than predicting that mean).
TASK_METRICS: dict[str, dict[str, str]] = {
    CLASSIFICATION: {"val_accuracy": "maximize", "val_loss": "minimize"},
    REGRESSION: {"val_rmse": "minimize", "val_mae": "minimize", "val_r2": "maximize", "val_loss": "minimize"},
}
BUILTIN_METRICS: dict[str, str] = {**TASK_METRICS[CLASSIFICATION], **TASK_METRICS[REGRESSION]}
# A regression study's objective when none fits (the suggestion in errors).
REGRESSION_OBJECTIVE = "objective: {metric: val_rmse, direction: minimize}"
CLASSIFICATION_OBJECTIVE = "objective: {metric: val_accuracy, direction: maximize}"

# Built-in sources whose task is known: their labels are classes, or values.
SOURCE_TASKS = {
    "digits": CLASSIFICATION,
    "mnist1d": CLASSIFICATION,
    "synthetic": CLASSIFICATION,
    "images": CLASSIFICATION,  # one sub-folder per class
    "diabetes": REGRESSION,
}
# data.task auto: integer labels with at most this many distinct values are read as classes.
MAX_AUTO_CLASSES = 20


@dataclass(frozen=True)
class TaskDecision:
    """A task and the rule that decided it, in words (for the prepare_data log and data/summary.json)."""

    task: str  # classification | regression
    reason: str
    configured: str = AUTO  # data.task as set: auto, classification or regression

    @property
    def message(self) -> str:
        """``task: regression (data.task auto: the labels include non-integer numbers, e.g. -6.99)``."""
        return f"task: {self.task} (data.task {self.configured}: {self.reason})"


def _example(v: Any) -> str:
    return repr(v.item() if hasattr(v, "item") else v)


def detect_task(labels: np.ndarray, configured: str = AUTO, source: str | None = None) -> TaskDecision:
    """The task of ``labels`` (one per example, as read from the file) under ``data.task: configured``.

    The rules, in order (the first that applies decides; :attr:`TaskDecision.reason` names it):

    1. ``data.task`` set to classification or regression: that task.
    2. a built-in source (``digits``, ``mnist1d``, ``synthetic``, ``images``: classes; ``diabetes``: values).
    3. text or True/False labels: classification.
    4. numbers of which one is not a whole number: regression.
    5. whole numbers with at most 20 distinct values: classification.
    6. whole numbers with more than 20 distinct values, one of them held by a single example:
       regression (a class needs examples in train, validation and test, so a value seen once is
       not a class).
    7. otherwise (more than 20 distinct whole numbers, each on two examples or more) a DataError:
       classes or a measured quantity cannot be told apart; set ``data.task``.
    """
    import numpy as np

    if configured not in (AUTO, *TASKS):
        raise ConfigError(f"config key `data.task`: {configured!r} is not one of auto, {', '.join(TASKS)}")
    if configured != AUTO:
        return TaskDecision(configured, "set in the config", configured)
    if source in SOURCE_TASKS:
        known = SOURCE_TASKS[source]
        what = "classes" if known == CLASSIFICATION else "measured values"
        return TaskDecision(known, f"data.source {source} holds {what}")
    labels = np.asarray(labels)
    if labels.dtype.kind in "USOb":
        kind = "True/False" if labels.dtype.kind == "b" else "text"
        first = f" (e.g. {_example(labels[0])})" if len(labels) else ""
        return TaskDecision(CLASSIFICATION, f"the labels are {kind}{first}: classes")
    if labels.dtype.kind not in "iuf":
        raise DataError(f"the labels have dtype {labels.dtype}; they must be numbers or text")
    if labels.dtype.kind == "f":
        finite = labels[np.isfinite(labels)]
        fractional = finite[finite != np.round(finite)]
        if len(fractional):
            return TaskDecision(REGRESSION, f"the labels include non-integer numbers (e.g. {fractional[0]:.6g})")
    values, counts = np.unique(labels, return_counts=True)
    if len(values) <= MAX_AUTO_CLASSES:
        return TaskDecision(
            CLASSIFICATION,
            f"the labels are {len(values)} distinct whole numbers (at most {MAX_AUTO_CLASSES} are read as classes)",
        )
    single = values[counts == 1]
    if len(single):
        return TaskDecision(
            REGRESSION,
            f"the labels are {len(values)} distinct whole numbers, and {len(single)} of them (e.g. {_example(single[0])}) "
            "are held by a single example, which no class can be (a class needs examples in train, validation and test)",
        )
    raise DataError(
        f"data.task auto cannot tell what the labels are: {len(values)} distinct whole numbers, each held by two "
        "examples or more, may be classes or a measured quantity; set data.task: classification (each value a class) "
        "or data.task: regression (predict the value)"
    )


def config_task(cfg: Mapping[str, Any]) -> str | None:
    """The task a resolved config fixes before any data is read: ``data.task`` when set, else the task
    of a built-in source; None when ``prepare_data`` decides it (``auto`` on csv or npz)."""
    data = cfg["data"]
    configured = data.get("task", AUTO)
    if configured != AUTO:
        return configured
    return SOURCE_TASKS.get(data["source"])


def expected_task(cfg: Mapping[str, Any]) -> str | None:
    """The task a study trains, as known when the workflow is planned: :func:`config_task`, else for
    the built-in trainer the only task its objective belongs to (``val_accuracy``: classification;
    ``val_rmse``, ``val_mae``, ``val_r2``: regression); None when still open (``val_loss``, or a custom
    trainer, on csv or npz with ``data.task: auto``). ``prepare_data`` stops when the data disagree."""
    known = config_task(cfg)
    if known is not None or cfg["trainer"]["command"] is not None:
        return known
    return metric_task(cfg["objective"]["metric"])


def metric_task(metric: str) -> str | None:
    """The one task whose built-in metrics include ``metric``; None for ``val_loss`` (both) or any other name."""
    tasks = [t for t, metrics in TASK_METRICS.items() if metric in metrics]
    return tasks[0] if len(tasks) == 1 else None


def objective_mismatch(task: str, metric: str) -> str | None:
    """Why the built-in trainer cannot report ``metric`` for ``task``, with what to use instead; else None."""
    if metric in TASK_METRICS[task] or metric not in BUILTIN_METRICS:
        return None
    other = CLASSIFICATION if task == REGRESSION else REGRESSION
    valid = ", ".join(f"{m} ({d})" for m, d in TASK_METRICS[task].items())
    use = REGRESSION_OBJECTIVE if task == REGRESSION else CLASSIFICATION_OBJECTIVE
    return f"the objective {metric} is a {other} metric, but the task is {task}; set {use} (the built-in trainer's {task} metrics: {valid})"


def check_objective(decision: TaskDecision, metric: str, label: str = "the labels") -> None:
    """A DataError when the built-in trainer's objective ``metric`` does not fit the task ``prepare_data``
    decided (the config could not know it: ``data.task: auto`` on csv or npz)."""
    why = objective_mismatch(decision.task, metric)
    if why is None:
        return
    other = CLASSIFICATION if decision.task == REGRESSION else REGRESSION
    raise DataError(f"{why}. {label} decided it ({decision.message}); if that is wrong, set data.task: {other}")


def regression_metrics(predicted: np.ndarray, target: np.ndarray, scale: float) -> dict[str, float]:
    """``loss``, ``rmse``, ``mae`` and ``r2`` of ``predicted`` values against ``target`` (both on the
    target's own scale, computed in float64). ``loss`` is the mean squared error over ``scale``
    squared: the training loss when ``scale`` is the training rows' target std.

    >>> import numpy as np
    >>> m = regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 5.0]), scale=2.0)
    >>> round(m["rmse"], 4), round(m["mae"], 4), round(m["loss"], 4), round(m["r2"], 4)
    (0.8165, 0.6667, 0.1667, 0.75)
    """
    import numpy as np

    predicted, target = np.asarray(predicted, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if len(target) == 0:
        nan = float("nan")
        return {"loss": nan, "rmse": nan, "mae": nan, "r2": nan}
    error = predicted - target
    mse = float(np.mean(error**2))
    total = float(np.sum((target - target.mean()) ** 2))
    return {
        "loss": mse / scale**2,
        "rmse": mse**0.5,
        "mae": float(np.mean(np.abs(error))),
        # An evaluated part whose targets are all equal has no variance to explain: R² is undefined.
        "r2": 1.0 - float(np.sum(error**2)) / total if total > 0 else float("nan"),
    }
