"""The MLflow export, read back with MLflow's own client: the rule on a real study (a failed
trial among its trials), the command's re-export, another store shared with other runs, and
small studies written to disk the way the workflow writes them (cross-validation, a study still
running, a trainer's hostile files)."""

from __future__ import annotations

import csv
import filecmp
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from export_study import FAILED_REASON, FAILED_TRIAL, exported_by, read_table
from snaketune.export_data import MissingExtra
from snaketune.export_mlflow import TAG_FOLD, TAG_KIND, TAG_STUDY, TAG_TRIAL, export_study, valid_name
from snaketune.layout import Layout
from test_report import make_study

pytest.importorskip("mlflow", reason='the mlflow extra: pip install -e ".[mlflow]"')
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402

PARENT = "mlflow.parentRunId"


@pytest.fixture(autouse=True, scope="module")
def mlflow_env():
    """No telemetry, and the study's own store: no MLFLOW_TRACKING_URI from the machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        yield


def own_store(results: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{(results / 'mlflow' / 'mlflow.db').resolve()}")


def runs_of(client: MlflowClient, experiment: str, view=ViewType.ACTIVE_ONLY) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], run_view_type=view, max_results=1000)


def by_kind(runs, kind: str) -> list:
    return [r for r in runs if r.data.tags.get(TAG_KIND) == kind]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The real study, exported by its rule: `snakemake export_mlflow`."""
    return exported_by("export_mlflow", tmp_path_factory)


# -- the rule on a real study --------------------------------------------------------------------


@pytest.mark.workflow
def test_the_rule_writes_a_parent_run_for_the_study_and_a_run_per_trial_under_it(exported):
    s = exported
    runs = runs_of(own_store(s.results), s.config["study"])
    table = read_table(s.results)
    (parent,) = by_kind(runs, "study")
    trials = by_kind(runs, "trial")
    assert len(runs) == 1 + len(table) == 6
    assert sorted(r.info.run_name for r in trials) == sorted(table)
    assert all(r.data.tags[PARENT] == parent.info.run_id for r in trials)
    assert all(r.data.tags[TAG_STUDY] == "bayes-export" for r in runs)
    # The parent: the resolved config as params, the counts, the answer and the test score.
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    assert parent.data.params["search.method"] == "bayes" and parent.data.params["search.n_trials"] == "5"
    assert parent.data.params["objective.metric"] == "val_accuracy"
    assert parent.data.metrics["n_trials"] == 5 and parent.data.metrics["n_ok"] == 4 and parent.data.metrics["n_failed"] == 1
    assert parent.data.tags["best_trial"] == best["trial"] and parent.data.metrics["best_objective"] == pytest.approx(
        best["value"]
    )
    assert parent.data.metrics["test_accuracy"] == pytest.approx(final["test_accuracy"])
    receipt = json.loads((s.results / "mlflow" / "export.json").read_text())
    assert receipt["parent_run_id"] == parent.info.run_id and receipt["trial_runs"] == 5


@pytest.mark.workflow
def test_a_trials_learning_curve_is_a_metric_history_with_the_epochs_as_steps(exported):
    s = exported
    client = own_store(s.results)
    table = read_table(s.results)
    for run in by_kind(runs_of(client, "bayes-export"), "trial"):
        trial = run.data.tags[TAG_TRIAL]
        if trial == FAILED_TRIAL:
            continue
        with open(s.results / "trials" / trial / "history.csv", newline="") as fh:
            history = list(csv.DictReader(fh))
        curve = client.get_metric_history(run.info.run_id, "history/val_accuracy")
        assert sorted(m.step for m in curve) == [int(h["epoch"]) for h in history] == [1, 2]
        assert sorted(m.value for m in curve) == pytest.approx(sorted(float(h["val_accuracy"]) for h in history))
        assert run.data.metrics["objective"] == pytest.approx(float(table[trial]["objective"]))
        assert run.data.metrics["val_loss"] == pytest.approx(float(table[trial]["val_loss"]))
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "ok" and "error" not in run.data.tags
        for name, value in yaml.safe_load((s.results / "trials" / trial / "params.yaml").read_text()).items():
            assert run.data.params[name] == str(value)


