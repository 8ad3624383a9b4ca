"""Asynchronous Bayesian search (search.parallel W): the plan's sliding window, its declared inputs,
stable ids, the rounds left as they were, config-time rejections, and one study through snakemake
giving the same trials.tsv at --cores 1, 2 and 4."""

import json

import pytest

from conftest import REPO, Study, job_count, tiny_config
from snaketune import ConfigError, resolve_config
from snaketune.bayes import Observation, bayes_trial_id, propose_round, round_sizes
from snaketune.plan import StudyPlan, plan_size
from snaketune.space import SearchSpace

SPACE = SearchSpace.from_config(
    {
        "x": {"type": "float", "low": -5.0, "high": 5.0},
        "n": {"type": "int", "low": 1, "high": 8},
        "act": ["relu", "gelu"],
        "epochs": 3,
    }
)


def score(p):
    return (p["x"] - 2.0) ** 2 + 0.1 * abs(p["n"] - 4) + (0.5 if p["act"] == "gelu" else 0.0)


def bayes_plan(**search) -> StudyPlan:
    base = {"method": "bayes", "n_trials": 12, "n_startup": 4, "batch": 3, "seed": 5}
    return StudyPlan(resolve_config(tiny_config(search={**base, **search}, search_space=SPACE_CONFIG)))


SPACE_CONFIG = {"lr": {"type": "float", "low": 0.001, "high": 0.3, "log": True}, "hidden_units": [8, 16], "epochs": 2}


def ancestors(plan: StudyPlan, target: str) -> set[str]:
    """Every file the job making ``target`` depends on, through the declared inputs of the propose
    and train_trial jobs (what Snakemake builds before it and reruns it for)."""
    producers = {}
    for t in plan.trials:
        for f in plan.run_results(t):
            producers[f] = plan.proposals_of([t])
    for r in {t.round for t in plan.trials}:
        producers[plan.layout.round_file(r)] = plan.earlier_round_results(r) + plan.previous_proposals(r)
    seen, todo = set(), list(producers[target])
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += producers[f]
    return seen


def test_default_is_rounds_with_the_same_ids_inputs_and_proposals():
    plan = bayes_plan(n_trials=10)
    assert plan.parallel == 0
    assert [t.id for t in plan.trials] == ["b0-0", "b0-1", "b0-2", "b0-3", "b1-0", "b1-1", "b1-2", "b2-0", "b2-1", "b2-2"]
    assert plan.previous_proposals(2) == []
    assert plan.earlier_round_results(2) == [f for t in plan.trials[:7] for f in plan.run_results(t)]
    # proposals pinned from the code before search.parallel existed (rounds of 4, 3, 3; seed 3)
    history, proposed = [], []
    for r, size in enumerate(round_sizes(10, 4, 3)):
        props = propose_round(SPACE, r, size, history, direction="minimize", sampler="tpe", seed=3, n_startup=4)
        proposed.append(props)
        history += [Observation(bayes_trial_id(r, k), p, score(p)) for k, p in enumerate(props)]
    assert [(p["n"], p["act"]) for p in proposed[0]] == [(5, "relu"), (2, "gelu"), (2, "relu"), (3, "relu")]
    assert [p["x"] for p in proposed[0]] == pytest.approx(
        [-1.766841976655955, -4.431800669725065, 2.688491409548174, -2.325859578576516]
    )
    assert [(p["n"], p["act"]) for p in proposed[1]] == [(8, "relu"), (1, "gelu"), (5, "gelu")]
    assert [p["x"] for p in proposed[1]] == pytest.approx([3.780557741033623, 1.9780148038262286, 0.4366800333451767])


