"""Every path of a study, in one place.

The rules, the runner, ``collect``, the plots, the export and the summary all ask a
:class:`Layout` for a path; nothing rebuilds one from another file's location. Paths are
relative to the working directory Snakemake runs in (``results/<study>/...``)::

    results/<study>/
      data/prepared.npz, data/summary.json
      trials/<trial>/                  one search run (or trials/<trial>/fold-<k>/, or
                                       trials/<trial>/rung-<i>/ under a schedule):
                                       params.yaml, metrics.json, history.csv, checkpoint.pt,
                                       result.json, train.log, benchmark.tsv
      trials/<trial>/seed-<j>/         select.top_k: the trial re-run with extra seed j (1, 2, ...)
                                       (with cross-validation trials/<trial>/seed-<j>/fold-<k>/)
      rounds/round-<r>.yaml            a Bayesian round's proposals
      rungs/b<b>/r<i>/s<k>.json        a schedule's rung slot (which trial, its result)
      rungs/b<b>/promote-r<i>.yaml     who goes on to rung i
      packs/pack-<p>.json              a pack of trials (search.trials_per_job)
      select/winner.yaml               the chosen trial (select_best; the final stage's input)
      select/top.yaml                  select.top_k: the trials re-evaluated with extra seeds
      select/s<i>/seed-<j>.json        ... the i-th of them re-run with seed j (its result;
                                       with cross-validation select/s<i>/seed-<j>/fold-<k>.json)
      trials.tsv, trials.json
      pareto.tsv                       several objectives (objective.also): the Pareto front
      best.yaml, summary.txt           the answer: the winner, its validation and test scores, the gap
      final/                           the retrained winner: metrics.json, history.csv, model.pt
      final/repeat-<r>/                with final.repeats > 1: each retrain (final/ then holds
                                       their summary and the shipped model)
      report/                          the figures; optuna.journal
      mlflow/                          export_mlflow: the study's own MLflow store (mlflow.db,
                                       artifacts/) and export.json (where the last export went)
      tensorboard/                     export_tensorboard: the log folder, one run per trial
      logs/<job>.log, benchmarks/<job>.tsv
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_ROOT = "results"
# Files of one run's folder (a trial, a fold of it, a rung of it, or the final retrain).
PARAMS, METRICS, HISTORY, CHECKPOINT, RESULT, LOG, BENCHMARK, MODEL = (
    "params.yaml",
    "metrics.json",
    "history.csv",
    "checkpoint.pt",
    "result.json",
    "train.log",
    "benchmark.tsv",
    "model.pt",
)
# ... and what the runner keeps there while a run is unfinished: the lock of the one process that
# may write the folder (with its pid), and how many attempts a SIGKILL from outside ended.
WRITER_LOCK, SIGKILLS = "writer.lock", "sigkills.json"
# The contract's variables a run's trainer got (but where it writes and what it resumes), as
# `KEY='value'` lines to source: README's "Debug one trial" reruns the trial exactly with them.
TRIAL_ENV = "trial.env"


def run_name(trial: str, fold: int | None = None, rung: int | None = None, seed: int | None = None) -> str:
    """The folder of one run under ``trials/``: ``<trial>``, ``<trial>/fold-<k>``, ``<trial>/rung-<i>``
    or ``<trial>/seed-<j>`` (a re-evaluation with extra seed j, ``select.top_k``; with
    cross-validation ``<trial>/seed-<j>/fold-<k>``)."""
    if seed is not None:
        return f"{trial}/seed-{seed}" + (f"/fold-{fold}" if fold is not None else "")
    if rung is not None:
        return f"{trial}/rung-{rung}"
    if fold is not None:
        return f"{trial}/fold-{fold}"
    return trial


def _fold_part(fold: int | str | None) -> str:
    return "" if fold is None else f"/fold-{fold}"


def parse_run_name(run: str) -> tuple[str, int]:
    """(trial, fold) of a search run's name: ``<trial>`` or ``<trial>/fold-<k>``."""
    trial, _, fold = run.partition("/")
    return trial, int(fold.removeprefix("fold-") or 0)


