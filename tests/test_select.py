"""select.top_k: the top trials re-evaluated with extra seeds, and the winner chosen by its mean."""

from __future__ import annotations

import json
import statistics

import pytest
import yaml

from conftest import job_count, tiny_config
from snaketune import ConfigError, resolve_config
from snaketune import records as rec
from snaketune.plan import StudyPlan, reeval_seed, trial_seed
from snaketune.reeval import top_trials
from snaketune.specs import ReevalSpec, from_json, to_json
from snaketune.table import read_table, table_rows, write_table

METRIC = ("val_accuracy", "maximize")


def run(trial, accuracy, loss=0.3, best_epoch=5, extra_seed=None, budget=None, status="ok"):
    r = {
        "trial": trial,
        "status": status,
        "objective": accuracy if status == "ok" else None,
        "params": {"lr": len(trial) / 10},
        "metrics": {"val_accuracy": accuracy, "val_loss": loss, "best_epoch": best_epoch, "device": "cpu"},
    }
    if status != "ok":
        r["reason"] = "diverged at epoch 2"
    if extra_seed is not None:
        r["extra_seed"] = extra_seed
    if budget is not None:
        r["budget"] = budget
    return r


# -- combining a trial's seeds ----------------------------------------------------------------------


def test_a_trials_seeds_give_its_mean_std_and_rounded_best_epoch():
    out = rec.combine_seeds(
        run("a", 0.90, loss=0.2, best_epoch=4),
        [run("a", 0.70, loss=0.4, best_epoch=9, extra_seed=2), run("a", 0.80, extra_seed=1)],
    )
    assert out["seeds"] == 3
    assert out["seed_objectives"] == [0.90, 0.80, 0.70]  # the search run first, then seed 1, 2
    assert out["objective_mean"] == pytest.approx(0.8)
    assert out["objective_std"] == pytest.approx(statistics.pstdev([0.9, 0.8, 0.7]))
    assert out["seed_best_epochs"] == [4, 5, 9] and out["seed_metrics"]["best_epoch"] == 6
    assert out["seed_metrics"]["val_loss"] == pytest.approx(0.3) and out["seed_metrics"]["device"] == "cpu"
    assert out["objective"] == 0.90 and out["metrics"]["best_epoch"] == 4  # the search run stays as it was


def test_a_failed_seed_leaves_the_trial_without_a_mean_and_says_why():
    out = rec.combine_seeds(run("a", 0.9), [run("a", 0.8, extra_seed=1), run("a", 0.0, extra_seed=2, status="failed")])
    assert out["objective_mean"] is None and out["seed_error"] == "seed 2: diverged at epoch 2"
    assert out["status"] == "ok"  # the search run itself succeeded


def test_under_a_schedule_a_search_run_below_the_full_budget_is_not_averaged_in():
    out = rec.combine_seeds(
        run("a", 0.99, budget=3), [run("a", 0.8, budget=9, extra_seed=1), run("a", 0.7, budget=9, extra_seed=2)]
    )
    assert out["seeds"] == 2 and out["objective_mean"] == pytest.approx(0.75)
    full = rec.combine_seeds(run("a", 0.9, budget=9), [run("a", 0.8, budget=9, extra_seed=1)])
    assert full["seeds"] == 2 and full["objective_mean"] == pytest.approx(0.85)


# -- the choice ------------------------------------------------------------------------------------


def study_records():
    """`lucky` won the search by one lucky run; `steady` is better on average; `fresh` was never re-evaluated."""
    seeds = [
        run("lucky", 0.90, extra_seed=1),
        run("lucky", 0.88, extra_seed=2),
        run("steady", 0.95, extra_seed=1),
        run("steady", 0.96, extra_seed=2),
    ]
    search = [run("lucky", 0.99, best_epoch=2), run("steady", 0.96, best_epoch=6), run("fresh", 0.97)]
    return rec.with_seeds(search, seeds)


def test_a_trial_that_won_by_luck_loses_to_one_with_a_better_mean():
    records = study_records()
    assert rec.select_best(records, *METRIC)["trial"] == "lucky"  # without re-evaluation
    assert rec.select_best(records, *METRIC, reevaluated=["lucky", "steady"])["trial"] == "steady"
    # Only re-evaluated trials can win: `fresh` beats steady's mean with its one run, and still loses.
    assert rec.select_best(records, *METRIC, reevaluated=["lucky"])["trial"] == "lucky"


