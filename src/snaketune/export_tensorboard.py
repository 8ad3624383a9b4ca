"""The study as a TensorBoard log folder: the ``tensorboard`` extra
(``pip install "snaketune[tensorboard]"``), then ``snakemake export_tensorboard`` or::

    python -m snaketune.export_tensorboard results/<study> [--logdir DIR]
    tensorboard --logdir results/<study>/tensorboard

What is written (written with torch's SummaryWriter and TensorBoard's HParams plugin format):

* one run per trial, ``<trial>/``: its learning curves from history.csv as the scalars
  ``history/<column>`` with step = epoch (with cross-validation the mean over the folds, for the
  epochs every fold reached); its result (``objective``, with cross-validation ``objective_std``,
  and every finite number of its metrics.json) as the scalars ``result/<name>``; and its HParams
  session: the trial's parameters, and status success or failure (a failed trial has parameters
  and no result, so the HParams table lists it and its status filter finds it);
* with cross-validation, one run per fold, ``<trial>/fold-<k>/``: the fold's curves and result;
* at the top, the HParams experiment: every parameter (with the values or the range the trials
  took) and the ``result/`` metrics, which the HParams dashboard's table, parallel coordinates
  and scatter plots show for every trial.

Re-exporting replaces the folder whole (written beside it, then swapped in), so nothing of an
earlier export stays. A ``--logdir`` of your own must be new, empty, or an earlier export's
(it holds ``export.json``): a folder with other files in it is refused, never replaced. Values a
trainer wrote that are not finite numbers are left out with a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from snaketune.export_data import ExportError, TrialView, export_command, require, result_metrics, study_records, trial_views
from snaketune.files import write_json
from snaketune.layout import Layout

# What an export writes beside the runs: which study, how many trials; it marks the folder as an
# export's, which a re-export may replace.
RECEIPT = "export.json"
# A numeric parameter whose values repeat (a grid's, a choice's) and are at most this many is shown
# with checkboxes (a discrete domain); otherwise as a range.
MAX_DISCRETE = 16


@dataclass(frozen=True)
class Exported:
    study: str
    logdir: str
    trials: int
    folds: int


def _hparams_api() -> Any:
    return require(
        "tensorboard.plugins.hparams.summary_v2", extra="tensorboard", package="TensorBoard", what="the TensorBoard export"
    )


def _summary_writer() -> Any:
    # torch's SummaryWriter needs the tensorboard package; without it torch raises an ImportError.
    return require(
        "torch.utils.tensorboard", extra="tensorboard", package="TensorBoard", what="the TensorBoard export"
    ).SummaryWriter


def hparam_value(value: Any) -> bool | float | str:
    """A parameter's value as the HParams plugin takes it: a bool, a number or text (anything
    else, such as a list, as JSON text)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return json.dumps(value)


def hparam_domains(views: Sequence[TrialView]) -> dict[str, Any]:
    """Each parameter's HParams domain, from the values the trials took: checkboxes (Discrete) for
    booleans, text, and numbers whose few values repeat; a range (RealInterval) for other numbers
    (a sampled range's). A parameter whose values are of several kinds is shown as text."""
    hp = _hparams_api()
    values: dict[str, list] = {}
    for v in views:
        for name, value in v.params.items():
            values.setdefault(name, []).append(hparam_value(value))
    domains = {}
    for name, seen in values.items():
        kinds = {type(x) for x in seen}
        if len(kinds) > 1:
            domains[name] = hp.Discrete(sorted({str(x) for x in seen}))
        elif kinds == {float} and not (len(set(seen)) < len(seen) and len(set(seen)) <= MAX_DISCRETE):
            domains[name] = hp.RealInterval(min(seen), max(seen))
        else:
            domains[name] = hp.Discrete(sorted(set(seen)))
    return domains


