"""search.trials_per_job: several trials per job, same results, each trial its own files; a killed pack trains nothing twice."""

import json
import sys

import pandas as pd
import pytest
import yaml

from conftest import Study, job_count, run_and_kill, tiny_config

pytestmark = pytest.mark.workflow
TIMING = ["seconds", "train_seconds"]


def config(per_job, **over):
    cfg = tiny_config(study="packed", search={"method": "grid", "seed": 0, "trials_per_job": per_job}, **over)
    cfg["search_space"]["lr"]["grid"] = [0.005, 0.01, 0.03, 0.06]
    return cfg


def test_packed_study_gives_the_same_table_as_one_job_per_trial(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    single, packed = Study(tmp_path / "a", config(1)), Study(tmp_path / "b", config(3))
    assert job_count(packed.run("-n").stdout, "train_pack") == 3  # 8 trials, 3 per job
    single.run()
    packed.run()
    # Trials are dealt to the packs in turn, so no pack gets all of a grid's costly corner.
    from snaketune import plan_trials, resolve_config

    ids = [t.id for t in plan_trials(resolve_config(config(3)))]
    packs = [json.loads((packed.results / "packs" / f"pack-{p}.json").read_text()) for p in range(3)]
    assert [[t["trial"] for t in p["trials"]] for p in packs] == [ids[0::3], ids[1::3], ids[2::3]]
    pd.testing.assert_frame_equal(single.table().drop(columns=TIMING), packed.table().drop(columns=TIMING))
    for tid in packed.table()["trial"]:
        folder = packed.results / "trials" / tid
        assert {"params.yaml", "metrics.json", "history.csv", "result.json", "train.log"} <= {p.name for p in folder.iterdir()}
        assert "epoch    1" in (folder / "train.log").read_text()


def test_a_killed_pack_resumes_its_finished_trials_instead_of_training_them_again(tmp_path):
    cfg = config(8)
    cfg["search_space"]["epochs"] = 30
    cfg["data"]["n_samples"] = 1500
    s = Study(tmp_path, cfg)
    results = lambda: sorted(s.results.glob("trials/*/result.json"))  # noqa: E731
    run_and_kill(s, lambda: len(results()) >= 2)
    finished = {p.parent.name: json.loads(p.read_text()) for p in results()}
    assert 1 <= len(finished) < 8
    s.run("--rerun-incomplete")
    for trial, before in finished.items():
        metrics = json.loads((s.results / "trials" / trial / "metrics.json").read_text())
        assert metrics["epochs_this_run"] == 0  # resumed at its last epoch: nothing trained twice
        assert metrics["epochs_run"] == before["metrics"]["epochs_run"]
        assert metrics["val_accuracy"] == before["metrics"]["val_accuracy"]
    assert len(s.table()) == 8 and (s.table()["status"] == "ok").all()
    assert not list(s.results.glob("trials/*/checkpoint.pt"))  # a complete pack keeps no checkpoints


def test_a_changed_objective_reruns_the_packs_and_ranks_by_the_new_one(tmp_path):
    # Snakemake alone decides what reruns: the runner must not keep results made for the old objective.
    s = Study(tmp_path, config(2, objective={"metric": "val_accuracy", "direction": "maximize"}))
    s.run()
    s.write(config(2, objective={"metric": "val_loss", "direction": "minimize"}))
    s.run()
    table = s.table()
    assert (table["objective"] == table["val_loss"]).all()
    assert table["objective"].is_monotonic_increasing  # best (lowest loss) first
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert best["metric"] == "val_loss" and best["trial"] == table.loc[table["val_loss"].idxmin(), "trial"]


def test_custom_trainers_in_a_pack_keep_their_own_processes_and_failures(tmp_path):
    cfg = config(4, trainer={"command": f"{sys.executable} trainer.py"}, objective={"metric": "score", "direction": "maximize"})
    cfg["search_space"] = {"x": [1, 2, 3, 4, 5]}
    cfg["final"] = {"retrain": False}
    s = Study(tmp_path, cfg)
    (tmp_path / "trainer.py").write_text(
        "import json, os, sys, yaml\n"
        "x = yaml.safe_load(open(os.environ['SNAKETUNE_PARAMS']))['x']\n"
        "if x == 2: os.abort()\n"
        "json.dump({'score': x, 'pid': os.getpid()}, open(os.path.join(os.environ['SNAKETUNE_OUT'], 'metrics.json'), 'w'))\n"
    )
    s.run()
    table = s.table().set_index("x")
    assert table.loc[2, "status"] == "failed" and "SIGABRT" in table.loc[2, "error"]
    assert table.loc[5, "status"] == "ok" and table["pid"].dropna().nunique() == 4  # one process per trial


def test_bayesian_rounds_see_the_packed_trials(tmp_path):
    cfg = tiny_config(
        study="bopack",
        search={"method": "bayes", "n_trials": 6, "n_startup": 3, "batch": 3, "trials_per_job": 3},
        search_space={"lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True}, "hidden_units": 16, "epochs": 2},
        final={"retrain": False},
    )
    s = Study(tmp_path, cfg)
    s.run()
    assert "from 3 earlier (0 failed)" in (s.results / "logs" / "propose" / "round-1.log").read_text()
    assert len(s.table()) == 6
