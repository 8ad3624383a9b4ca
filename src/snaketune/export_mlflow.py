"""The study as MLflow runs, for MLflow's UI and client: the ``mlflow`` extra
(``pip install "snaketune[mlflow]"``), then ``snakemake export_mlflow`` or::

    python -m snaketune.export_mlflow results/<study> [--tracking-uri URI] [--experiment NAME]

What is written, in the experiment named after the study (or ``--experiment``):

* **one parent run for the study** (run name = the study): the resolved config as params
  (``search.method``, ``search_space.lr.low``, ...) and as the artifact ``config.yaml`` when it is
  known (the rule passes it; the command sees only the folder); metrics ``n_trials``, ``n_ok``,
  ``n_failed``, ``best_objective`` and the final model's test metrics; tags ``best_trial``,
  ``metric``, ``direction``; artifacts ``trials.tsv``, ``best.yaml``, ``summary.txt``,
  ``final/`` (model.pt, metrics.json, history.csv, params.yaml) and ``report/`` (the figures, and
  report.html when ``snakemake --report`` wrote it there), each when present;
* **one run per trial**, nested under it (run name = the trial id): the trial's parameters as
  params; its result (``objective``, with cross-validation the mean over the folds and
  ``objective_std``, and every finite number of its metrics.json) as metrics at step 0; its
  learning curves from history.csv as ``history/<column>`` with step = epoch (with
  cross-validation the mean over the folds); tags ``status`` (ok | failed), ``error`` (why it
  failed), ``round``, ``rung``, ``budget``, ``folds``, ``log``; MLflow's run status FINISHED or
  FAILED, and its start and end time from the trial's record;
* **with cross-validation, one run per fold, nested under its trial's run** (run name
  ``<trial>/fold-<k>``, tag ``snaketune.fold``): the fold's own result, curves and status.
  Nesting keeps the trials side by side at one level of MLflow's run table, each with its mean,
  while a trial's folds open beneath it.

Every run carries the tags ``snaketune.study`` (the study) and ``snaketune.kind`` (study, trial or
fold); a trial's and a fold's run also ``snaketune.trial``. **Re-exporting replaces**: the runs of
the experiment tagged with the study are deleted, then written anew from the study's files, so an
export leaves exactly one parent run and one run per trial (and per fold) however often it runs;
runs of other studies or of your own in the same experiment are left alone. MLflow deletes softly:
the runs leave the UI and the searches, and stay in the store until ``mlflow gc`` purges them; in
the study's own store their artifacts (copies of the study's files) are removed at once. Run ids
are new after each export.

The default tracking store is the study's own: ``results/<study>/mlflow/mlflow.db`` (SQLite;
MLflow 3 refuses to start a new file store) with the artifacts in ``results/<study>/mlflow/
artifacts/``; ``--tracking-uri`` (or MLflow's own ``MLFLOW_TRACKING_URI``) sends the study to any
other store or server instead. ``results/<study>/mlflow/export.json`` records where the last
export went. Values a trainer wrote that are not finite numbers, and metric names MLflow does not
accept, are left out with a warning.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import yaml

from snaketune.export_data import (
    ExportError,
    TrialView,
    export_command,
    finite_metrics,
    param_text,
    require,
    result_metrics,
    study_records,
    trial_views,
)
from snaketune.files import read_json, read_yaml, write_json
from snaketune.final import shipped_test_metrics
from snaketune.layout import HISTORY, METRICS, MODEL, PARAMS, Layout
from snaketune.records import best_record

TAG_STUDY, TAG_KIND, TAG_TRIAL, TAG_FOLD = "snaketune.study", "snaketune.kind", "snaketune.trial", "snaketune.fold"
PARENT_RUN, NOTE = "mlflow.parentRunId", "mlflow.note.content"  # MLflow's system tags
# MLflow's limits (mlflow.utils.validation): a batch, a key, a param's and a tag's value.
MAX_BATCH, MAX_PARAMS_TAGS, MAX_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE = 1000, 100, 250, 6000, 8000
# Names MLflow accepts on every platform: letters, digits, _ - . / and spaces, and no path tricks.
_NAME = re.compile(r"[\w.\- /]+")


def _mlflow() -> Any:
    return require("mlflow", extra="mlflow", package="MLflow's client (mlflow-skinny)", what="the MLflow export")


@dataclass(frozen=True)
class Destination:
    """Where an export goes: a tracking URI and an experiment; the study's own store when no URI
    is given (then the experiment's artifacts stay in the study folder too)."""

    tracking_uri: str
    experiment: str
    artifact_location: str | None  # None: the store decides

    @classmethod
    def of(cls, layout: Layout, tracking_uri: str | None = None, experiment: str | None = None) -> Destination:
        name = experiment or layout.study
        if tracking_uri:
            return cls(tracking_uri, name, None)
        db = Path(layout.mlflow_db).resolve()
        return cls(f"sqlite:///{db}", name, Path(layout.mlflow_artifacts).resolve().as_uri())


@dataclass(frozen=True)
class Exported:
    """What an export wrote (and the content of ``export.json``)."""

    study: str
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    trial_runs: int
    fold_runs: int
    replaced_runs: int


def valid_name(name: str) -> bool:
    """A metric or param name MLflow accepts (on any platform)."""
    return (
        len(name) <= MAX_KEY
        and bool(_NAME.fullmatch(name))
        and posixpath.normpath(name) == name
        and not name.startswith(("/", ".."))
        and name != "."
    )


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1000))


