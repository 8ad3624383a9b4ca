"""The final model when the winner is retrained several times (``final.repeats``).

Each retrain trains the winning configuration on train+validation with its own seed and reads the
test set once. :func:`finalise` then writes what the study reports and ships: ``final/metrics.json``
holds the shipped model's test metrics (retrain 0's, or with ``final.ensemble`` the ensemble's,
whose test set is read once more, as one model) and, for every test metric, its mean, standard
deviation and value per retrain; ``final/model.pt`` is retrain 0's model or the ensemble.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from snaketune.files import read_json, write_json
from snaketune.layout import MODEL, RESULT, Layout
from snaketune.records import is_test_metric


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finalise(layout: Layout, repeats: int, *, ensemble: bool, builtin: bool, data: str) -> dict[str, Any]:
    """Combine the retrains ``final/repeat-0 .. repeat-<repeats-1>`` into ``final/``; the metrics."""
    runs = [Path(layout.final_run_dir(r)) for r in range(repeats)]
    per_run = [read_json(d / RESULT)["metrics"] for d in runs]
    test_keys = [k for k in per_run[0] if is_test_metric(k) and all(_numeric(m.get(k)) for m in per_run)]
    metrics = dict(per_run[0])
    model = Path(layout.final_file(MODEL))
    if ensemble:
        from snaketune.evaluate import test_scores
        from snaketune.predict import save_ensemble

        save_ensemble(model, [d / MODEL for d in runs])
        metrics.update(test_scores(model, data))  # the shipped model, tested once
    elif builtin:
        tmp = model.with_name(f".{model.name}.tmp")
        shutil.copyfile(runs[0] / MODEL, tmp)
        tmp.replace(model)
    metrics.update(summarise_repeats(per_run, test_keys))
    metrics.update(repeats=repeats, ensemble=ensemble)
    write_json(layout.final_file("metrics.json"), metrics)
    return metrics


REPEAT_SUFFIXES = ("_mean", "_std", "_repeats")  # summarise_repeats' keys for each test metric


def shipped_test_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The shipped model's test metrics in ``final/metrics.json`` (not the retrains' summaries)."""
    return {k: v for k, v in metrics.items() if is_test_metric(k) and not k.endswith(REPEAT_SUFFIXES)}


def summarise_repeats(per_run: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """``<key>_mean``, ``<key>_std`` (population) and ``<key>_repeats`` of each metric over the retrains."""
    out: dict[str, Any] = {}
    for k in keys:
        values = [float(m[k]) for m in per_run]
        out[f"{k}_mean"] = statistics.fmean(values)
        out[f"{k}_std"] = statistics.pstdev(values)
        out[f"{k}_repeats"] = values
    return out