@pytest.mark.workflow
def test_the_failed_trial_is_a_failed_run_with_its_reason(exported):
    s = exported
    runs = by_kind(runs_of(own_store(s.results), "bayes-export"), "trial")
    (failed,) = [r for r in runs if r.info.run_name == FAILED_TRIAL]
    assert failed.info.status == "FAILED" and failed.data.tags["status"] == "failed"
    assert FAILED_REASON in failed.data.tags["error"]
    assert "objective" not in failed.data.metrics and failed.data.params["epochs"] == "2"


@pytest.mark.workflow
def test_the_final_model_the_report_and_the_config_are_the_parents_artifacts(exported, tmp_path):
    s = exported
    client = own_store(s.results)
    (parent,) = by_kind(runs_of(client, "bayes-export"), "study")
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.yaml", "trials.tsv", "best.yaml", "summary.txt", "final", "report"} <= top
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/learning_curves.png", "report/optimisation_history.png", "report/trials.html"} <= report
    model = client.download_artifacts(parent.info.run_id, "final/model.pt", str(tmp_path))
    assert filecmp.cmp(model, s.results / "final" / "model.pt", shallow=False)
    config = yaml.safe_load(Path(client.download_artifacts(parent.info.run_id, "config.yaml", str(tmp_path))).read_text())
    assert config["study"] == "bayes-export" and config["search"]["n_startup"] == 3  # resolved: defaults filled in too
    assert config["early_stopping"]["min_delta"] == 0.0


