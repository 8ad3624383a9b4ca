"""The StudyPlan (built once from the resolved config), the Layout of a study, and the typed specs."""

import json
from dataclasses import asdict, replace

import pytest

from conftest import tiny_config
from snaketune import resolve_config
from snaketune.layout import Layout, parse_run_name, run_name
from snaketune.plan import StudyPlan, trial_seed
from snaketune.specs import FrontSpec, PackSpec, ReevalSpec, RunSpec, SlotSpec, from_json, to_json


def plan_of(**over) -> StudyPlan:
    return StudyPlan(resolve_config(tiny_config(**over)))


def test_one_run_per_trial_and_fold_each_with_its_own_folder_and_seed():
    plan = plan_of(cv={"folds": 3})
    assert len(plan.trials) == 4
    runs = [r for t in plan.trials for r in plan.runs(t)]
    assert len(runs) == 12 and len({r.name for r in runs}) == 12
    assert plan.study_results() == [plan.layout.result(r.name) for r in runs]
    run = runs[4]
    assert plan.run(run.name) == run and parse_run_name(run.name) == (run.trial.id, run.fold)
    spec = plan.run_spec(run)
    assert spec.dir == f"results/tiny/trials/{run.trial.id}/fold-{run.fold}"
    assert spec.seed == trial_seed(0, run.trial.id, run.fold) and spec.folds == 3
    seeds = {plan.run_spec(r).seed for r in runs}
    assert len(seeds) == 12  # every trial and fold trains from its own seed


def test_packs_deal_runs_in_turn_and_never_cross_a_bayesian_round():
    plan = plan_of(search={"method": "grid", "trials_per_job": 3})
    ids = [t.id for t in plan.trials]
    assert [[r.trial.id for r in p] for p in plan.packs] == [ids[0::2], ids[1::2]]
    assert plan.study_results() == [plan.layout.pack_file(0), plan.layout.pack_file(1)]

    bayes = plan_of(
        search={"method": "bayes", "n_trials": 7, "n_startup": 3, "batch": 2, "trials_per_job": 2},
        search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}, "epochs": 2},
    )
    rounds = [{r.trial.round for r in p} for p in bayes.packs]
    assert all(len(r) == 1 for r in rounds)  # one round per pack
    assert sorted(r.pop() for r in rounds) == [0, 0, 1, 2]  # rounds of 3, 2 and 2 trials
    # Round 2 is proposed from the packs of rounds 0 and 1, and a pack's trials read their round's file.
    assert len(bayes.earlier_round_results(2)) == 3
    assert bayes.proposals_of([bayes.packs[-1][0].trial]) == [bayes.layout.round_file(2)]


def test_schedules_plan_rung_slots_and_their_specs():
    plan = plan_of(
        search={"method": "random", "n_trials": 9, "schedule": "successive_halving", "min_epochs": 1, "eta": 3},
        search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}, "epochs": 9},
    )
    assert [r.n for r in plan.brackets[0].bracket.rungs] == [9, 3, 1]
    assert len(plan.study_results()) == 13
    first = plan.slot_spec(0, 0, 4)
    assert first.first.trial == plan.brackets[0].trials[4].id and first.first.budget == 1 and first.promotion is None
    later = plan.slot_spec(0, 2, 0)
    assert later.first is None and later.last_rung and later.budget == 9
    assert later.promotion == plan.layout.promotion_file(0, 2) == "results/tiny/rungs/b0/promote-r2.yaml"


