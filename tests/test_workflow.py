"""The real snakemake CLI on tiny studies: the whole pipeline, re-runs, widening, failures, errors."""

import json
import shutil
import sys
import textwrap

import pytest
import torch
import yaml

from conftest import REPO, job_count, tiny_config

pytestmark = pytest.mark.workflow


def result_mtimes(study):
    return {p.parent.name: p.stat().st_mtime_ns for p in (study.results / "trials").glob("*/result.json")}


def test_tiny_grid_end_to_end(study):
    s = study()
    s.run()
    table = s.table()
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    assert {
        "trial",
        "status",
        "objective",
        "lr",
        "n_layers",
        "val_accuracy",
        "val_loss",
        "best_epoch",
        "epochs_run",
        "seconds",
        "error",
    } <= set(table.columns)
    assert list(table["objective"]) == sorted(table["objective"], reverse=True)  # best first

    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert best["trial"] == table["trial"][0]
    assert best["value"] == pytest.approx(table["objective"][0])
    assert best["params"]["lr"] in (0.01, 0.05) and best["params"]["epochs"] == 2

    final = json.loads((s.results / "final" / "metrics.json").read_text())
    assert 0 <= final["test_accuracy"] <= 1 and final["test_loss"] > 0
    assert final["epochs_run"] == best["best_epoch"]  # retrained for the best trial's epochs
    assert yaml.safe_load((s.results / "final" / "params.yaml").read_text()) == best["params"]
    model = torch.load(s.results / "final" / "model.pt", weights_only=True)
    assert model["hparams"]["n_layers"] == best["params"]["n_layers"]

    # trials.json: the same trials as typed records, in completion order, for the later jobs.
    records = json.loads((s.results / "trials.json").read_text())
    assert sorted(r["trial"] for r in records) == sorted(table["trial"])
    finished = [r["finished"] for r in records]
    assert finished == sorted(finished)
    chosen = next(r for r in records if r["trial"] == best["trial"])
    assert chosen["params"] == best["params"] and chosen["objective"] == best["value"]

    # Every job has a log and a benchmark.
    tid = table["trial"][0]
    assert "epoch    1" in (s.results / "trials" / tid / "train.log").read_text()
    assert (s.results / "trials" / tid / "benchmark.tsv").is_file()
    for rule in ("prepare_data", "collect", "select_best", "retrain_best"):
        assert (s.results / "benchmarks" / f"{rule}.tsv").is_file()

    # A second run has nothing to do.
    again = s.run()
    assert "Nothing to be done" in again.stdout + again.stderr


def test_dry_run_lists_one_job_per_trial(study):
    s = study()
    out = s.run("-n").stdout
    assert job_count(out, "train_trial") == 4
    assert not s.results.exists()


def test_widening_the_grid_trains_only_the_new_trials(study):
    s = study()
    s.run()
    before = result_mtimes(s)
    cfg = tiny_config()
    cfg["search_space"]["n_layers"] = [1, 2, 3]
    s.write(cfg)
    dry = s.run("-n").stdout
    assert job_count(dry, "train_trial") == 2
    s.run()
    after = result_mtimes(s)
    assert len(after) == 6
    assert {k: after[k] for k in before} == before  # finished trials untouched
    assert len(s.table()) == 6


def test_raising_n_trials_keeps_the_finished_random_trials(study):
    s = study(tiny_config(search={"method": "random", "n_trials": 3}, final={"retrain": False}))
    s.run()
    before = result_mtimes(s)
    cfg = dict(s.config)
    cfg["search"] = {"method": "random", "n_trials": 5}
    s.write(cfg)
    s.run()
    after = result_mtimes(s)
    assert set(before) == {"r0000", "r0001", "r0002"} and set(after) == set(before) | {"r0003", "r0004"}
    assert {k: after[k] for k in before} == before


