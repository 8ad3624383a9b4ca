"""The TensorBoard export, read back with TensorBoard's own event reader: the rule on a real study
(a failed trial among its trials), the command's re-export, a folder that is not an export's, and
small studies written to disk the way the workflow writes them (cross-validation, hostile files)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from export_study import FAILED_TRIAL, exported_by, read_table
from snaketune.export_data import ExportError, MissingExtra
from snaketune.export_tensorboard import export_study
from snaketune.layout import Layout
from test_report import make_study

pytest.importorskip("tensorboard", reason='the tensorboard extra: pip install -e ".[tensorboard]"')
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2  # noqa: E402


def events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def hparams_data(acc: EventAccumulator) -> dict[str, plugin_data_pb2.HParamsPluginData]:
    """The HParams plugin's summaries of a run, by tag (experiment, session start, session end)."""
    return {
        tag.rsplit("/", 1)[-1]: plugin_data_pb2.HParamsPluginData.FromString(content)
        for tag, content in acc.PluginTagToContent("hparams").items()
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The real study, exported by its rule: `snakemake export_tensorboard`."""
    return exported_by("export_tensorboard", tmp_path_factory)


@pytest.mark.workflow
def test_every_trial_is_a_run_with_its_learning_curves_and_result(exported):
    s = exported
    logdir = s.results / "tensorboard"
    table = read_table(s.results)
    assert sorted(p.name for p in logdir.iterdir() if p.is_dir()) == sorted(table)
    for trial, row in table.items():
        acc = events(logdir / trial)
        if trial == FAILED_TRIAL:
            assert acc.Tags()["scalars"] == []  # no curve, no result: only its parameters and status
            continue
        with open(s.results / "trials" / trial / "history.csv", newline="") as fh:
            history = list(csv.DictReader(fh))
        curve = scalars(acc, "history/val_accuracy")
        assert sorted(curve) == [int(h["epoch"]) for h in history] == [1, 2]
        assert [curve[int(h["epoch"])] for h in history] == pytest.approx([float(h["val_accuracy"]) for h in history])
        assert {"history/train_loss", "history/val_loss"} <= set(acc.Tags()["scalars"])
        assert scalars(acc, "result/objective")[0] == pytest.approx(float(row["objective"]))
        assert scalars(acc, "result/val_loss")[0] == pytest.approx(float(row["val_loss"]))


@pytest.mark.workflow
def test_the_hparams_table_has_every_trials_parameters_results_and_status(exported):
    s = exported
    logdir = s.results / "tensorboard"
    table = read_table(s.results)
    experiment = hparams_data(events(logdir))["experiment"].experiment
    names = set(yaml.safe_load((s.results / "trials" / "b0-0" / "params.yaml").read_text()))
    assert (
        {h.name for h in experiment.hparam_infos}
        == names
        == {"lr", "n_layers", "hidden_units", "batch_size", "dropout", "weight_decay", "epochs"}
    )
    assert {"result/objective", "result/val_accuracy", "result/val_loss"} <= {m.name.tag for m in experiment.metric_infos}
    batch = next(h for h in experiment.hparam_infos if h.name == "batch_size")
    assert {v.number_value for v in batch.domain_discrete.values} <= {32.0, 64.0}
    for trial in table:
        data = hparams_data(events(logdir / trial))
        start, end = data["session_start_info"].session_start_info, data["session_end_info"].session_end_info
        params = yaml.safe_load((s.results / "trials" / trial / "params.yaml").read_text())
        assert {k: v.number_value for k, v in start.hparams.items()} == pytest.approx({k: float(v) for k, v in params.items()})
        failed = trial == FAILED_TRIAL
        assert end.status == (api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS)


@pytest.mark.workflow
def test_exporting_again_replaces_the_folder(exported):
    s = exported
    logdir = s.results / "tensorboard"
    proc = subprocess.run(
        [sys.executable, "-m", "snaketune.export_tensorboard", str(s.results)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"tensorboard --logdir {s.results}/tensorboard" in proc.stdout
    table = read_table(s.results)
    assert sorted(p.name for p in logdir.iterdir() if p.is_dir()) == sorted(table)
    for run in [logdir, *(logdir / trial for trial in table)]:
        assert len(list(run.glob("events.out.tfevents.*"))) == 1, run  # one export's events, not two
    assert all(len(events(logdir / t).Scalars("result/objective")) == 1 for t in table if t != FAILED_TRIAL)
    assert not list(s.results.glob(".tensorboard*"))  # no temporary or old folder left behind
    assert json.loads((logdir / "export.json").read_text())["trials"] == 5


def test_a_folder_that_is_not_an_exports_is_never_replaced(tmp_path):
    results, _, _ = make_study(tmp_path, n_ok=2, n_failed=0)
    mine = tmp_path / "my-runs"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="holds files that no export wrote"):
        export_study(Layout.at(results), logdir=mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    done = export_study(Layout.at(results), logdir=tmp_path / "new")  # a new folder is fine
    assert done.trials == 2 and (tmp_path / "new" / "r0000").is_dir()


def test_cross_validated_trials_have_a_run_per_fold_under_their_own(tmp_path):
    results, _, _ = make_study(tmp_path, n_ok=2, n_failed=1, folds=3)
    done = export_study(Layout.at(results))
    logdir = results / "tensorboard"
    assert done.folds == 9
    for trial in ("r0000", "r0001"):
        per_fold = [scalars(events(logdir / trial / f"fold-{k}"), "history/val_accuracy") for k in range(3)]
        mean = scalars(events(logdir / trial), "history/val_accuracy")
        assert sorted(mean) == [1, 2, 3, 4, 5, 6]
        assert mean[6] == pytest.approx(sum(f[6] for f in per_fold) / 3, rel=1e-6)
        assert "result/objective_std" in events(logdir / trial).Tags()["scalars"]
    failed = hparams_data(events(logdir / "r0002"))["session_end_info"].session_end_info
    assert failed.status == api_pb2.STATUS_FAILURE


def test_a_trainers_hostile_history_is_left_out_with_a_warning_never_a_crash(tmp_path):
    results, _, _ = make_study(tmp_path, n_ok=2, n_failed=0)
    trial = results / "trials" / "r0000"
    (trial / "history.csv").write_text("epoch,val_accuracy,note\n1,0.5,warm\n2,nan,hot\n3,0.8,\n")
    record = json.loads((trial / "result.json").read_text())
    record["metrics"]["val_loss"] = float("inf")
    (trial / "result.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning) as caught:
        export_study(Layout.at(results))
    said = "\n".join(str(w.message) for w in caught)
    assert "column 'note' has no finite numbers" in said and "val_loss = inf is not a finite number" in said
    acc = events(results / "tensorboard" / "r0000")
    assert scalars(acc, "history/val_accuracy") == pytest.approx({1: 0.5, 3: 0.8})
    assert "result/val_loss" not in acc.Tags()["scalars"] and "history/note" not in acc.Tags()["scalars"]


def test_without_the_extra_the_error_names_it(tmp_path, monkeypatch):
    results, _, _ = make_study(tmp_path, n_ok=1, n_failed=0)
    monkeypatch.setitem(sys.modules, "tensorboard.plugins.hparams.summary_v2", None)
    with pytest.raises(MissingExtra, match=r'pip install "snaketune\[tensorboard\]"'):
        export_study(Layout.at(results))
    assert not (results / "tensorboard").exists()