@pytest.mark.workflow
def test_exporting_again_replaces_the_runs_instead_of_adding_to_them(exported):
    s = exported
    client = own_store(s.results)
    before = runs_of(client, "bayes-export")
    proc = subprocess.run(
        [sys.executable, "-m", "snaketune.export_mlflow", str(s.results)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "replacing the 6 runs of an earlier export" in proc.stdout and "mlflow ui --backend-store-uri sqlite:///" in proc.stdout
    )
    after = runs_of(client, "bayes-export")
    assert len(after) == len(before) == 6
    assert sorted(r.info.run_name for r in after) == sorted(r.info.run_name for r in before)
    assert not {r.info.run_id for r in after} & {r.info.run_id for r in before}
    deleted = runs_of(client, "bayes-export", ViewType.DELETED_ONLY)
    assert {r.info.run_id for r in deleted} == {r.info.run_id for r in before}
    # The replaced runs' copies of the study's files are gone from the study's store.
    (parent,) = by_kind(after, "study")
    assert [p.name for p in (s.results / "mlflow" / "artifacts").iterdir()] == [parent.info.run_id]
    # The command without the config: the same runs, the answer from select/winner.yaml.
    assert parent.data.tags["best_trial"] == yaml.safe_load((s.results / "best.yaml").read_text())["trial"]
    assert "search.method" not in parent.data.params


# -- small studies written to disk ---------------------------------------------------------------


def test_another_store_keeps_its_other_runs_and_gets_one_copy_of_the_study(tmp_path):
    results, _, _ = make_study(tmp_path, n_ok=3, n_failed=1)
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("team", artifact_location=(tmp_path / "artifacts").as_uri())
    mine = client.create_run(exp, run_name="someone else's run").info.run_id
    for _ in range(2):
        done = export_study(Layout.at(results), tracking_uri=uri, experiment="team")
    runs = runs_of(client, "team")
    assert mine in {r.info.run_id for r in runs}
    assert len(by_kind(runs, "trial")) == 4 and len(by_kind(runs, "study")) == 1 and len(runs) == 6
    assert done.replaced_runs == 5 and done.tracking_uri == uri
    assert not (results / "mlflow" / "mlflow.db").exists()  # the study's own store is not made
    assert json.loads((results / "mlflow" / "export.json").read_text())["experiment"] == "team"


def test_cross_validated_trials_have_their_folds_nested_under_them(tmp_path):
    results, _, _ = make_study(tmp_path, n_ok=2, n_failed=1, folds=3)
    done = export_study(Layout.at(results))
    client = own_store(results)
    runs = runs_of(client, "synth")
    trials, folds = by_kind(runs, "trial"), by_kind(runs, "fold")
    assert done.fold_runs == len(folds) == 9 and len(trials) == 3
    for trial in trials:
        mine = [f for f in folds if f.data.tags[PARENT] == trial.info.run_id]
        assert sorted(f.data.tags[TAG_FOLD] for f in mine) == ["0", "1", "2"]
        assert sorted(f.info.run_name for f in mine) == [f"{trial.info.run_name}/fold-{k}" for k in range(3)]
        if trial.data.tags["status"] == "failed":
            assert trial.info.status == "FAILED" and all(f.info.status == "FAILED" for f in mine)
            continue
        # The trial's curve is the mean of its folds' curves, epoch by epoch.
        per_fold = [{m.step: m.value for m in client.get_metric_history(f.info.run_id, "history/val_accuracy")} for f in mine]
        mean = {m.step: m.value for m in client.get_metric_history(trial.info.run_id, "history/val_accuracy")}
        assert sorted(mean) == [1, 2, 3, 4, 5, 6]
        assert mean[6] == pytest.approx(sum(f[6] for f in per_fold) / 3)
        assert trial.data.metrics["objective"] == pytest.approx(sum(f.data.metrics["objective"] for f in mine) / 3)


def test_a_study_still_running_exports_the_trials_it_has(tmp_path):
    """No trials.json yet, and a trial with one of its two folds done: the command exports what
    exists, the unfinished trial as failed with the library's reason."""
    results, _, _ = make_study(tmp_path, n_ok=3, n_failed=0, folds=2)
    (results / "trials" / "r0002" / "fold-1" / "result.json").unlink()
    (results / "trials" / "r0002" / "fold-1" / "history.csv").unlink()
    from snaketune.export_mlflow import main

    assert main([str(results)]) == 0
    runs = runs_of(own_store(results), "synth")
    (unfinished,) = [r for r in by_kind(runs, "trial") if r.info.run_name == "r0002"]
    assert "only 1 of 2 folds have results" in unfinished.data.tags["error"]
    assert [f.info.run_name for f in by_kind(runs, "fold") if f.data.tags[PARENT] == unfinished.info.run_id] == ["r0002/fold-0"]
    (parent,) = by_kind(runs, "study")
    assert "best_trial" not in parent.data.tags  # no winner yet, and no config to rank by


def test_a_trainers_hostile_files_are_left_out_with_a_warning_never_a_crash(tmp_path):
    results, _, _ = make_study(tmp_path, n_ok=2, n_failed=0, history=True)
    trial = results / "trials" / "r0000"
    (trial / "history.csv").write_text(
        "epoch,val_accuracy,val loss (%),note,val_loss\n1,0.5,1,warm,nan\n2,inf,2,hot,0.4\nx,0.7,3,,0.3\n3,0.8,4,,0.2\n"
    )
    record = json.loads((trial / "result.json").read_text())
    record["metrics"].update(weird=float("nan"), huge=10**400, device="cpu", flag=True)
    (trial / "result.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning) as caught:
        export_study(Layout.at(results))
    said = "\n".join(str(w.message) for w in caught)
    assert "weird = nan is not a finite number" in said and "huge = " in said
    assert "'history/val loss (%)': not a name MLflow accepts" in said
    assert "column 'note' has no finite numbers" in said and "without a whole epoch number" in said
    client = own_store(results)
    (run,) = [r for r in by_kind(runs_of(client, "synth"), "trial") if r.info.run_name == "r0000"]
    assert {m.step: m.value for m in client.get_metric_history(run.info.run_id, "history/val_accuracy")} == {1: 0.5, 3: 0.8}
    assert {m.step: m.value for m in client.get_metric_history(run.info.run_id, "history/val_loss")} == {2: 0.4, 3: 0.2}
    assert "weird" not in run.data.metrics and "device" not in run.data.metrics and "flag" not in run.data.metrics
    assert all(math.isfinite(v) for v in run.data.metrics.values())


def test_names_mlflow_refuses_are_told_apart():
    assert valid_name("history/val_accuracy") and valid_name("search_space.lr.low") and valid_name("a b-c")
    for bad in ("val acc (%)", "../x", "/x", "a//b", "x" * 251, "a:b", ""):
        assert not valid_name(bad), bad


def test_without_the_extra_the_error_names_it(tmp_path, monkeypatch):
    results, _, _ = make_study(tmp_path, n_ok=1, n_failed=0)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    with pytest.raises(MissingExtra, match=r'pip install "snaketune\[mlflow\]"'):
        export_study(Layout.at(results))
    assert not (results / "mlflow").exists()
