"""One slot of a multi-fidelity rung: the trial the promotion put there, trained to the rung's budget.

Rung 0's slots hold the bracket's configurations; a later rung's slot k holds the k-th trial the
``promote`` job chose. A promoted trial trains in ``trials/<trial>/rung-<i>/`` and resumes from
its previous rung's checkpoint, so it trains only the epochs it has not trained yet. An empty
slot (fewer successful trials than slots) is recorded as ``skipped``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from snaketune.files import read_yaml
from snaketune.layout import CHECKPOINT, PARAMS, Layout, run_name
from snaketune.plan import trial_seed
from snaketune.runner import run_into_slot
from snaketune.specs import RunSpec, SlotSpec


def slot_run(spec: SlotSpec) -> RunSpec | None:
    """The run that fills the slot, or None when the promotion left it empty."""
    trials = Layout.at(Path(spec.trials_dir).parent)
    if spec.rung == 0:
        trial, base = spec.first.trial, spec.first
    else:
        promoted = read_yaml(spec.promotion)["trials"]
        if spec.slot >= len(promoted):
            return None
        trial = promoted[spec.slot]
        previous = trials.run_dir(run_name(trial, rung=spec.rung - 1))
        base = RunSpec(
            trial=trial,
            dir="",
            log="",
            stage="search",
            seed=0,
            trainer=spec.trainer,
            params=read_yaml(Path(previous) / PARAMS),
            resume=str(Path(previous) / CHECKPOINT),
        )
    return replace(
        base,
        dir=trials.run_dir(run_name(trial, rung=spec.rung)),
        log=spec.log,
        seed=trial_seed(spec.search_seed, trial),  # the same in every rung: the checkpoint must match
        budget=spec.budget,
        trainer=replace(spec.trainer, patience=0),  # the schedule decides how long a trial trains
        restore_best=False,  # continue from the last epoch, not the best one
        keep_checkpoint=not spec.last_rung,
    )


def run_slot(spec: SlotSpec, **kw: Any) -> dict[str, Any]:
    where = {"bracket": spec.bracket, "rung": spec.rung, "slot": spec.slot, "budget": spec.budget}
    return run_into_slot(slot_run(spec), spec.file, where, "fewer successful trials than slots", **kw)
