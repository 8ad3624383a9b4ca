"""Several objectives and hard limits: Pareto ranks and fronts on hand-made tables, promotion by
Pareto rank, the winner's rule, the Bayesian sampler's view, and a study end to end."""

import math

import pandas as pd
import pytest
import yaml

from conftest import Study, tiny_config
from snaketune.bayes import build_study, observations, propose_round
from snaketune.pareto import crowding_order, hypervolume, nondomination_ranks
from snaketune.records import (
    NoSuccessfulTrial,
    Objective,
    best_document,
    best_record,
    pareto_front,
    ranked,
    standings,
)
from snaketune.schedule import promote
from snaketune.space import SearchSpace
from snaketune.table import table_rows

ACC_SIZE = Objective.from_config(
    {"metric": "val_accuracy", "direction": "maximize", "also": {"n_parameters": "minimize"}, "constraints": {}}
)
# The same, with networks of at most 1,000 parameters.
LIMITED = Objective.from_config({**ACC_SIZE.config(), "constraints": {"n_parameters": {"max": 1000}}})


def rec(trial, acc, size, status="ok", **extra):
    """A trial's record: accuracy (the first objective) and size (the second)."""
    metrics = {"val_accuracy": acc, "n_parameters": size, **extra.pop("metrics", {})}
    return {
        "trial": trial,
        "status": status,
        "objective": acc if status == "ok" else None,
        "params": {},
        "metrics": metrics,
        **extra,
    }


def test_pareto_ranks_share_ties_and_duplicates():
    # (loss, loss): three on the front, a duplicate of a front point shares its rank, a point
    # equal to another in one objective and worse in the other is dominated.
    losses = [[1, 3], [2, 2], [3, 1], [2, 2], [2, 3], [3, 3]]
    assert nondomination_ranks(losses) == [0, 0, 0, 0, 1, 2]
    assert nondomination_ranks([]) == []


def test_ranking_by_pareto_rank_then_first_objective_with_infeasible_and_failed_last():
    objective = LIMITED
    records = [
        rec("small", 0.80, 100),
        rec("big", 0.95, 900),
        rec("dominated", 0.79, 200),  # worse than `small` in both
        rec("twin", 0.95, 900),  # a duplicate of `big`: on the front too
        rec("too_big", 0.99, 5000),  # the most accurate, beyond the limit
        rec("far_too_big", 0.99, 50000),  # beyond it by more
        rec("crashed", None, None, status="failed", reason="exit code 1"),
        rec("no_size", 0.97, None),  # the trainer did not write the second objective
        rec("mid", 0.90, 400),
    ]
    order = [r["trial"] for r in ranked(records, objective)]
    assert order == ["big", "twin", "mid", "small", "dominated", "too_big", "far_too_big", "crashed", "no_size"]
    judged = {r["trial"]: s for r, (_, s, _) in zip(records, standings(records, objective))}
    assert judged["too_big"].status == "infeasible" and judged["too_big"].reason == "n_parameters = 5000 > max 1000"
    assert judged["no_size"].status == "failed" and "n_parameters" in judged["no_size"].reason
    ranks = {r["trial"]: rank for r, (_, _, rank) in zip(records, standings(records, objective))}
    assert ranks == {
        "small": 0,
        "big": 0,
        "dominated": 1,
        "twin": 0,
        "too_big": None,
        "far_too_big": None,
        "crashed": None,
        "no_size": None,
        "mid": 0,
    }
    # The best (the table's first row, best.yaml) is never beyond a limit, though it scores lower.
    assert best_record(records, objective)["trial"] == "big"
    assert [r["trial"] for r in pareto_front(records, objective)] == ["big", "twin", "mid", "small"]


def test_table_rows_mark_infeasible_trials_and_carry_the_pareto_rank():
    objective = LIMITED
    rows = table_rows([rec("a", 0.9, 500), rec("b", 0.99, 2000), rec("c", 0.8, 800)], [], objective)
    assert [(r["trial"], r["status"], r.get("pareto_rank"), r["error"]) for r in rows] == [
        ("a", "ok", 0, ""),
        ("c", "ok", 1, ""),
        ("b", "infeasible", None, "n_parameters = 2000 > max 1000"),
    ]
    # Read back as text (trials.tsv), the rows rank the same way.
    text = [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]
    assert [r["trial"] for r in ranked(text, objective)] == ["a", "c", "b"]