def test_equal_means_are_told_apart_by_the_records_rule():
    seeds = [run("a", 0.9, loss=0.5, extra_seed=1), run("b", 0.9, loss=0.1, extra_seed=1)]
    records = rec.with_seeds([run("a", 0.9, loss=0.5), run("b", 0.9, loss=0.1)], seeds)
    assert rec.select_best(records, *METRIC, reevaluated=["a", "b"])["trial"] == "b"  # the lower mean loss
    same = rec.with_seeds([run("a", 0.9), run("b", 0.9)], [run("a", 0.9, extra_seed=1), run("b", 0.9, extra_seed=1)])
    assert rec.select_best(same, *METRIC, reevaluated=["b", "a"])["trial"] == "b"  # then the search ranking


def test_no_re_evaluated_trial_with_a_mean_is_no_best_configuration():
    records = rec.with_seeds([run("a", 0.9), run("b", 0.95)], [run("a", 0.0, extra_seed=1, status="failed")])
    with pytest.raises(rec.NoSuccessfulTrial, match="seed 1: diverged"):
        rec.select_best(records, *METRIC, reevaluated=["a"])


def test_best_yaml_holds_the_mean_the_seeds_and_the_re_evaluated_trials():
    doc = rec.best_document(study_records(), *METRIC, study="s", reevaluated=["lucky", "steady"])
    assert doc["trial"] == "steady" and doc["params"] == {"lr": 0.6}
    assert doc["value"] == doc["objective_mean"] == pytest.approx((0.96 + 0.95 + 0.96) / 3)
    assert doc["objective_std"] == pytest.approx(statistics.pstdev([0.96, 0.95, 0.96]))
    assert doc["seed_objectives"] == [0.96, 0.95, 0.96] and doc["search_value"] == 0.96
    assert doc["seeds"] == 3 and doc["seed_best_epochs"] == [6, 5, 5] and doc["best_epoch"] == 5
    assert [t["trial"] for t in doc["reevaluated"]] == ["steady", "lucky"]
    assert doc["reevaluated"][1]["objective_mean"] == pytest.approx((0.99 + 0.90 + 0.88) / 3)
    plain = rec.best_document(study_records(), *METRIC, study="s")
    assert plain["trial"] == "lucky" and "objective_mean" not in plain and plain["best_epoch"] == 2


def test_the_table_has_the_mean_std_and_seeds_only_for_re_evaluated_trials(tmp_path):
    rows = table_rows(study_records(), ["lr"], *METRIC)
    write_table(tmp_path / "t.tsv", rows, ["lr"])
    table = {r["trial"]: r for r in read_table(tmp_path / "t.tsv")}
    assert list(table) == ["lucky", "fresh", "steady"]  # the table keeps the search ranking
    assert float(table["steady"]["objective_mean"]) == pytest.approx((0.96 + 0.95 + 0.96) / 3)
    assert table["steady"]["seeds"] == "3" and float(table["lucky"]["objective_std"]) > 0
    assert table["fresh"]["objective_mean"] == table["fresh"]["objective_std"] == table["fresh"]["seeds"] == ""


def test_the_top_trials_are_the_best_successful_ones_by_the_ranking_rule():
    records = [run("a", 0.9, loss=0.5), run("b", 0.0, status="failed"), run("c", 0.9, loss=0.1), run("d", 0.8)]
    top = top_trials(records, 2, *METRIC)
    assert [t["trial"] for t in top] == ["c", "a"] and top[0]["params"] == {"lr": 0.1}
    assert [t["trial"] for t in top_trials(records, 5, *METRIC)] == ["c", "a", "d"]


# -- the plan and the config -----------------------------------------------------------------------


