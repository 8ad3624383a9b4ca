"""Multi-fidelity studies through the real snakemake CLI: rungs as jobs, resumed promotions, kill and rerun."""

import json

import pytest
import yaml

from conftest import job_count, run_and_kill, tiny_config
from snaketune.schedule import schedule_epochs, successive_halving

pytestmark = pytest.mark.workflow


def sh_config(**search):
    return tiny_config(
        study="sh",
        search={
            "method": "random",
            "schedule": "successive_halving",
            "n_trials": 9,
            "min_epochs": 1,
            "eta": 3,
            "seed": 1,
            **search,
        },
        search_space={
            "lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True},
            "n_layers": {"type": "int", "low": 1, "high": 2},
            "hidden_units": 16,
            "epochs": 9,
        },
    )


def slot_records(study):
    return [json.loads(p.read_text()) for p in sorted((study.results / "rungs").glob("b*/r*/s*.json"))]


def test_successive_halving_trains_only_the_schedules_epochs(study):
    s = study(sh_config())
    dry = s.run("-n").stdout
    assert job_count(dry, "train_rung") == 9 + 3 + 1
    assert job_count(dry, "promote") == 2
    s.run()
    records = slot_records(s)
    assert all(r["status"] == "ok" for r in records)
    # Promoted trials resume from their checkpoints: the epochs trained are the schedule's sum,
    # not a from-scratch retraining per rung (which would be 9*1 + 3*3 + 1*9 = 27).
    assert sum(r["metrics"]["epochs_this_run"] for r in records) == schedule_epochs([successive_halving(9, 1, 9, 3)]) == 21
    winner = next(r for r in records if r["rung"] == 2)
    log = (s.results / "rungs" / "b0" / "r2" / "s0.log").read_text()
    assert f"resumed from results/sh/trials/{winner['trial']}/rung-1/checkpoint.pt after epoch 3" in log
    assert winner["metrics"]["epochs_run"] == 9

    table = s.table()
    assert len(table) == 9 and list(table["rung"][:1]) == [2] and list(table["budget"][:1]) == [9]
    assert sorted(table["budget"]) == [1] * 6 + [3] * 2 + [9]
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert best["trial"] == winner["trial"]  # selection uses the highest rung reached
    promoted = yaml.safe_load((s.results / "rungs" / "b0" / "promote-r1.yaml").read_text())["trials"]
    rung0 = {r["trial"]: r["objective"] for r in records if r["rung"] == 0}
    assert sorted(rung0, key=lambda t: -rung0[t])[:3] == promoted
    assert "Nothing to be done" in s.run().stderr


def test_bohb_runs_end_to_end(study):
    cfg = sh_config(method="bayes", schedule="hyperband", n_trials=10, n_startup=3, batch=2)
    cfg["study"] = "bohb"
    s = study(cfg)
    dry = s.run("-n").stdout
    assert job_count(dry, "propose") == 3  # one per Hyperband bracket
    s.run()
    table = s.table()
    assert (table["status"] == "ok").all() and table["budget"].max() == 9
    log = (s.results / "logs" / "propose" / "round-2.log").read_text()
    # Bracket 2's model is fitted on budget 3, the largest with >= n_startup results: the 3 rung-1
    # trials of bracket 0 and the 5 rung-0 trials of bracket 1 (budget 9 has only 2).
    assert "from 8 earlier" in log


@pytest.mark.parametrize("kind", ["hyperband", "bayes"])
def test_killing_a_study_midway_redoes_nothing_that_finished(study, kind):
    if kind == "hyperband":
        cfg = sh_config(schedule="hyperband", n_trials=12)
        pattern = "rungs/b*/r*/s*.json"
    else:
        cfg = tiny_config(
            study="bo",
            search={"method": "bayes", "n_trials": 12, "n_startup": 4, "batch": 4},
            search_space={"lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True}, "hidden_units": 16, "epochs": 3},
        )
        pattern = "trials/*/result.json"
    s = study(cfg)
    files = lambda: sorted(s.results.glob(pattern))  # noqa: E731
    run_and_kill(s, lambda: len(files()) >= 5)
    # Jobs still running at the kill lose their outputs (Snakemake marks them incomplete).
    done = {p: p.stat().st_mtime_ns for p in files()}
    assert len(done) >= 1
    s.run("--rerun-incomplete")
    after = files()
    assert len(after) > len(done)  # the kill came mid-way
    assert {p: p.stat().st_mtime_ns for p in done} == done  # nothing finished was redone
    assert (s.results / "best.yaml").is_file()