def test_one_objective_with_a_limit_never_chooses_a_trial_beyond_it():
    objective = Objective.from_config(
        {"metric": "val_loss", "direction": "minimize", "constraints": {"train_seconds": {"max": 60}}}
    )
    records = [
        {"trial": "fast", "status": "ok", "objective": 0.5, "metrics": {"train_seconds": 10}},
        {"trial": "slow", "status": "ok", "objective": 0.1, "metrics": {"train_seconds": 600}},
    ]
    assert best_record(records, objective)["trial"] == "fast"
    with pytest.raises(NoSuccessfulTrial, match="train_seconds = 600 > max 60"):
        best_document(records[1:], objective, study="s")


def test_promotion_fills_by_front_and_keeps_the_ends_of_a_front_that_does_not_fit():
    # One front: a crowd of large, accurate networks and a few small ones far apart.
    accuracy = [0.50, 0.70, 0.90, 0.91, 0.92, 0.93]
    size = [100, 300, 700, 720, 740, 760]
    front = [rec(f"f{i}", a, n) for i, (a, n) in enumerate(zip(accuracy, size))]
    behind = [rec("behind", 0.55, 900)]
    assert set(promote(front + behind, 7, ACC_SIZE)) == {"f5", "f4", "f3", "f2", "f1", "f0", "behind"}
    assert promote(front + behind, 7, ACC_SIZE)[-1] == "behind"  # the next front after the first
    # Three slots: both ends of the front, then the point in its widest gap.
    assert promote(front + behind, 3, ACC_SIZE) == ["f5", "f0", "f1"]
    # By the first objective alone, the crowd would go on.
    assert promote(front + behind, 3, "val_accuracy", "maximize") == ["f5", "f4", "f3"]


def test_front_members_spread_along_the_front_skip_the_winner_and_never_break_a_limit():
    from snaketune.front import front_members

    objective = LIMITED
    records = [
        {**rec(f"f{i}", a, n, metrics={"best_epoch": i + 1}), "params": {"i": i}}
        for i, (a, n) in enumerate(zip([0.5, 0.7, 0.9, 0.91, 0.92, 0.93], [100, 300, 700, 720, 740, 760]))
    ]
    records.append(rec("beyond", 0.99, 5000))
    members = front_members(records, 2, objective, winner="f5")
    # The front's other end (the smallest network), then the member in its widest gap.
    assert [m["trial"] for m in members] == ["f0", "f1"]
    assert members[0] == {
        "trial": "f0",
        "params": {"i": 0},
        "best_epoch": 1,
        "objectives": {"val_accuracy": 0.5, "n_parameters": 100.0},
    }
    assert "beyond" not in [m["trial"] for m in front_members(records, 10, objective, winner="f5")]


def test_promotion_takes_a_trial_beyond_a_limit_only_when_too_few_are_within():
    objective = LIMITED
    records = [rec("in", 0.7, 500), rec("out", 0.99, 1500), rec("way_out", 0.99, 9000)]
    assert promote(records, 1, objective) == ["in"]
    assert promote(records, 3, objective) == ["in", "out", "way_out"]


def test_crowding_keeps_both_ends_whatever_the_scales():
    points = [[-0.99, 1e6], [-0.98, 9e5], [-0.9, 1e4], [-0.5, 1e3]]
    assert set(crowding_order(points)[:2]) == {0, 3}


def test_hypervolume_grows_when_the_front_moves():
    ref = [0.0, 10.0]
    assert hypervolume([[-0.9, 5]], ref) == pytest.approx(0.9 * 5)
    assert hypervolume([[-0.9, 5], [-0.5, 1]], ref) > hypervolume([[-0.9, 5]], ref)
    assert hypervolume([[1.0, 11.0]], ref) == 0.0  # beyond the reference point: nothing