def test_parallel_makes_each_later_trial_a_round_and_keeps_ids_when_n_trials_grows():
    plan = bayes_plan(parallel=3)
    ids = [t.id for t in plan.trials]
    assert ids == ["b0-0", "b0-1", "b0-2", "b0-3"] + [f"b{r}-0" for r in range(1, 9)]
    assert [plan.round_size(r) for r in range(9)] == [4] + [1] * 8
    bigger = bayes_plan(parallel=3, n_trials=20)
    assert [t.id for t in bigger.trials][:12] == ids
    assert all(bigger.window(r) == plan.window(r) for r in range(1, 9))  # the same inputs: nothing reruns
    size = plan_size(plan.config)
    assert size.trials == 12 and size.other_jobs - 1 == 9  # a propose job per round (+ the final retrain)


def test_trial_k_reads_results_up_to_k_minus_w_and_the_rest_as_running():
    plan = bayes_plan(parallel=3)
    res = {t.id: plan.run_results(t) for t in plan.trials}
    w = plan.window(1)  # trial 4: results of 0, 1; trials 2, 3 running
    assert w.observed == res["b0-0"] + res["b0-1"]
    assert w.running == [("b0-2", plan.layout.round_file(0)), ("b0-3", plan.layout.round_file(0))]
    w = plan.window(5)  # trial 8 = b5-0: results of 0 .. 5, trials 6, 7 (b3-0, b4-0) running
    assert w.observed == [f for t in plan.trials[:6] for f in res[t.id]]
    assert [tid for tid, _ in w.running] == ["b3-0", "b4-0"]
    # declared: round r-1's file and only the results the window adds (O(N) edges in all)
    assert plan.earlier_round_results(1) == res["b0-0"] + res["b0-1"]
    assert plan.earlier_round_results(5) == res["b2-0"]  # trial 8 - W = trial 5
    assert plan.previous_proposals(5) == [plan.layout.round_file(4)] and plan.previous_proposals(0) == []
    declared = [f for r in range(1, 9) for f in plan.earlier_round_results(r)]
    assert declared == [f for t in plan.trials[:9] for f in res[t.id]]  # trials 0 .. N-1-W, each once


def test_everything_a_round_reads_is_an_ancestor_of_its_job():
    for folds, w in ((1, 3), (2, 3), (1, 1), (1, 6)):
        plan = StudyPlan(
            resolve_config(
                tiny_config(
                    search={"method": "bayes", "n_trials": 12, "n_startup": 4, "parallel": w, "seed": 5},
                    search_space=SPACE_CONFIG,
                    cv={"folds": folds},
                )
            )
        )
        for r in range(1, 9):
            up = ancestors(plan, plan.layout.round_file(r))
            window = plan.window(r)
            assert set(window.observed) <= up
            assert {f for _, f in window.running} <= up
            assert len(window.observed) == folds * max(0, 4 + r - 1 - w + 1)  # every fold of trials 0 .. k-W


def test_window_of_one_observes_every_earlier_trial():
    plan = bayes_plan(parallel=1)
    for r in range(1, 9):
        w = plan.window(r)
        assert w.running == [] and len(w.observed) == 4 + r - 1


def test_running_trials_steer_the_proposal_and_keep_it_a_pure_function():
    history = [Observation(f"b0-{k}", p, score(p)) for k, p in enumerate(SPACE.sample(0, i) for i in range(8))]
    running = [Observation(f"b{r}-0", {"x": 2.0, "n": 4, "act": "relu", "epochs": 3}, None) for r in (1, 2, 3)]

    def propose(run):
        return propose_round(SPACE, 4, 1, history, direction="minimize", sampler="tpe", seed=1, n_startup=4, running=run)

    assert propose(running) == propose(list(reversed(running)))  # the order they are listed in is irrelevant
    assert propose(running) != propose(())
    two = [Observation(o.trial, o.params, (o.value, float(o.params["n"]))) for o in history]  # objective.also
    args = dict(direction=["minimize", "minimize"], sampler="tpe", seed=1, n_startup=4, running=running)
    assert propose_round(SPACE, 4, 1, two, **args) == propose_round(SPACE, 4, 1, two, **args)
    for sampler in ("qmc", "cmaes", "gp"):
        args = dict(direction="minimize", sampler=sampler, seed=1, n_startup=4, running=running)
        assert propose_round(SPACE, 4, 1, history, **args) == propose_round(SPACE, 4, 1, history, **args)