FLAKY_TRAINER = """
import json, os, sys, yaml
params = yaml.safe_load(open(os.environ["SNAKETUNE_PARAMS"]))
out = os.environ["SNAKETUNE_OUT"]
if params["n_layers"] == 2:
    sys.exit("exploded: n_layers=2 is cursed")
score = (params["lr"] - 0.03) ** 2 + params["n_layers"]
with open(os.path.join(out, "metrics.json"), "w") as fh:
    json.dump({"val_mse": score, "test_mse": score} if os.environ["SNAKETUNE_STAGE"] == "final" else {"val_mse": score}, fh)
"""


def custom_study(study, body=FLAKY_TRAINER, **over):
    s = study(
        tiny_config(
            trainer={"command": f"{sys.executable} trainer.py"},
            objective={"metric": "val_mse", "direction": "minimize"},
            search_space={"lr": [0.01, 0.03, 0.05], "n_layers": [1, 2]},
            **over,
        )
    )
    (s.path / "trainer.py").write_text(textwrap.dedent(body))
    return s


def test_custom_trainer_minimizes_and_survives_failed_trials(study):
    s = custom_study(study)
    s.run()
    table = s.table()
    assert len(table) == 6
    failed = table[table["status"] == "failed"]
    assert len(failed) == 3 and all("exploded: n_layers=2 is cursed" in e for e in failed["error"])
    assert list(table["status"][:3]) == ["ok"] * 3  # failed trials sorted last
    ok = table[table["status"] == "ok"]
    assert list(ok["objective"]) == sorted(ok["objective"])  # minimize: smallest first
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert best["params"] == {"lr": 0.03, "n_layers": 1} and best["value"] == pytest.approx(1.0)
    assert json.loads((s.results / "final" / "metrics.json").read_text())["test_mse"] == pytest.approx(1.0)


def test_every_trial_failing_stops_with_the_reasons(study):
    s = custom_study(study, body="import sys\nsys.exit('no GPU driver found')\n")
    proc = s.run(check=False)
    assert proc.returncode != 0
    assert "all 6 trials failed" in proc.stderr and "no GPU driver found" in proc.stderr
    assert (s.results / "trials.tsv").is_file() and not (s.results / "best.yaml").exists()