def _written(path: Path) -> bool:
    """Whether a run wrote this file: it exists and is not empty. Without a shared file system a
    history.csv is a declared output of its job, so the runner leaves an empty one where the trainer
    wrote none (:func:`snaketune.runner.leave_declared_files`)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


@dataclass(frozen=True)
class Layout:
    """The paths of the study ``study`` (as strings, the form Snakemake rules want)."""

    study: str
    root: str = RESULTS_ROOT

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Layout:
        return cls(config["study"])

    @classmethod
    def at(cls, results: str | Path) -> Layout:
        """The layout of an existing study folder ``<root>/<study>``."""
        results = Path(results)
        return cls(results.name, str(results.parent))

    @property
    def results(self) -> str:
        return f"{self.root}/{self.study}"

    def copies_root(self, path: str | os.PathLike) -> str:
        """Where a job finds this study's files, given the path Snakemake handed it for one of them
        (an input, output or log): ``""`` where that is the study's own path (a shared file
        system), else the folder that holds the job's copies. Without a shared file system
        (Kubernetes, ``--shared-fs-usage none``) Snakemake keeps every file in a storage provider,
        copies a job's inputs to ``.snakemake/storage/<provider>/<prefix>/results/<study>/...``
        before it runs and stores its outputs from there; the copies keep the study's relative
        paths below that folder, so a job that works in it reads and writes them by this Layout's
        paths.

        >>> Layout("s").copies_root("results/s/trials.tsv")
        ''
        >>> Layout("s").copies_root(".snakemake/storage/s3/bucket/results/s/trials/t1/result.json")
        '.snakemake/storage/s3/bucket'
        """
        p = os.path.normpath(path)
        if p == self.results or p.startswith(self.results + os.sep):
            return ""
        # The last occurrence: a storage prefix may itself name a results/<study> folder.
        head, found, _ = p.rpartition(os.sep + self.results + os.sep)
        if not found:
            raise ValueError(f"{path} is neither a file of study {self.study!r} ({self.results}/...) nor a copy of one")
        return head

    def foreign_report(self, argv: Sequence[str]) -> str | None:
        """Why a ``snakemake --report PATH`` command line would write this study's report into
        another study's folder (``results/<other>/...``: run without that study's
        ``--configfile``), or None. A report outside ``results/`` is the user's choice."""
        path = None
        for i, arg in enumerate(argv):
            if arg == "--report" and i + 1 < len(argv):
                path = argv[i + 1]
            elif arg.startswith("--report="):
                path = arg.removeprefix("--report=")
        if not path or path.startswith("-"):
            return None
        parts = Path(os.path.normpath(path)).parts
        if len(parts) < 3 or parts[0] != self.root or parts[1] == self.study:
            return None
        return (
            f"--report {path} is in the folder of study {parts[1]!r}, but the config loaded is study "
            f"{self.study!r}: that report would show {self.study!r}. Add the study's config file, e.g. "
            f"snakemake --report {path} --configfile <{parts[1]}'s config>.yaml"
        )

    # data
    @property
    def data(self) -> str:
        return f"{self.results}/data/prepared.npz"

    @property
    def data_summary(self) -> str:
        return f"{self.results}/data/summary.json"

    # one run's folder and files
    @property
    def trials_dir(self) -> str:
        return f"{self.results}/trials"

    def run_dir(self, run: str) -> str:
        return f"{self.trials_dir}/{run}"

    def run_file(self, run: str, name: str) -> str:
        return f"{self.trials_dir}/{run}/{name}"

    def result(self, run: str) -> str:
        return self.run_file(run, RESULT)

    def search_result_files(self) -> list[str]:
        """The result files of the search runs that exist now, finished study or not: each trial's,
        each fold's (``<trial>/fold-<k>``) and each rung's (``<trial>/rung-<i>``). The re-runs with
        extra seeds (``<trial>/seed-<j>``) are not search runs."""
        found = []
        for pattern in (f"*/{RESULT}", f"*/fold-*/{RESULT}", f"*/rung-*/{RESULT}"):
            found += Path(self.trials_dir).glob(pattern)
        return sorted(str(p) for p in found)

    def trial_history_files(self, record: Mapping[str, Any]) -> list[Path]:
        """Where a trial's ``history.csv`` files live: one per fold with cross-validation; with a
        schedule the highest rung's (it holds the whole curve, earlier rungs included). Missing
        files are left out (custom trainers need not write one)."""
        trial = str(record["trial"])
        folds = int(record.get("folds") or 1)
        if folds > 1:
            runs = [run_name(trial, fold=f) for f in range(folds)]
        elif record.get("rung") is not None:
            runs = [run_name(trial, rung=int(record["rung"]))]
        else:
            runs = [trial]
        return [p for p in (Path(self.run_file(r, HISTORY)) for r in runs) if _written(p)]

    # bayes rounds
    def round_file(self, round_index: int | str) -> str:
        return f"{self.results}/rounds/round-{round_index}.yaml"

    # schedules: rung slots and promotions
    def slot_file(self, bracket: int | str, rung: int | str, slot: int | str) -> str:
        return f"{self.results}/rungs/b{bracket}/r{rung}/s{slot}.json"

    def slot_log(self, bracket: int | str, rung: int | str, slot: int | str) -> str:
        return f"{self.results}/rungs/b{bracket}/r{rung}/s{slot}.log"

    def promotion_file(self, bracket: int | str, rung: int | str) -> str:
        return f"{self.results}/rungs/b{bracket}/promote-r{rung}.yaml"

    # packs
    def pack_file(self, pack: int | str) -> str:
        return f"{self.results}/packs/pack-{pack}.json"

    def pack_log(self, pack: int | str) -> str:
        return f"{self.results}/packs/pack-{pack}.log"

    # select.top_k: the top trials re-evaluated with extra seeds
    @property
    def top(self) -> str:
        return f"{self.results}/select/top.yaml"

    def reeval_file(self, slot: int | str, seed: int | str, fold: int | str | None = None) -> str:
        """The record of slot ``slot``'s re-run with extra seed ``seed`` (with cross-validation one
        per fold)."""
        return f"{self.results}/select/s{slot}/seed-{seed}{_fold_part(fold)}.json"

    def reeval_log(self, slot: int | str, seed: int | str, fold: int | str | None = None) -> str:
        return f"{self.results}/select/s{slot}/seed-{seed}{_fold_part(fold)}.log"

    # final.front: more members of the Pareto front, retrained (slot k = the k-th of the front file)
    @property
    def front(self) -> str:
        """The choose_front job's file: the front members to retrain, their parameters and best epochs."""
        return f"{self.results}/select/front.yaml"

    def front_dir(self, slot: int | str) -> str:
        return f"{self.final_dir}/front/s{slot}"

    def front_file(self, slot: int | str) -> str:
        """The record of slot ``slot``'s retrain (its result, or ``skipped``)."""
        return f"{self.final_dir}/front/s{slot}.json"

    @property
    def front_table(self) -> str:
        """The retrained front members' validation and test scores, the winner's first."""
        return f"{self.final_dir}/front.tsv"

    # the study's tables and the winner
    @property
    def table(self) -> str:
        return f"{self.results}/trials.tsv"

    @property
    def records(self) -> str:
        return f"{self.results}/trials.json"

    @property
    def pareto(self) -> str:
        """The Pareto front (several objectives): the rows of trials.tsv on it."""
        return f"{self.results}/pareto.tsv"

    @property
    def winner(self) -> str:
        """The chosen trial (``select_best``): the final stage's input."""
        return f"{self.results}/select/winner.yaml"

    @property
    def best(self) -> str:
        """The answer (``summarise``): the winner with the final model's test score and the gap."""
        return f"{self.results}/best.yaml"

    # the final stage
    @property
    def final_dir(self) -> str:
        return f"{self.results}/final"

    def final_file(self, name: str, repeat: int | str | None = None) -> str:
        """A file of the final model (``repeat`` None), or of one of its retrains (``final.repeats``)."""
        return f"{self.final_run_dir(repeat)}/{name}"

    def final_run_dir(self, repeat: int | str | None = None) -> str:
        return self.final_dir if repeat is None else f"{self.final_dir}/repeat-{repeat}"

    def final_history_files(self) -> list[Path]:
        """The final retrain's ``history.csv``, or each retrain's (``final.repeats``), as they exist."""
        single = Path(self.final_file(HISTORY))
        if _written(single):
            return [single]
        repeats = [p for p in Path(self.final_dir).glob(f"repeat-*/{HISTORY}") if _written(p)]
        return sorted(repeats, key=lambda p: int(p.parent.name.removeprefix("repeat-")))

    # for people
    @property
    def report_dir(self) -> str:
        return f"{self.results}/report"

    def figure(self, name: str) -> str:
        return f"{self.report_dir}/{name}"

    @property
    def journal(self) -> str:
        return f"{self.results}/optuna.journal"

    # the MLflow and TensorBoard exports (snaketune.export_mlflow, snaketune.export_tensorboard)
    @property
    def mlflow_dir(self) -> str:
        return f"{self.results}/mlflow"

    @property
    def mlflow_db(self) -> str:
        """The default MLflow store's database (SQLite: MLflow 3 refuses a new file store)."""
        return f"{self.mlflow_dir}/mlflow.db"

    @property
    def mlflow_artifacts(self) -> str:
        """The default MLflow store's artifact root."""
        return f"{self.mlflow_dir}/artifacts"

    @property
    def mlflow_receipt(self) -> str:
        """What the last MLflow export wrote, and where (any tracking URI): the rule's output."""
        return f"{self.mlflow_dir}/export.json"

    @property
    def tensorboard_dir(self) -> str:
        return f"{self.results}/tensorboard"

    @property
    def summary(self) -> str:
        return f"{self.results}/summary.txt"

    @property
    def report_html(self) -> str:
        return f"{self.results}/report.html"

    # bookkeeping jobs
    def log(self, job: str) -> str:
        return f"{self.results}/logs/{job}.log"

    def benchmark(self, job: str) -> str:
        return f"{self.results}/benchmarks/{job}.tsv"