def test_the_winner_is_the_fronts_best_first_objective_or_the_named_trial():
    records = [
        rec("small", 0.8, 100),
        rec("big", 0.95, 900),
        rec("bad", 0.5, 950),
        rec("x", None, None, status="failed", reason="oom"),
    ]
    doc = best_document(records, ACC_SIZE, study="s")
    assert doc["trial"] == "big" and doc["objectives"] == {"val_accuracy": 0.95, "n_parameters": 900}
    assert doc["front_size"] == 2 and "Pareto front" in doc["chosen_by"]
    named = best_document(records, ACC_SIZE, study="s", trial="small")
    assert named["trial"] == "small" and named["chosen_by"] == "named by select.trial (small)"
    with pytest.raises(NoSuccessfulTrial, match="no trial 'smal' .*did you mean `small`"):
        best_document(records, ACC_SIZE, study="s", trial="smal")
    with pytest.raises(NoSuccessfulTrial, match="trial x failed .*oom"):
        best_document(records, ACC_SIZE, study="s", trial="x")


def test_three_objectives_are_drawn_pairwise(tmp_path):
    from PIL import Image

    from snaketune.plots import plot_hypervolume_history, plot_pareto_front

    objective = Objective.from_config(
        {"metric": "val_accuracy", "direction": "maximize", "also": {"n_parameters": "minimize", "train_seconds": "minimize"}}
    )
    records = [rec(f"t{i}", 0.5 + 0.04 * i, 100 * (i + 1), metrics={"train_seconds": 10 - i}) for i in range(10)]
    records.append(rec("bad", None, None, status="failed", reason="x"))
    plot_pareto_front(tmp_path / "front.png", records, objective, study="s")
    plot_hypervolume_history(tmp_path / "hv.png", records, objective, study="s")
    width, height = Image.open(tmp_path / "front.png").size
    assert width > 2.5 * height  # three panels side by side: the three pairs of objectives
    assert Image.open(tmp_path / "hv.png").size[0] > 0


def test_the_sampler_sees_every_objective_and_each_limit_as_a_constraint():
    objective = LIMITED
    space = SearchSpace.from_config({"x": {"type": "float", "low": 0.0, "high": 1.0}})
    records = [
        {**rec("b0-0", 0.9, 500), "params": {"x": 0.1}},
        {**rec("b0-1", 0.99, 4000), "params": {"x": 0.9}},
        {**rec("b0-2", None, None, status="failed"), "params": {"x": 0.5}},
        {**rec("b0-3", 0.8, None), "params": {"x": 0.3}},  # no second objective: failed
    ]
    obs = observations(records, objective=objective)
    assert [o.values for o in obs] == [(0.9, 500.0), (0.99, 4000.0), None, None]
    limit = "n_parameters <= 1000"
    assert obs[0].limits == {limit: -500.0} and obs[1].limits == {limit: 3000.0}
    study = build_study(space, objective.directions, obs, sampler=None, failed_as_infeasible=True, limits=[limit])
    feasible = [t.user_attrs["snaketune_trial"] for t in study.trials if all(v <= 0 for v in t.constraints.values())]
    assert feasible == ["b0-0"]
    assert [t.user_attrs["snaketune_trial"] for t in study.best_trials] == ["b0-0"]
    kw = {"direction": objective.directions, "sampler": "tpe", "seed": 3, "n_startup": 2, "limits": [limit]}
    first = propose_round(space, 1, 4, obs, **kw)
    assert first == propose_round(space, 1, 4, list(reversed(obs)), **kw)  # a pure function of the results
    assert len(first) == 4 and all(0.0 <= p["x"] <= 1.0 for p in first)


# -- end to end ----------------------------------------------------------------------------------


def pareto_config(**over):
    cfg = tiny_config(
        study="mo",
        objective={
            "metric": "val_accuracy",
            "direction": "maximize",
            "also": {"n_parameters": "minimize"},
            "constraints": {"n_parameters": {"max": 1500}},
        },
        search={"method": "bayes", "sampler": "tpe", "n_trials": 8, "n_startup": 4, "batch": 2, "seed": 1},
        final={"repeats": 1, "front": 2},
        search_space={
            "lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True},
            "hidden_units": {"type": "int", "low": 2, "high": 64, "log": True},
            "epochs": 2,
        },
    )
    cfg.update(over)
    return cfg