def test_specs_survive_json_and_the_same_spec_gives_the_same_text():
    plan = plan_of(search={"method": "grid", "trials_per_job": 3}, cv={"folds": 2})
    specs = [plan.run_spec(plan.packs[0][0]), plan.pack_spec(1), plan.final_spec()]
    sched = plan_of(
        search={"method": "random", "n_trials": 3, "schedule": "successive_halving", "min_epochs": 1, "eta": 3},
        search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}, "epochs": 3},
    )
    specs += [sched.slot_spec(0, 0, 1), sched.slot_spec(0, 1, 0)]
    # ... and the other kinds and shapes: a Bayesian run (parameters read at run time), a fold, a
    # re-evaluation, a final repeat, and a random trial (its parameters drawn as floats).
    lr = {"type": "float", "low": 0.001, "high": 0.1, "log": True}
    bayes = plan_of(search={"method": "bayes", "n_trials": 3, "n_startup": 2, "batch": 1}, search_space={"lr": lr, "epochs": 2})
    reeval = plan_of(select={"top_k": 2, "seeds": 1}, cv={"folds": 2}, final={"repeats": 2})
    random = plan_of(
        search={"method": "random", "n_trials": 2}, search_space={"lr": lr, "activation": ["relu", "gelu"], "epochs": 2}
    )
    specs += [
        bayes.run_spec(bayes.runs(bayes.trials[-1])[0]),
        reeval.run_spec(reeval.runs(reeval.trials[1])[1]),
        reeval.reeval_spec(1, 1, 0),
        reeval.final_spec(1),
        random.run_spec(random.runs(random.trials[1])[0]),
        plan_of(objective={"also": {"n_parameters": "minimize"}}, final={"front": 2}).front_spec(1),
    ]
    for spec in specs:
        text = to_json(spec)
        back = from_json(text)
        assert back == spec and type(back) is type(spec) and to_json(back) == text
        # The text is a rerun trigger: to_json's shortcut (issue 16) writes what asdict did.
        assert text == json.dumps(asdict(spec), sort_keys=True, separators=(",", ":"))
    kinds = [RunSpec, PackSpec, RunSpec, SlotSpec, SlotSpec, RunSpec, RunSpec, ReevalSpec, RunSpec, RunSpec, FrontSpec]
    assert [type(s) for s in specs] == kinds
    with pytest.raises(TypeError, match="not JSON serializable"):  # as json.dumps says
        to_json(replace(specs[0], params={"lr": object()}))
    with pytest.raises(ValueError, match="unknown spec kind"):
        from_json('{"kind": "mystery"}')


def test_a_spec_holds_what_makes_a_run_what_it_is():
    # The spec is a Snakemake param: anything that changes what a run computes must change it.
    base = plan_of()
    run = base.runs(base.trials[0])[0]
    spec = to_json(base.run_spec(run))
    changed = [
        plan_of(objective={"metric": "val_loss", "direction": "minimize"}),
        plan_of(early_stopping={"patience": 3}),
        plan_of(search={"method": "grid", "seed": 1}),
    ]
    for plan in changed:
        assert to_json(plan.run_spec(plan.runs(plan.trials[0])[0])) != spec
    # ... and nothing else does: the same config planned twice gives the same spec.
    assert to_json(plan_of().run_spec(run)) == spec
    assert replace(base.run_spec(run), params=None) != base.run_spec(run)


def test_the_layout_names_every_path_of_a_study(tmp_path):
    layout = Layout("s")
    assert layout.result(run_name("g1", fold=2)) == "results/s/trials/g1/fold-2/result.json"
    assert layout.run_dir(run_name("g1", rung=1)) == "results/s/trials/g1/rung-1"
    assert layout.final_file("model.pt") == "results/s/final/model.pt"
    assert Layout.at("results/s") == layout
    at = Layout.at(tmp_path / "s")
    for run in ("t/fold-0", "t/fold-1", "u/rung-2", "v"):
        path = tmp_path / "s" / "trials" / run / "history.csv"
        path.parent.mkdir(parents=True)
        path.write_text("epoch\n1\n")
    assert at.trial_history_files({"trial": "t", "folds": 2}) == [
        tmp_path / "s/trials/t/fold-0/history.csv",
        tmp_path / "s/trials/t/fold-1/history.csv",
    ]
    assert at.trial_history_files({"trial": "u", "rung": 2}) == [tmp_path / "s/trials/u/rung-2/history.csv"]
    assert at.trial_history_files({"trial": "v"}) == [tmp_path / "s/trials/v/history.csv"]
    assert at.trial_history_files({"trial": "missing"}) == []
