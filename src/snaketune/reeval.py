"""Re-evaluation of the top trials with extra seeds (``select.top_k``): a choice that resists luck.

On a small validation set one example is a large step of accuracy, so the best trial of a search
is often one lucky run among near-ties. With ``select.top_k: k`` the ``choose_top`` job writes the
k best trials of the search (``records.standings``) to ``select/top.yaml``; job (slot i, seed j)
trains the i-th of them again with extra seed j (1 .. ``select.seeds``) in
``trials/<trial>/seed-<j>/``; the table gets each one's mean and standard deviation
(``records.combine_seeds``) and ``best.yaml`` the best mean (``records.select_best``). The jobs are
fixed slots, known when the DAG is built, like a multi-fidelity rung's; a slot beyond the
successful trials is recorded as ``skipped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snaketune.files import read_yaml
from snaketune.layout import Layout, run_name
from snaketune.plan import reeval_seed
from snaketune.records import ranked
from snaketune.runner import run_into_slot
from snaketune.specs import ReevalSpec, RunSpec


def top_trials(
    records: Sequence[Mapping[str, Any]], k: int, objective: Any, direction: str | None = None
) -> list[dict[str, Any]]:
    """The ``k`` best successful trials, best first (the study's one ranking rule), with their
    parameters and search score: what ``select/top.yaml`` lists."""
    return [
        {"trial": r["trial"], "objective": r["objective"], "params": r["params"]}
        for r in ranked(records, objective, direction, ok_only=True)[:k]
    ]


def reeval_run(spec: ReevalSpec) -> RunSpec | None:
    """The run of the spec's slot and seed, or None when the top file has fewer trials than slots."""
    top = read_yaml(spec.top)["trials"]
    if spec.slot >= len(top):
        return None
    trial = top[spec.slot]["trial"]
    trials = Layout.at(Path(spec.trials_dir).parent)
    cv = spec.folds > 1
    return RunSpec(
        trial=trial,
        dir=trials.run_dir(run_name(trial, fold=spec.fold if cv else None, seed=spec.seed)),
        log=spec.log,
        stage="search",
        seed=reeval_seed(spec.search_seed, trial, spec.seed, spec.fold),
        trainer=spec.trainer,
        params=top[spec.slot]["params"],
        budget=spec.budget,
        restore_best=spec.restore_best,
        fold=spec.fold,
        folds=spec.folds,
    )


def run_reeval(spec: ReevalSpec, **kw: Any) -> dict[str, Any]:
    """Run the re-evaluation and write its record (the run's result, or ``skipped``)."""
    where = {"slot": spec.slot, "extra_seed": spec.seed, "budget": spec.budget}
    if spec.folds > 1:
        where["fold"] = spec.fold
    return run_into_slot(reeval_run(spec), spec.file, where, "fewer successful trials than select.top_k", **kw)