TIMING = ["seconds", "train_seconds"]


@pytest.mark.workflow
def test_several_objectives_and_a_limit_end_to_end_and_reproducible(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Study(tmp_path / "a", pareto_config()), Study(tmp_path / "b", pareto_config())
    a.run("--cores", "1")
    b.run("--cores", "2")
    ta, tb = a.table(), b.table()
    pd.testing.assert_frame_equal(ta.drop(columns=TIMING), tb.drop(columns=TIMING))
    assert {"pareto_rank", "n_parameters"} <= set(ta.columns)
    feasible = ta[ta["status"] == "ok"]
    beyond = ta[ta["status"] == "infeasible"]
    assert (beyond["n_parameters"] > 1500).all() and (feasible["n_parameters"] <= 1500).all()
    assert beyond["error"].str.contains("n_parameters = .* > max 1500").all()
    front = pd.read_csv(a.results / "pareto.tsv", sep="\t")
    assert list(front["trial"]) == list(feasible[feasible["pareto_rank"] == 0]["trial"])
    # No feasible trial beats a front member in both objectives.
    for _, f in front.iterrows():
        better = feasible[(feasible["val_accuracy"] >= f["val_accuracy"]) & (feasible["n_parameters"] <= f["n_parameters"])]
        strictly = better[(better["val_accuracy"] > f["val_accuracy"]) | (better["n_parameters"] < f["n_parameters"])]
        assert strictly.empty, f"{f['trial']} is dominated by {list(strictly['trial'])}"
    best = yaml.safe_load((a.results / "best.yaml").read_text())
    assert best["trial"] == front["trial"][0] and best["objectives"]["n_parameters"] <= 1500
    assert math.isclose(best["value"], front["val_accuracy"].max())
    # final.front: two more front members retrained and tested, beside the winner.
    retrained = pd.read_csv(a.results / "final" / "front.tsv", sep="\t")
    assert list(retrained["role"]) == ["winner", "front", "front"]
    assert retrained["trial"].iloc[0] == best["trial"]
    others = [t for t in front["trial"] if t != best["trial"]][:2]  # the front's other members first ...
    assert set(retrained["trial"][1 : 1 + len(others)]) == set(others)
    assert set(retrained["trial"][1:]) <= set(feasible["trial"])  # ... then the next fronts, never beyond the limit
    assert {"test_accuracy", "val_accuracy", "n_parameters"} <= set(retrained.columns)
    assert retrained["test_accuracy"].between(0, 1).all()
    # The Optuna export is a multi-objective study with the limit as a constraint: its front
    # (what optuna-dashboard draws) is pareto.tsv's.
    import optuna

    study = optuna.load_study(
        study_name="mo",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(a.results / "optuna.journal"))),
    )
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_accuracy", "n_parameters"]
    assert {t.user_attrs["trial"] for t in study.best_trials} == set(front["trial"])
    # The report's figures of the front and its growth.
    assert (a.results / "report" / "pareto_front.png").stat().st_size > 10_000
    assert (a.results / "report" / "hypervolume.png").stat().st_size > 10_000


@pytest.mark.workflow
def test_a_schedule_promotes_by_pareto_rank(tmp_path):
    from snaketune.files import read_json

    cfg = pareto_config(
        search={"method": "random", "n_trials": 9, "seed": 2, "schedule": "successive_halving", "min_epochs": 1, "eta": 3},
        search_space={
            "lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True},
            "hidden_units": {"type": "int", "low": 2, "high": 64, "log": True},
            "epochs": 3,
        },
        final={"retrain": False},
    )
    s = Study(tmp_path, cfg)
    s.run()
    rung0 = [read_json(f) for f in sorted((s.results / "rungs" / "b0" / "r0").glob("s*.json"))]
    assert len(rung0) == 9
    promoted = yaml.safe_load((s.results / "rungs" / "b0" / "promote-r1.yaml").read_text())["trials"]
    assert promoted == promote(rung0, 3, Objective.from_config(cfg["objective"]))
    table = s.table()
    assert set(table[table["budget"] == 3]["trial"]) == set(promoted)


