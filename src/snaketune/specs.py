"""What a training job is told to do: typed run specs, built by the plan, read by the runner.

A training job gets one spec as JSON on its command line (``snaketune-trial --spec ...``). The
spec is a Snakemake param, so it is also the job's identity: change anything in it (the
parameters, the objective, the early stopping) and Snakemake reruns the job; nothing else does.
Four kinds, told apart by their ``kind`` field:

* :class:`RunSpec` (``run``): one run of the trainer: a search trial, one fold of it, or the final
  retrain;
* :class:`PackSpec` (``pack``): several search runs in one job (``search.trials_per_job``);
* :class:`SlotSpec` (``slot``): one slot of a multi-fidelity rung, filled at run time by the
  ``promote`` job (rung 0's slots hold the bracket's own runs);
* :class:`ReevalSpec` (``reeval``): one re-run, with an extra seed, of one of the top trials the
  ``choose_top`` job chose (``select.top_k``);
* :class:`FrontSpec` (``front``): the final retrain of one more member of the Pareto front, the
  ``slot``-th that the ``choose_front`` job chose (``final.front``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class TrainerSettings:
    """What every run of the trainer in a study shares (part of each run's identity)."""

    data: str  # the prepared data file, or the user's data.path
    command: str | None  # None: the built-in trainer
    metric: str
    direction: str
    patience: int  # early stopping: epochs without improvement; 0 = off
    min_delta: float
    family: str  # the built-in trainer's model.family
    function: str | None = None  # trainer.function: "module:function" run in the trial's process


def builtin_trainer(config: Mapping[str, Any]) -> bool:
    """Whether a study trains with the built-in trainer (neither trainer.command nor trainer.function)."""
    trainer = config["trainer"]
    return trainer.get("command") is None and trainer.get("function") is None


@dataclass(frozen=True)
class RunSpec:
    """One run of the trainer under the trainer contract."""

    trial: str
    dir: str  # the run's folder: params.yaml, metrics.json, history.csv, checkpoint.pt, result.json
    log: str  # the job's log (the table's log column)
    stage: str  # search | final
    seed: int
    trainer: TrainerSettings
    # Parameters known when the DAG is built, or read at run time from `params_from` (a Bayesian
    # round's file, key `params_key`; select/winner.yaml for the final stage).
    params: dict[str, Any] | None = None
    params_from: str | None = None
    params_key: str | None = None
    fold: int = 0
    folds: int = 1
    round: int | None = None
    budget: int | None = None  # epochs this run may train; None: the `epochs` parameter
    resume: str | None = None  # a checkpoint to continue from (a promoted trial's previous rung)
    restore_best: bool = True  # end with the best epoch's weights (not for multi-fidelity rungs)
    keep_checkpoint: bool = False  # keep checkpoint.pt after a successful run (rungs to be promoted)
    kind: str = field(default="run", init=False)


@dataclass(frozen=True)
class PackSpec:
    """Several search runs in one job, each with its own folder, result and status."""

    pack: int
    file: str  # the pack's record: which runs it ran, where their results are
    runs: tuple[RunSpec, ...]
    kind: str = field(default="pack", init=False)


@dataclass(frozen=True)
class SlotSpec:
    """One slot of rung ``rung`` of bracket ``bracket``: rung 0 holds ``first`` (a run of the
    bracket's configuration); a later rung's slot k holds the k-th trial of ``promotion``."""

    bracket: int
    rung: int
    slot: int
    file: str  # the slot's record (its result, or `skipped`)
    budget: int  # epochs a trial has trained when this rung ends
    last_rung: bool
    log: str
    trials_dir: str
    search_seed: int
    trainer: TrainerSettings
    first: RunSpec | None = None  # rung 0
    promotion: str | None = None  # later rungs: the promote job's file
    kind: str = field(default="slot", init=False)


@dataclass(frozen=True)
class ReevalSpec:
    """Extra seed ``seed`` (1, 2, ...; the search run is seed 0) of the ``slot``-th trial that the
    ``choose_top`` job wrote to ``top``: a fresh run of its parameters in ``trials/<trial>/seed-<seed>/``
    (with cross-validation fold ``fold`` of it, in ``trials/<trial>/seed-<seed>/fold-<fold>/``)."""

    slot: int
    seed: int
    file: str  # the re-run's record (its result, or `skipped`)
    top: str  # the choose_top job's file: the trials and their parameters
    log: str
    trials_dir: str
    search_seed: int
    trainer: TrainerSettings  # with a schedule: patience 0, like the rungs
    budget: int | None = None  # with a schedule: the largest budget; else the `epochs` parameter
    restore_best: bool = True  # with a schedule: False, like the rungs
    fold: int = 0  # with cross-validation: the fold this job trains (each fold is its own job)
    folds: int = 1
    kind: str = field(default="reeval", init=False)


@dataclass(frozen=True)
class FrontSpec:
    """The ``slot``-th configuration the ``choose_front`` job wrote to ``front``, retrained as the
    winner is (stage final, its best epoch count) in ``dir``; its record goes to ``file``."""

    slot: int
    file: str  # the retrain's record (its result, or `skipped`)
    front: str  # the choose_front job's file
    dir: str
    log: str
    search_seed: int  # the retrain's seed is the member's own (snaketune.front.front_run)
    trainer: TrainerSettings
    kind: str = field(default="front", init=False)


Spec = RunSpec | PackSpec | SlotSpec | ReevalSpec | FrontSpec


def to_json(spec: Spec) -> str:
    """The spec as canonical JSON (sorted keys): the same spec always gives the same text.

    The text of ``json.dumps(dataclasses.asdict(spec), sort_keys=True, separators=(",", ":"))``,
    without asdict's deep copies: JSON's own encoder walks the spec and asks :func:`_fields_of` for
    each dataclass in it. The workflow asks for a spec per job, and building a large DAG waited on
    them (issue 16).
    """
    return _ENCODER.encode(spec)


@cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """The fields of a dataclass, in order; None for any other class."""
    return tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None


def _fields_of(value: Any) -> dict[str, Any]:
    """A dataclass as the dict of its fields (what asdict gives, one level deep); the encoder then
    encodes their values, nested dataclasses included. Anything else is not JSON, as for json.dumps."""
    names = _field_names(type(value))
    if names is None:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return {name: getattr(value, name) for name in names}


# json.dumps(..., sort_keys=True, separators=(",", ":")) builds this encoder at every call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_fields_of)


# The fields that name files of the study, relative to Snakemake's working directory. Not `log`:
# the trials table shows it, and Snakemake itself writes that file.
PATH_FIELDS = ("dir", "file", "data", "params_from", "resume", "promotion", "top", "front", "trials_dir")


def rooted(text: str, root: str) -> str:
    """The spec ``text`` with each of its relative file paths (:data:`PATH_FIELDS`, in the spec, its
    trainer settings and its runs) under ``root``: where a job without a shared file system has
    its copies of the study's files (:meth:`snaketune.layout.Layout.copies_root`). The trainer
    still runs in the job's working directory, where the workflow's sources are."""

    def under(data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for name in PATH_FIELDS:
            if isinstance(out.get(name), str) and not os.path.isabs(out[name]):
                out[name] = os.path.join(root, out[name])
        for name in ("trainer", "first"):  # nested specs; never `params`, the user's values
            if isinstance(out.get(name), dict):
                out[name] = under(out[name])
        if isinstance(out.get("runs"), list):
            out["runs"] = [under(r) for r in out["runs"]]
        return out

    return json.dumps(under(json.loads(text)), sort_keys=True, separators=(",", ":"))


def _build(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls) if f.init}
    unknown = set(data) - names - {"kind"}
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    return cls(**{k: v for k, v in data.items() if k in names})


def _run(data: dict[str, Any]) -> RunSpec:
    return _build(RunSpec, {**data, "trainer": TrainerSettings(**data["trainer"])})


def from_json(text: str) -> Spec:
    """The spec ``to_json`` wrote."""
    data = json.loads(text)
    kind = data.get("kind")
    if kind == "run":
        return _run(data)
    if kind == "pack":
        return _build(PackSpec, {**data, "runs": tuple(_run(r) for r in data["runs"])})
    if kind == "slot":
        first = _run(data["first"]) if data.get("first") else None
        return _build(SlotSpec, {**data, "trainer": TrainerSettings(**data["trainer"]), "first": first})
    if kind == "reeval":
        return _build(ReevalSpec, {**data, "trainer": TrainerSettings(**data["trainer"])})
    if kind == "front":
        return _build(FrontSpec, {**data, "trainer": TrainerSettings(**data["trainer"])})
    raise ValueError(f"unknown spec kind {kind!r}; valid: run, pack, slot, reeval, front")