@pytest.mark.parametrize(
    "search, fragments",
    [
        ({"method": "random", "parallel": 2}, ["search.parallel", "bayes"]),
        ({"method": "bayes", "parallel": 2, "trials_per_job": 2}, ["search.parallel", "trials_per_job"]),
        (
            {"method": "bayes", "parallel": 2, "schedule": "successive_halving", "min_epochs": 1, "eta": 3},
            ["search.parallel", "search.schedule"],
        ),
    ],
)
def test_combinations_that_do_not_fit_are_rejected_at_config_time(search, fragments):
    cfg = tiny_config(search={"n_trials": 12, **search}, search_space={**SPACE_CONFIG, "epochs": 9})
    with pytest.raises(ConfigError) as e:
        resolve_config(cfg)
    assert all(f in str(e.value) for f in fragments), str(e.value)


@pytest.mark.parametrize(
    "over",
    [
        {"cv": {"folds": 2}, "select": {"top_k": 2, "seeds": 1}},
        {"objective": {"metric": "val_accuracy", "direction": "maximize", "also": {"val_loss": "minimize"}}},
    ],
)
def test_cross_validation_several_objectives_and_top_k_are_accepted(over):
    cfg = tiny_config(
        search={"method": "bayes", "n_trials": 12, "n_startup": 4, "parallel": 4}, search_space=SPACE_CONFIG, **over
    )
    assert StudyPlan(resolve_config(cfg)).parallel == 4
    assert (
        StudyPlan(resolve_config(tiny_config(search={"method": "bayes", "parallel": 0}, search_space=SPACE_CONFIG))).parallel == 0
    )


def async_config():
    return tiny_config(
        study="asy",
        trainer={"command": f"sh {REPO}/config/examples/trainers/branin.sh"},
        objective={"metric": "loss", "direction": "minimize"},
        search={"method": "bayes", "sampler": "tpe", "n_trials": 9, "n_startup": 3, "parallel": 3, "seed": 2},
        search_space={"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}},
        final={"retrain": False},
    )


@pytest.mark.workflow
def test_async_study_is_the_same_at_any_cores_and_grows_without_rerunning(tmp_path):
    tables = []
    for cores in ("1", "2", "4"):
        (tmp_path / cores).mkdir()
        s = Study(tmp_path / cores, async_config())
        if cores == "1":
            dry = s.run("-n").stdout
            assert job_count(dry, "propose") == 7 and job_count(dry, "train_trial") == 9
        s.run("--cores", cores, "results/asy/trials.tsv")
        table = s.table()
        timing = [c for c in ("seconds", "train_seconds", "cpu_seconds", "max_rss_mb") if c in table]
        tables.append(table.drop(columns=timing).sort_values("trial").reset_index(drop=True))
    import pandas as pd

    for t in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], t)
    assert (tables[0]["status"] == "ok").all() and len(tables[0]) == 9
    # a changed result (trial 1 = b0-1) reruns the round that declares it (k = 1 + W: round 2) and
    # every later one, though they declare it only through the chain
    result = s.results / "trials" / "b0-1" / "result.json"
    original = result.read_text()
    record = json.loads(original)
    record["objective"] += 1.0
    result.write_text(json.dumps(record))
    dry = s.run("-n", "results/asy/trials.tsv").stdout
    assert job_count(dry, "propose") == 5 and job_count(dry, "train_trial") == 5
    result.write_text(original)  # the same content again: nothing reruns
    # raising n_trials adds rounds and reruns none of the finished ones
    cfg = async_config()
    cfg["search"]["n_trials"] = 11
    s.write(cfg)
    dry = s.run("-n", "results/asy/trials.tsv").stdout
    assert job_count(dry, "propose") == 2 and job_count(dry, "train_trial") == 2