def test_the_plan_has_k_times_seeds_re_evaluations_each_with_its_own_seed():
    plan = StudyPlan(resolve_config(tiny_config(select={"top_k": 3, "seeds": 2})))
    assert plan.reeval_slots() == [(0, 1, None), (0, 2, None), (1, 1, None), (1, 2, None), (2, 1, None), (2, 2, None)]
    assert plan.reeval_files()[1] == "results/tiny/select/s0/seed-2.json"
    spec = plan.reeval_spec(1, 2)
    assert from_json(to_json(spec)) == spec and isinstance(spec, ReevalSpec)
    assert spec.top == "results/tiny/select/top.yaml" and spec.budget is None and spec.restore_best
    seeds = {trial_seed(0, "g1")} | {reeval_seed(0, "g1", j) for j in (1, 2)} | {reeval_seed(0, "g2", 1)}
    assert len(seeds) == 4
    assert StudyPlan(resolve_config(tiny_config())).reeval_files() == []  # off by default


def test_with_cross_validation_each_fold_of_each_extra_seed_is_a_job_with_its_own_seed():
    plan = StudyPlan(resolve_config(tiny_config(select={"top_k": 2, "seeds": 2}, cv={"folds": 3})))
    assert len(plan.reeval_slots()) == 2 * 2 * 3 and plan.reeval_slots()[:2] == [(0, 1, 0), (0, 1, 1)]
    assert plan.reeval_files()[1] == "results/tiny/select/s0/seed-1/fold-1.json"
    spec = plan.reeval_spec(0, 1, 2)
    assert (spec.fold, spec.folds) == (2, 3) and from_json(to_json(spec)) == spec
    seeds = {reeval_seed(0, "g1", j, f) for j in (1, 2) for f in range(3)} | {trial_seed(0, "g1", f) for f in range(3)}
    assert len(seeds) == 9  # every fold of every seed trains with a seed of its own


def test_an_extra_seeds_folds_are_averaged_before_the_seeds_are():
    def fold(trial, accuracy, f, extra_seed=None):
        return {**run(trial, accuracy, extra_seed=extra_seed), "fold": f, "folds": 2}

    search = rec.combine_folds([fold("a", 0.8, 0), fold("a", 0.9, 1)])  # 0.85
    seed_runs = [fold("a", 0.6, 0, 1), fold("a", 0.7, 1, 1), fold("a", 0.9, 0, 2), fold("a", 1.0, 1, 2)]
    [out] = rec.with_seeds([search], seed_runs)
    assert out["seeds"] == 3 and out["seed_objectives"] == pytest.approx([0.85, 0.65, 0.95])
    assert out["objective_mean"] == pytest.approx(statistics.fmean([0.85, 0.65, 0.95]))
    # a missing fold of an extra seed leaves the trial without a mean, saying which
    [short] = rec.with_seeds([search], seed_runs[:3])
    assert short["objective_mean"] is None and "seed 2: fold ?: only 1 of 2 folds have results" == short["seed_error"]