def config_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as flat params: ``{"search": {"method": "bayes"}}`` → ``{"search.method": "bayes"}``;
    lists as JSON. A value longer than MLflow takes is cut, with a warning (config.yaml holds it whole).

    >>> config_params({"search": {"method": "bayes", "batch": 4}, "data": {"image_size": [32, 32]}})
    {'search.method': 'bayes', 'search.batch': '4', 'data.image_size': '[32, 32]'}
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(config_params(value, f"{name}."))
            continue
        text = param_text(value)
        if len(text) > MAX_PARAM_VALUE:
            warnings.warn(f"config key {name}: {len(text)} characters, cut to MLflow's {MAX_PARAM_VALUE}", stacklevel=2)
            text = text[: MAX_PARAM_VALUE - 1] + "…"
        out[name] = text
    return out


class _Writer:
    """One export's calls to an MLflow client: runs created with their tags, then their params,
    metrics and tags in batches within MLflow's limits."""

    def __init__(self, client: Any, experiment_id: str, study: str) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self.client, self.experiment_id, self.study = client, experiment_id, study
        self._metric, self._param, self._tag = Metric, Param, RunTag

    def create(self, name: str, kind: str, *, parent: str | None, start: float | None, tags: Mapping[str, Any]) -> str:
        all_tags = {TAG_STUDY: self.study, TAG_KIND: kind, **({PARENT_RUN: parent} if parent else {}), **tags}
        run = self.client.create_run(self.experiment_id, start_time=_ms(start), tags=self._tags(all_tags), run_name=name)
        return run.info.run_id

    @staticmethod
    def _tags(tags: Mapping[str, Any]) -> dict[str, str]:
        return {k: str(v)[:MAX_TAG_VALUE] for k, v in tags.items() if v is not None and v != ""}

    def log(
        self,
        run_id: str,
        *,
        where: str,
        metrics: Mapping[str, float] | None = None,
        curves: Mapping[str, Mapping[int, float]] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Log a run's result ``metrics`` (step 0), ``curves`` (``history/<name>``, step = epoch),
        ``params`` and ``tags``. A name MLflow would refuse is left out with a warning naming ``where``."""
        ts = _ms(timestamp if timestamp is not None else time.time())
        entries = [(name, value, 0) for name, value in (metrics or {}).items()]
        entries += [(f"history/{name}", value, step) for name, curve in (curves or {}).items() for step, value in curve.items()]
        metric_list, refused = [], set()
        for name, value, step in entries:
            if valid_name(name):
                metric_list.append(self._metric(name, value, ts, step))
            else:
                refused.add(name)
        param_list = []
        for name, value in (params or {}).items():
            if valid_name(str(name)):
                param_list.append(self._param(str(name), param_text(value)[:MAX_PARAM_VALUE]))
            else:
                refused.add(str(name))
        if refused:
            warnings.warn(
                f"{where}: {', '.join(sorted(map(repr, refused)))}: not a name MLflow accepts (letters, digits, "
                "_ - . / and spaces); left out of the export",
                stacklevel=2,
            )
        tag_list = [self._tag(k, v) for k, v in self._tags(tags or {}).items()]
        for m, p, t in _batches(metric_list, param_list, tag_list):
            self.client.log_batch(run_id, metrics=m, params=p, tags=t)

    def end(self, run_id: str, ok: bool, end: float | None) -> None:
        self.client.set_terminated(run_id, status="FINISHED" if ok else "FAILED", end_time=_ms(end))


def _batches(metrics: list, params: list, tags: list) -> Iterator[tuple[list, list, list]]:
    """Batches MLflow's log_batch takes: at most 100 params and 100 tags, 1000 entries in all."""
    while metrics or params or tags:
        p, params = params[:MAX_PARAMS_TAGS], params[MAX_PARAMS_TAGS:]
        t, tags = tags[:MAX_PARAMS_TAGS], tags[MAX_PARAMS_TAGS:]
        room = MAX_BATCH - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        yield m, p, t


def _experiment(client: Any, dest: Destination, study: str) -> str:
    exp = client.get_experiment_by_name(dest.experiment)
    if exp is None:
        return client.create_experiment(dest.experiment, artifact_location=dest.artifact_location, tags={TAG_STUDY: study})
    if exp.lifecycle_stage == "deleted":
        raise ExportError(
            f"the MLflow experiment {dest.experiment!r} in {dest.tracking_uri} is deleted. Restore it "
            f"(mlflow experiments restore --experiment-id {exp.experiment_id}) or export to another one (--experiment NAME)"
        )
    return exp.experiment_id


def study_runs(client: Any, experiment_id: str, study: str) -> list[Any]:
    """The live runs of ``experiment_id`` tagged with ``study`` (an earlier export's)."""
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_STUDY}` = '{study}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            page_token=token,
        )
        runs += page
        token = page.token
        if not token:
            return runs


def _delete(client: Any, run: Any, own_artifacts: Path | None) -> None:
    """Delete ``run`` (softly, as MLflow does). In the study's own store, also its artifacts: they
    are copies of the study's files (the final model among them), and would pile up at each export."""
    client.delete_run(run.info.run_id)
    uri = urlparse(run.info.artifact_uri or "")
    if own_artifacts is None or uri.scheme != "file":
        return
    folder = Path(url2pathname(uri.path)).parent  # <artifact root>/<run id>/artifacts
    if folder.parent == own_artifacts and folder.name == run.info.run_id:
        shutil.rmtree(folder, ignore_errors=True)


def _trial_tags(view: TrialView) -> dict[str, Any]:
    r = view.record
    tags = {TAG_TRIAL: view.trial, "status": "ok" if view.ok else "failed", "error": None if view.ok else view.reason}
    tags.update({k: r.get(k) for k in ("round", "bracket", "rung", "budget", "folds", "log")})
    return tags


def _export_trial(w: _Writer, parent: str, view: TrialView, layout: Layout) -> int:
    """The trial's run and its folds' runs under ``parent``; returns how many fold runs."""
    end = view.finished
    start = end - view.seconds if end is not None else None
    run = w.create(view.trial, "trial", parent=parent, start=start, tags=_trial_tags(view))
    where = layout.run_dir(view.trial)
    w.log(run, where=where, metrics=view.metrics, curves=view.curves, params=view.params, timestamp=end)
    for fold in view.folds:
        rec = fold.record or {}
        tags = {TAG_TRIAL: view.trial, TAG_FOLD: fold.fold, "status": "ok" if fold.ok else ("failed" if rec else "no result")}
        if rec and not fold.ok:
            tags["error"] = rec.get("reason")
        fold_run = w.create(fold.run, "fold", parent=run, start=start, tags=tags)
        metrics = result_metrics(rec, layout.run_dir(fold.run)) if rec else {}
        w.log(fold_run, where=layout.run_dir(fold.run), metrics=metrics, curves=fold.curves, params=view.params, timestamp=end)
        w.end(fold_run, fold.ok, end)
    w.end(run, view.ok, end)
    return len(view.folds)


def _winner(layout: Layout, records: Sequence[Mapping[str, Any]], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The study's answer: select/winner.yaml when the study has one, else (a study still running)
    the best record so far by the config's objective, else nothing."""
    if Path(layout.winner).is_file():
        doc = read_yaml(layout.winner) or {}
        return {k: doc.get(k) for k in ("trial", "metric", "direction", "value")}
    if config is None:
        return {}
    metric, direction = config["objective"]["metric"], config["objective"]["direction"]
    best = best_record(records, metric, direction)
    return {"trial": best and best["trial"], "metric": metric, "direction": direction, "value": best and best["objective"]}


def _study_artifacts(layout: Layout) -> list[tuple[str, str | None]]:
    """(path, folder in the run's artifacts) of each file of the study to attach, when present."""
    files: list[tuple[str, str | None]] = [(p, None) for p in (layout.table, layout.best, layout.summary)]
    files += [(layout.final_file(name), "final") for name in (MODEL, METRICS, HISTORY, PARAMS)]
    files += [(layout.report_html, "report")]
    return [(p, folder) for p, folder in files if Path(p).is_file()]


def _export_parent(
    w: _Writer, parent: str, layout: Layout, views: Sequence[TrialView], config: Mapping[str, Any] | None, winner: Mapping
) -> None:
    n_ok = sum(v.ok for v in views)
    metrics = {"n_trials": float(len(views)), "n_ok": float(n_ok), "n_failed": float(len(views) - n_ok)}
    metrics.update(finite_metrics({"best_objective": winner.get("value")}, layout.winner))
    final = Path(layout.final_file(METRICS))
    if final.is_file():
        metrics.update(finite_metrics(shipped_test_metrics(read_json(final)), str(final)))
    tags = {
        "best_trial": winner.get("trial"),
        "metric": winner.get("metric"),
        "direction": winner.get("direction"),
        "results": str(Path(layout.results).resolve()),
        NOTE: (
            f"snaketune study {layout.study}: {len(views)} trials, {n_ok} ok, {len(views) - n_ok} failed"
            + (f"; best trial {winner['trial']}" if winner.get("trial") else "")
        ),
    }
    params = config_params(config) if config is not None else {}
    w.log(parent, where="the study's config", metrics=metrics, params=params, tags=tags)
    for path, folder in _study_artifacts(layout):
        w.client.log_artifact(parent, path, folder)
    if Path(layout.report_dir).is_dir():
        w.client.log_artifacts(parent, layout.report_dir, "report")
    if config is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.yaml"
            path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
            w.client.log_artifact(parent, str(path))


def export_study(
    layout: Layout,
    records: Sequence[Mapping[str, Any]] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
) -> Exported:
    """Export the study at ``layout`` to MLflow (see the module docstring), replacing its runs of an
    earlier export. ``records``: its trials (trials.json's); None = every search result in the
    study folder now. ``config``: the resolved config, logged with the parent run when given."""
    _mlflow()
    from mlflow import MlflowClient

    if "'" in layout.study or "\\" in layout.study:
        raise ExportError(f"the study name {layout.study!r} has a quote or backslash; study names are letters, digits, . _ -")
    records = list(records) if records is not None else study_records(layout)
    views = trial_views(layout, records)
    dest = Destination.of(layout, tracking_uri, experiment)
    if dest.artifact_location is not None:
        Path(layout.mlflow_dir).mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=dest.tracking_uri)
    experiment_id = _experiment(client, dest, layout.study)
    earlier = study_runs(client, experiment_id, layout.study)
    own = Path(layout.mlflow_artifacts).resolve() if dest.artifact_location is not None else None
    for run in earlier:  # first, so that a failed export leaves no second copy beside the first
        _delete(client, run, own)
    w = _Writer(client, experiment_id, layout.study)
    ended = [v for v in views if v.finished is not None]
    start = min((v.finished - v.seconds for v in ended), default=None)
    parent = w.create(layout.study, "study", parent=None, start=start, tags={})
    folds = 0
    try:
        for view in views:
            folds += _export_trial(w, parent, view, layout)
        _export_parent(w, parent, layout, views, config, _winner(layout, records, config))
    except BaseException:
        with contextlib.suppress(Exception):  # the error that stopped the export is the one to see
            w.end(parent, False, None)
        raise
    w.end(parent, True, max((v.finished for v in ended), default=None))
    done = Exported(layout.study, dest.tracking_uri, dest.experiment, experiment_id, parent, len(views), folds, len(earlier))
    write_json(layout.mlflow_receipt, asdict(done))
    return done


def destination_from_env(env: Mapping[str, str] = os.environ) -> tuple[str | None, str | None]:
    """(tracking URI, experiment) from MLflow's own variables MLFLOW_TRACKING_URI and
    MLFLOW_EXPERIMENT_NAME, each None when unset (the study's own store; the study's name)."""
    return env.get("MLFLOW_TRACKING_URI") or None, env.get("MLFLOW_EXPERIMENT_NAME") or None


def main(argv: Sequence[str] | None = None) -> int:
    tracking_uri, experiment = destination_from_env()
    return export_command(
        argv,
        prog="python -m snaketune.export_mlflow",
        description="Export a snaketune study to MLflow: a parent run for the study, a run per trial (and per fold).",
        options={
            "--tracking-uri": {
                "default": tracking_uri,
                "help": "an MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the study's own store "
                "sqlite:///results/<study>/mlflow/mlflow.db)",
            },
            "--experiment": {
                "default": experiment,
                "help": "the experiment's name (default: $MLFLOW_EXPERIMENT_NAME, else the study's name)",
            },
        },
        export=export_study,
        summary=summary_line,
    )


def summary_line(done: Exported) -> str:
    """What an export did, and how to look at it."""
    replaced = f", replacing the {done.replaced_runs} runs of an earlier export" if done.replaced_runs else ""
    folds = f" and {done.fold_runs} fold runs" if done.fold_runs else ""
    text = (
        f"study {done.study}: {done.trial_runs} trial runs{folds} under parent run {done.parent_run_id} "
        f"in experiment {done.experiment!r} of {done.tracking_uri}{replaced}"
    )
    if done.tracking_uri.startswith("sqlite:"):  # a server has its own UI
        text += (
            f"\nbrowse: mlflow ui --backend-store-uri {done.tracking_uri}   (the UI needs the full package: pip install mlflow)"
        )
    return text


if __name__ == "__main__":
    sys.exit(main())