def test_a_limit_on_a_metric_of_zero_is_judged_by_its_value():
    objective = Objective.from_config(
        {"metric": "m", "direction": "maximize", "constraints": {"errors": {"max": 3}, "margin": {"min": 0.5}, "z": {"max": 0}}}
    )
    record = {"status": "ok", "objective": 1.0, "metrics": {"errors": 0, "margin": 0, "z": 0.5}}
    # 0 is a value, not a missing metric: errors is within its limit, margin beyond it.
    assert objective.slacks(record) == {"errors <= 3": -3.0, "margin >= 0.5": 0.5, "z <= 0": 0.5}
    standing = objective.standing(record)
    assert standing.status == "infeasible" and standing.excess == pytest.approx(1.0 + 0.5)  # a bound of 0: absolute
    assert objective.slacks({"status": "ok", "objective": 1.0, "metrics": {}})["errors <= 3"] == math.inf


def test_a_schedule_that_trains_one_trial_to_the_end_warns_of_a_thin_front():
    from snaketune.config import StudySizeWarning, resolve_config

    cfg = tiny_config(
        objective={"also": {"n_parameters": "minimize"}},
        search={"method": "random", "n_trials": 27, "schedule": "successive_halving", "min_epochs": 1, "eta": 3},
        search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}, "epochs": 27},
    )
    with pytest.warns(StudySizeWarning, match="trains only 1 to it"):
        resolve_config(cfg)


def test_nsga2_rounds_carry_each_generation_and_breed_from_the_one_before():
    """NSGA-II in rounds: round r's proposals are generation r (their files carry it, and the
    next round's rebuilt study gets it back), so the search breeds instead of staying random."""
    from dataclasses import replace

    from snaketune.bayes import GENERATION_ATTR, Observation

    space = SearchSpace.from_config(
        {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 0.0, "high": 1.0}}
    )
    kw = {"direction": ["minimize", "minimize"], "sampler": "nsga2", "seed": 7, "n_startup": 4, "population": 4}
    history: list[Observation] = []
    generations = []
    for r in range(3):
        attrs: list = []
        first = propose_round(space, r, 4, history, sampler_attrs=attrs, **kw)
        assert first == propose_round(space, r, 4, history, sampler_attrs=[], **kw)  # reproducible
        generations.append([a[GENERATION_ATTR] for a in attrs])
        for k, (p, a) in enumerate(zip(first, attrs)):
            history.append(Observation(f"b{r}-{k}", p, (p["x"], 1 - p["x"] + p["y"]), attrs=a))
    assert generations == [[0] * 4, [1] * 4, [2] * 4]
    # Without the generations the rebuilt study could never leave generation 0.
    attrs = []
    propose_round(space, 3, 4, [replace(o, attrs=None) for o in history], sampler_attrs=attrs, **kw)
    assert {a[GENERATION_ATTR] for a in attrs} == {0}


@pytest.mark.workflow
def test_nsga2_generations_pass_from_round_to_round_through_the_workflow(tmp_path):
    cfg = pareto_config(
        search={"method": "bayes", "sampler": "nsga2", "n_trials": 8, "n_startup": 4, "batch": 2, "seed": 3},
        final={"retrain": False},
    )
    s = Study(tmp_path, cfg)
    s.run()
    generations = []
    for r in range(3):
        doc = yaml.safe_load((s.results / "rounds" / f"round-{r}.yaml").read_text())
        generations.append(sorted({a["NSGAIISampler:generation"] for a in doc["sampler_attrs"].values()}))
        assert set(doc["sampler_attrs"]) == set(doc["trials"])
    assert generations == [[0], [1], [2]]  # round 0 is generation 0 (4 trials), then one per round of 2
    assert (s.results / "pareto.tsv").is_file()