def test_under_a_schedule_re_evaluations_train_the_full_budget_like_the_rungs():
    cfg = tiny_config(
        select={"top_k": 2},
        search={"method": "random", "schedule": "successive_halving", "n_trials": 9, "min_epochs": 1, "eta": 3},
        search_space={"lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True}, "epochs": 9},
    )
    spec = StudyPlan(resolve_config(cfg)).reeval_spec(0, 1)
    assert spec.budget == 9 and spec.trainer.patience == 0 and not spec.restore_best


@pytest.mark.parametrize(
    "over, fragment",
    [
        ({"select": {"top_k": 5}}, "`select.top_k` (5) is larger than the study's 4 trial(s)"),
        ({"select": {"top_k": 2, "seeds": 0}}, "`select.seeds`: must be >= 1, but got 0"),
        ({"select": {"top_k": -1}}, "`select.top_k`: must be >= 0"),
        ({"select": {"topk": 2}}, "did you mean `top_k`"),
    ],
)
def test_impossible_selections_are_config_errors(over, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        resolve_config(tiny_config(**over))


def test_select_defaults_to_off():
    assert resolve_config(tiny_config())["select"] == {"top_k": 0, "seeds": 2, "trial": None}


# -- the workflow ----------------------------------------------------------------------------------


@pytest.mark.workflow
def test_the_top_trials_are_re_evaluated_as_jobs_and_the_best_mean_wins(study):
    s = study(tiny_config(study="sel", select={"top_k": 2, "seeds": 2}))
    dry = s.run("-n").stdout
    assert job_count(dry, "train_reeval") == 2 * 2 and job_count(dry, "choose_top") == 1
    assert job_count(dry, "train_trial") == 4
    s.run()

    top = yaml.safe_load((s.results / "select" / "top.yaml").read_text())
    table = s.table()
    assert [t["trial"] for t in top["trials"]] == list(table["trial"][:2])  # the search's two best
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert sorted(t["trial"] for t in best["reevaluated"]) == sorted(t["trial"] for t in top["trials"])
    assert best["trial"] == best["reevaluated"][0]["trial"]  # the best mean, best first
    assert best["objective_mean"] == max(t["objective_mean"] for t in best["reevaluated"])
    for slot, t in enumerate(top["trials"]):
        runs = [json.loads((s.results / "trials" / t["trial"] / "result.json").read_text())]
        for j in (1, 2):
            folder = s.results / "trials" / t["trial"] / f"seed-{j}"
            assert (folder / "metrics.json").is_file() and (folder / "history.csv").is_file()
            result = json.loads((folder / "result.json").read_text())
            assert result == json.loads((s.results / "select" / f"s{slot}" / f"seed-{j}.json").read_text())
            assert result["status"] == "ok" and result["params"] == t["params"] and result["extra_seed"] == j
            runs.append(result)
        assert len({r["seed"] for r in runs}) == 3  # every re-run has a seed of its own
        values = [r["objective"] for r in runs]
        row = table[table["trial"] == t["trial"]].iloc[0]
        assert row["seeds"] == 3 and row["objective_mean"] == pytest.approx(statistics.fmean(values))
        if t["trial"] == best["trial"]:
            assert best["seed_objectives"] == values and best["seeds"] == 3
            assert best["value"] == best["objective_mean"] == pytest.approx(statistics.fmean(values))
            assert best["objective_std"] == pytest.approx(statistics.pstdev(values))
            epochs = [r["metrics"]["best_epoch"] for r in runs]
            assert best["seed_best_epochs"] == epochs and best["best_epoch"] == max(1, round(statistics.fmean(epochs)))
    assert table["objective_mean"][2:].isna().all() and table["seeds"][2:].isna().all()

    final = yaml.safe_load((s.results / "final" / "params.yaml").read_text())
    assert final == best["params"]
    assert json.loads((s.results / "final" / "metrics.json").read_text())["epochs_run"] == best["best_epoch"]

    again = s.run()
    assert "Nothing to be done" in again.stdout + again.stderr
    # One more seed: one more job per top trial, nothing redone.
    s.write(tiny_config(study="sel", select={"top_k": 2, "seeds": 3}))
    more = s.run("-n").stdout
    assert job_count(more, "train_reeval") == 2 and job_count(more, "choose_top") == job_count(more, "train_trial") == 0


@pytest.mark.workflow
def test_with_cross_validation_the_top_trials_re_run_every_fold_with_extra_seeds(study):
    s = study(tiny_config(study="selcv", select={"top_k": 2, "seeds": 1}, cv={"folds": 2}))
    dry = s.run("-n").stdout
    assert job_count(dry, "train_reeval") == 2 * 1 * 2  # slots x seeds x folds
    s.run()

    top = yaml.safe_load((s.results / "select" / "top.yaml").read_text())
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    table = s.table()
    for slot, t in enumerate(top["trials"]):
        search = [json.loads((s.results / "trials" / t["trial"] / f"fold-{f}" / "result.json").read_text()) for f in (0, 1)]
        again = []
        for f in (0, 1):
            result = json.loads((s.results / "trials" / t["trial"] / "seed-1" / f"fold-{f}" / "result.json").read_text())
            assert result == json.loads((s.results / "select" / f"s{slot}" / "seed-1" / f"fold-{f}.json").read_text())
            assert result["status"] == "ok" and result["fold"] == f and result["extra_seed"] == 1
            again.append(result)
        assert len({r["seed"] for r in search + again}) == 4  # every fold of every run has a seed of its own
        means = [statistics.fmean(r["objective"] for r in runs) for runs in (search, again)]
        row = table[table["trial"] == t["trial"]].iloc[0]
        assert row["seeds"] == 2 and row["objective_mean"] == pytest.approx(statistics.fmean(means))
    assert best["trial"] in [t["trial"] for t in top["trials"]]
    assert best["value"] == max(t["objective_mean"] for t in best["reevaluated"])
    assert "Nothing to be done" in s.run("-n").stdout