def test_config_error_is_reported_before_any_job_runs(study):
    s = study(tiny_config(search={"method": "grid", "n_trails": 3}))
    proc = s.run(check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "`search.n_trails` is not known (did you mean `n_trials`?)" in err
    assert "Traceback" not in err
    assert not (s.path / "results").exists()


def test_a_study_file_replaces_the_default_search_space(study, tmp_path):
    # The repository's default config is loaded first (Snakefile `configfile:`), as for users.
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    cfg = tiny_config()
    del cfg["study"]
    cfg["search_space"] = {"hidden_units": [8, 16], "epochs": 1}
    s = study(cfg, name="mine.yaml")
    out = s.run("-n").stdout
    assert job_count(out, "train_trial") == 2
    assert "results/mine/" in out  # named after the file, not the default study
    assert "results/seed-grid" not in out


@pytest.mark.slow
def test_the_default_study_runs_its_final_protocol_on_digits(tmp_path):
    """The README's study itself, unchanged: 27 trials, then the measured final protocol (an
    ensemble of 3 retrains on train+validation, each for the winner's best epoch count, the test
    set read once per model). Its quality is measured in benchmarks/final_quality.py; here only a
    bound no machine's rounding can cross (measured 0.972-0.986 over five splits)."""
    from conftest import Study

    shutil.copytree(REPO / "config", tmp_path / "config")
    s = Study(tmp_path, yaml.safe_load((REPO / "config" / "config.yaml").read_text()), name="config/config.yaml")
    dry = s.run("-n").stdout
    assert job_count(dry, "train_trial") == 27 and job_count(dry, "retrain_best") == 3
    s.run()
    table = s.table()
    assert len(table) == 27 and (table["status"] == "ok").all()
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    assert final["repeats"] == 3 and final["ensemble"] is True and len(final["test_accuracy_repeats"]) == 3
    for r in range(3):
        history = (s.results / "final" / f"repeat-{r}" / "history.csv").read_text().splitlines()
        assert len(history) - 1 == best["best_epoch"]  # trained exactly the winner's best epoch count
        assert "test_" not in history[0] and "val_" not in history[0]  # nothing held out, per epoch
    assert final["test_accuracy"] >= 0.9


def test_a_moved_checkout_retrains_nothing(tmp_path):
    """A fresh clone or another mount point of the workflow must not rerun finished trials: no
    path of the checkout may reach a rerun trigger (params, shell command)."""
    from conftest import Study

    checkouts = []
    for name in ("first", "second"):
        root = tmp_path / name
        root.mkdir()
        shutil.copy(REPO / "Snakefile", root)
        for folder in ("workflow", "config", "profiles", "envs"):
            shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
        checkouts.append(root / "Snakefile")
    (tmp_path / "work").mkdir()
    s = Study(tmp_path / "work", tiny_config())
    s.run("--snakefile", str(checkouts[0]))
    again = s.run("--snakefile", str(checkouts[1]), "-n")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


def test_where_a_trial_runs_is_not_part_of_its_identity(study):
    """Device, threads and timeout say where and how fast a run trains, not what it is: changing
    them on a finished study reruns nothing. What a run is (its parameters, seed, data, trainer,
    objective, early stopping) is its spec, a param: changing that reruns it."""
    cfg = tiny_config(study="where")
    s = study(cfg)
    s.run()
    cfg["trainer"] = {**cfg.get("trainer", {}), "device": "cpu", "timeout": 1234}
    s.write(cfg)
    again = s.run("-n", "--set-threads", "train_trial=2")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    cfg["early_stopping"] = {**cfg.get("early_stopping", {}), "patience": 1}
    s.write(cfg)
    assert job_count(s.run("-n").stdout, "train_trial") == len(s.table())


def test_nested_command_line_config_values_are_read_by_the_schemas_types(study):
    """Snakemake hands `--config "search={trials_per_job: 2}"` over as text ('2'): README's form works."""
    s = study(tiny_config(study="cli"))
    out = s.run("-n", "--config", "search={trials_per_job: 2}", "early_stopping={patience: 3, min_delta: 1e-3}")
    assert job_count(out.stdout, "train_pack") == 2 and job_count(out.stdout, "train_trial") == 0
    bad = s.run("-n", "--config", "search={trials_per_job: two}", check=False)
    assert bad.returncode != 0 and "search.trials_per_job" in bad.stderr


def test_debug_one_trial_reruns_it_exactly_from_its_trial_env(study, tmp_path):
    """README's "Debug one trial": sourcing the trial's trial.env and running the built-in trainer
    reproduces the trial's scores to the last bit (same machine, same threads)."""
    import subprocess

    s = study(tiny_config(study="debug"))
    s.run()
    trial = s.table()["trial"][0]
    folder = s.results / "trials" / trial
    env_text = (folder / "trial.env").read_text()
    assert "SNAKETUNE_SEED=" in env_text and "SNAKETUNE_OUT" not in env_text and "SNAKETUNE_RESUME" not in env_text
    assert "SNAKETUNE_WORKER" not in env_text, "the run's worker is not part of the trial"
    out = tmp_path / "debug-trial"
    cmd = f"set -a; . {folder}/trial.env; SNAKETUNE_OUT={out} {sys.executable} -m snaketune.train"
    subprocess.run(["bash", "-c", cmd], cwd=s.path, check=True, capture_output=True)
    again = json.loads((out / "metrics.json").read_text())
    original = json.loads((folder / "metrics.json").read_text())
    assert {k: v for k, v in again.items() if k != "train_seconds"} == {k: v for k, v in original.items() if k != "train_seconds"}