def _session_end(ok: bool, end: float | None) -> Any:
    """The HParams plugin's session-end summary: the trial's status (TensorBoard's summary_v2
    writes no such summary; its format is the plugin's, from its metadata module)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS if ok else api_pb2.STATUS_FAILURE)
    if end is not None:
        info.end_time_secs = end
    content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=info))
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=content, tensor=metadata.NULL_TENSOR)
    return summary


def _write_scalars(
    writer: Any, curves: Mapping[str, Mapping[int, float]], result: Mapping[str, float], when: float | None
) -> None:
    for name, curve in curves.items():
        for step, value in sorted(curve.items()):
            writer.add_scalar(f"history/{name}", value, step, walltime=when)
    for name, value in result.items():
        writer.add_scalar(f"result/{name}", value, 0, walltime=when)


def write_logdir(logdir: Path, views: Sequence[TrialView]) -> int:
    """The runs and the HParams experiment of ``views`` in the empty folder ``logdir``; returns
    how many fold runs."""
    hp, SummaryWriter = _hparams_api(), _summary_writer()
    domains = hparam_domains(views)
    metric_names = sorted({name for v in views for name in v.metrics}, key=lambda n: (n != "objective", n))
    with SummaryWriter(log_dir=str(logdir)) as top:
        top.file_writer.add_summary(
            hp.hparams_config_pb(
                hparams=[hp.HParam(name, domain) for name, domain in domains.items()],
                metrics=[hp.Metric(f"result/{name}", display_name=name) for name in metric_names],
                time_created_secs=min((v.finished - v.seconds for v in views if v.finished is not None), default=None),
            )
        )
    folds = 0
    for v in views:
        end = v.finished
        with SummaryWriter(log_dir=str(logdir / v.trial)) as w:
            params = {name: hparam_value(value) for name, value in v.params.items()}
            w.file_writer.add_summary(
                hp.hparams_pb(params, trial_id=v.trial, start_time_secs=end - v.seconds if end is not None else None)
            )
            _write_scalars(w, v.curves, v.metrics, end)
            w.file_writer.add_summary(_session_end(v.ok, end))
        for fold in v.folds:
            result = result_metrics(fold.record, str(logdir / fold.run)) if fold.record else {}
            with SummaryWriter(log_dir=str(logdir / fold.run)) as w:
                _write_scalars(w, fold.curves, result, end)
            folds += 1
    return folds


def _replaceable(logdir: Path) -> bool:
    """``logdir`` may be replaced: it does not exist, is empty, or holds an earlier export."""
    return not logdir.exists() or (logdir.is_dir() and (not any(logdir.iterdir()) or (logdir / RECEIPT).is_file()))


def export_study(
    layout: Layout, records: Sequence[Mapping[str, Any]] | None = None, *, logdir: str | os.PathLike | None = None
) -> Exported:
    """Write the study at ``layout`` as a TensorBoard log folder (see the module docstring):
    ``logdir``, by default ``results/<study>/tensorboard``, replaced whole. ``records``: its
    trials (trials.json's); None = every search result in the study folder now."""
    _hparams_api(), _summary_writer()  # a missing extra is said before anything is read
    target = Path(logdir if logdir is not None else layout.tensorboard_dir)
    if not _replaceable(target):
        raise ExportError(
            f"{target} holds files that no export wrote (it has no {RECEIPT}); an export replaces its folder "
            "whole, so name a new or empty folder with --logdir"
        )
    records = list(records) if records is not None else study_records(layout)
    views = trial_views(layout, records)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        folds = write_logdir(tmp, views)
        done = Exported(layout.study, str(target), len(views), folds)
        write_json(tmp / RECEIPT, asdict(done))
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    return export_command(
        argv,
        prog="python -m snaketune.export_tensorboard",
        description="Export a snaketune study as a TensorBoard log folder: scalars per trial and the HParams table.",
        options={"--logdir": {"default": None, "help": "where to write (default: results/<study>/tensorboard); replaced whole"}},
        export=export_study,
        summary=summary_line,
    )


def summary_line(done: Exported) -> str:
    folds = f" and {done.folds} fold runs" if done.folds else ""
    return f"study {done.study}: {done.trials} trial runs{folds} -> {done.logdir}\nbrowse: tensorboard --logdir {done.logdir}"


if __name__ == "__main__":
    sys.exit(main())
