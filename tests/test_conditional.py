"""Conditional search spaces (``when:``): a parameter exists only where its condition holds.

Grid search enumerates the active combinations only, random search keeps only the active
parameters, Bayesian rounds suggest them define-by-run, bad conditions are errors naming the key,
and a space without ``when:`` plans exactly the trials, ids and proposals it did before.
"""

import hashlib
import itertools
import json

import pytest
import yaml

from conftest import Study, tiny_config
from snaketune.bayes import Observation, build_study, make_sampler, propose_round
from snaketune.config import resolve_config
from snaketune.errors import ConfigError
from snaketune.hparams import HParams
from snaketune.plan import grid_trial_id, params_key, plan_trials
from snaketune.space import SearchSpace

SPACE = {
    "optimizer": ["adam", "sgd"],
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "grid": [0.5, 0.9], "when": {"optimizer": "sgd"}},
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "hidden_units_2": {"type": "categorical", "choices": [16, 32], "when": {"n_layers": {"min": 2}}},
    "hidden_units_3": {"type": "categorical", "choices": [16, 32], "when": {"n_layers": {"min": 3}}},
    "epochs": 2,
}


def space(spec=None) -> SearchSpace:
    return SearchSpace.from_config(spec or SPACE)


def active_names(s: SearchSpace, params: dict) -> set[str]:
    """The parameters active given ``params``, judged from scratch (config order is topological here)."""
    out: set[str] = set()
    for name in s.names:
        cond = s.conditions.get(name)
        if cond is None or all(c.param in out and c.holds(params[c.param]) for c in cond.clauses):
            out.add(name)
    return out


# -- grid ------------------------------------------------------------------------------------------


def test_grid_enumerates_only_active_combinations():
    s = space()
    grid = s.grid()
    # optimizer (adam: 1, sgd: 2 momenta) x layers (1: 1, 2: 2 widths, 3: 4 widths) = 3 x 7
    assert len(grid) == s.grid_size() == 21
    for point in grid:
        assert set(point) == active_names(s, point)
    assert len({params_key(p) for p in grid}) == len(grid)
    # The same set as the full product with inactive values dropped, duplicates merged.
    full = [dict(zip(s.names, combo)) for combo in itertools.product(*(p.grid_values() for p in s.params))]
    assert {params_key(s.active(p)) for p in full} == {params_key(p) for p in grid}


def test_inactive_parameters_never_enter_a_grid_id():
    adam = {"optimizer": "adam", "n_layers": 1, "epochs": 2}
    ids = {t.id for t in plan_trials({"search": {"method": "grid", "seed": 0}, "search_space": SPACE})}
    assert grid_trial_id(adam) in ids
    # the same trial, whatever value the inactive momentum would have had
    s = space()
    assert s.active({**adam, "momentum": 0.5}) == s.active({**adam, "momentum": 0.9}) == adam


def test_a_parameter_under_an_inactive_one_is_inactive():
    s = space(
        {
            "a": ["x", "y"],
            "b": {"type": "categorical", "choices": [1, 2], "when": {"a": "y"}},
            "c": {"type": "categorical", "choices": ["p", "q"], "when": {"b": 2}},
        }
    )
    assert s.grid() == [{"a": "x"}, {"a": "y", "b": 1}, {"a": "y", "b": 2, "c": "p"}, {"a": "y", "b": 2, "c": "q"}]
    assert s.active({"a": "x", "b": 2, "c": "p"}) == {"a": "x"}


def test_conditions_may_name_a_later_parameter():
    s = space({"width": {"type": "categorical", "choices": [8, 16], "when": {"deep": True}}, "deep": [False, True]})
    assert s.order == ("deep", "width")
    assert s.grid() == [{"deep": False}, {"width": 8, "deep": True}, {"width": 16, "deep": True}]


def test_one_of_several_values_and_ranges():
    s = space(
        {
            "opt": ["adam", "adamw", "sgd"],
            "wd": {"type": "categorical", "choices": [0.0, 0.1], "when": {"opt": ["adamw", "sgd"]}},
            "n": {"type": "int", "low": 1, "high": 5},
            "mid": {"type": "categorical", "choices": [1], "when": {"n": {"min": 2, "max": 4}, "opt": "sgd"}},
        }
    )
    for point in s.grid():
        assert ("wd" in point) == (point["opt"] != "adam")
        assert ("mid" in point) == (point["opt"] == "sgd" and 2 <= point["n"] <= 4)
    assert len(s.grid()) == s.grid_size() == 5 + 2 * 5 + 2 * 5  # adam, adamw (x wd), sgd (x wd; mid: one choice)


# -- random ----------------------------------------------------------------------------------------


def test_random_search_samples_only_active_parameters():
    s = space()
    seen_sgd = seen_adam = 0
    for i in range(200):
        p = s.sample(0, i)
        assert set(p) == active_names(s, p)
        seen_sgd += p["optimizer"] == "sgd"
        seen_adam += p["optimizer"] == "adam"
    assert seen_sgd and seen_adam


def test_an_active_parameter_draws_the_value_it_would_draw_unconditionally():
    unconditional = {k: {kk: vv for kk, vv in v.items() if kk != "when"} if isinstance(v, dict) else v for k, v in SPACE.items()}
    plain, cond = space(unconditional), space()
    for i in range(20):
        full, active = plain.sample(3, i), cond.sample(3, i)
        assert active == {k: v for k, v in full.items() if k in active}


def test_random_ids_stay_r0000():
    trials = plan_trials({"search": {"method": "random", "seed": 0, "n_trials": 3}, "search_space": SPACE})
    assert [t.id for t in trials] == ["r0000", "r0001", "r0002"]


# -- spaces without when: are what they were ---------------------------------------------------------

DEFAULT_GRID = {
    "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True, "grid": [0.001, 0.01, 0.1]},
    "n_layers": [1, 3, 5],
    "batch_size": [32, 64, 128],
    "hidden_units": 64,
    "dropout": 0.0,
    "weight_decay": 0.0,
    "epochs": 50,
}
RANDOM_SPACE = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 5},
    "hidden_units": {"type": "int", "low": 16, "high": 512, "log": True},
    "batch_size": [32, 64, 128],
    "optimizer": ["adam", "adamw"],
    "epochs": 50,
}


def _digest(x) -> str:
    return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()[:16]


def _rounded(trials):
    return [(t.id, {k: float(f"{v:.9g}") if isinstance(v, float) else v for k, v in t.params.items()}) for t in trials]


def test_a_space_without_conditions_plans_the_trials_it_did_before_issue_18():
    """Pinned with the code before conditional spaces existed (commit b7b5a2f)."""
    grid = plan_trials({"search": {"method": "grid", "seed": 0}, "search_space": DEFAULT_GRID})
    assert len(grid) == 27 and grid[0].id == "gf2ffcf4a15"
    assert _digest([(t.id, t.params) for t in grid]) == "e51afeb1e41abdff"
    rnd = plan_trials({"search": {"method": "random", "seed": 0, "n_trials": 30}, "search_space": RANDOM_SPACE})
    assert rnd[0].params["n_layers"] == 3 and rnd[0].params["hidden_units"] == 18
    assert rnd[0].params["lr"] == pytest.approx(0.008144886973076106, rel=1e-12)
    assert [t.params["hidden_units"] for t in rnd[:6]] == [18, 255, 127, 48, 65, 65]
    assert _digest(_rounded(rnd)) == "ecb2b95aee322577"  # all 30, floats to 9 digits


def test_a_space_without_conditions_proposes_what_it_did_before_issue_18():
    """TPE's first proposal after 8 random trials, pinned with the code before conditional spaces
    (commit b7b5a2f); the sampler has no `group` then."""
    s = SearchSpace.from_config(RANDOM_SPACE)
    history = [
        Observation(f"b0-{k}", p, float(k % 3) / 3 + p["n_layers"] / 10) for k, p in enumerate(s.sample(0, k) for k in range(8))
    ]
    first = propose_round(s, 1, 4, history, direction="maximize", sampler="tpe", seed=0, n_startup=8)[0]
    assert {k: v for k, v in first.items() if k != "lr"} == {
        "n_layers": 1,
        "hidden_units": 42,
        "batch_size": 64,
        "optimizer": "adam",
        "epochs": 50,
    }
    assert first["lr"] == pytest.approx(0.00019946835173892147, rel=1e-6)
    assert not make_sampler("tpe", 0, 8)._group


# -- bayes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "qmc"])
def test_bayesian_rounds_propose_only_active_parameters(sampler):
    s = SearchSpace.from_config(
        {
            **SPACE,
            "momentum": {**SPACE["momentum"], "grid": None},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        }
    )
    history: list[Observation] = []
    for r in range(2):  # round 1 asks the model
        proposals = propose_round(s, r, 4, history, direction="maximize", sampler=sampler, seed=0, n_startup=4)
        assert len(proposals) == 4
        for k, p in enumerate(proposals):
            assert set(p) == active_names(s, p)
            history.append(Observation(f"b{r}-{k}", p, p["lr"] + p["n_layers"]))


def test_earlier_trials_enter_the_study_with_their_active_parameters_only():
    s = space()
    history = [
        Observation("b0-0", {"optimizer": "adam", "n_layers": 1, "epochs": 2}, 0.5),
        Observation("b0-1", {"optimizer": "sgd", "momentum": 0.7, "n_layers": 2, "hidden_units_2": 16, "epochs": 2}, 0.6),
        Observation("b0-2", {"optimizer": "sgd", "n_layers": 1, "epochs": 2}, 0.7),  # momentum missing: another space
    ]
    study = build_study(s, "maximize", history, make_sampler("tpe", 0, 1, group=True))
    assert [t.params for t in study.trials] == [
        {"optimizer": "adam", "n_layers": 1},
        {"optimizer": "sgd", "momentum": 0.7, "n_layers": 2, "hidden_units_2": 16},
    ]
    assert make_sampler("tpe", 0, 8, group=True)._group


# -- bad conditions --------------------------------------------------------------------------------

BAD = {
    "unknown parameter": (
        {"optimizer": ["adam", "sgd"], "momentum": {"type": "categorical", "choices": [0.9], "when": {"optimiser": "sgd"}}},
        "search_space.momentum.when.optimiser: 'optimiser' is not a parameter of search_space (did you mean `optimizer`?)",
    ),
    "itself": (
        {"a": {"type": "categorical", "choices": [1], "when": {"a": 1}}},
        "search_space.a.when.a: a parameter cannot depend on itself",
    ),
    "cycle": (
        {
            "a": {"type": "categorical", "choices": [1], "when": {"b": 1}},
            "b": {"type": "categorical", "choices": [1], "when": {"a": 1}},
        },
        "search_space: the `when:` conditions form a cycle: a depends on b, b on a",
    ),
    "value never taken": (
        {"optimizer": ["adam", "sgd"], "momentum": {"type": "categorical", "choices": [0.9], "when": {"optimizer": "sdg"}}},
        "search_space.momentum.when.optimizer: optimizer: sdg can never hold: optimizer takes adam, sgd",
    ),
    "range never reached": (
        {
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "w": {"type": "categorical", "choices": [8], "when": {"n_layers": {"min": 4}}},
        },
        "search_space.w.when.n_layers: n_layers: {min: 4} can never hold: n_layers takes 1 to 3",
    ),
    "clauses that exclude each other": (
        {
            "opt": ["adam", "sgd"],
            "m": {"type": "categorical", "choices": [0.9], "when": {"opt": "sgd"}},
            "x": {"type": "categorical", "choices": [1], "when": {"m": 0.9, "opt": "adam"}},
        },
        "search_space.x.when: {m: 0.9, opt: adam} can never hold: no combination of m, opt makes x active",
    ),
    "float range": (
        {"lr": {"type": "float", "low": 0.1, "high": 1.0}, "m": {"type": "categorical", "choices": [1], "when": {"lr": 0.5}}},
        "search_space.m.when.lr: lr is a float range, whose values a condition cannot match",
    ),
    "min of text": (
        {"opt": ["adam", "sgd"], "m": {"type": "categorical", "choices": [1], "when": {"opt": {"min": 1}}}},
        "search_space.m.when.opt: `min`/`max` need a numeric parameter, but opt takes adam, sgd",
    ),
    "not a mapping": (
        {"opt": ["adam", "sgd"], "m": {"type": "categorical", "choices": [1], "when": "opt == sgd"}},
        "search_space.m.when: must be a mapping of parameter: value(s)",
    ),
    "unknown range key": (
        {"n": [1, 2], "m": {"type": "categorical", "choices": [1], "when": {"n": {"above": 1}}}},
        "search_space.m.when.n: a range condition takes `min` and/or `max`",
    ),
    "no values": ({"n": [1, 2], "m": {"when": {"n": 1}}}, "search_space.m: has a `when:` but no values"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_conditions_are_clear_errors(case):
    spec, message = BAD[case]
    with pytest.raises(ConfigError) as e:
        SearchSpace.from_config(spec)
    assert message in str(e.value)


def test_a_condition_the_grid_never_meets_is_an_error_for_grid_search_only():
    spec = {
        "n": {"type": "int", "low": 1, "high": 5, "grid": [1, 2]},
        "w": {"type": "categorical", "choices": [8], "when": {"n": {"min": 4}}},
    }
    s = SearchSpace.from_config(spec)  # random search can reach n >= 4
    with pytest.raises(ConfigError, match=r"search_space.w.when: \{n: \{min: 4\}\} can never hold in the grid"):
        s.check_reachable(grid=True)


def test_a_fixed_value_may_be_conditional():
    s = space({"opt": ["adam", "sgd"], "m": {"value": 0.9, "when": {"opt": "sgd"}}})
    assert s.grid() == [{"opt": "adam"}, {"opt": "sgd", "m": 0.9}]


# -- the built-in trainer: per-layer widths, checked ---------------------------------------------------


def test_per_layer_widths_build_the_mlp():
    from snaketune.model import build_mlp

    hp = HParams.from_params({"n_layers": 3, "hidden_units": 8, "hidden_units_1": 32, "hidden_units_3": 4})
    assert hp.widths() == [32, 8, 4]
    linear = [m for m in build_mlp((5,), 2, hp) if m.__class__.__name__ == "Linear"]
    assert [(m.in_features, m.out_features) for m in linear] == [(5, 32), (32, 8), (8, 4), (4, 2)]
    assert HParams.from_params({"momentum": 0.5}).widths() == [64, 64]  # what a trial without them gets


def _resolve(search_space, method="grid"):
    return resolve_config({**tiny_config(), "search": {"method": method, "seed": 0, "n_trials": 4}, "search_space": search_space})


def test_a_layer_width_needs_a_condition_on_n_layers():
    with pytest.raises(
        ConfigError,
        match=r"search_space.hidden_units_3: the width of hidden layer 3 has an effect only when n_layers >= 3, but hidden_units_3 is active with n_layers 1; add `when: \{n_layers: \{min: 3\}\}`",
    ):
        _resolve({"n_layers": [1, 3], "hidden_units_3": [8, 16]})
    with pytest.raises(ConfigError, match="is active with n_layers 2 \\(the default\\)"):
        _resolve({"hidden_units_3": [8, 16]})
    with pytest.raises(ConfigError, match=r"search_space.hidden_units_2: must be an integer >= 1, but got 0"):
        _resolve({"n_layers": [2], "hidden_units_2": [0, 8]})
    cfg = _resolve(
        {
            "n_layers": [1, 3],
            "hidden_units_3": {"type": "int", "low": 8, "high": 16, "grid": [8.0, 16], "when": {"n_layers": {"min": 3}}},
        }
    )
    assert cfg["search_space"]["hidden_units_3"]["grid"] == [8, 16]  # read as the integers they are declared


def test_the_example_config_resolves():
    from pathlib import Path

    from snaketune.config import one_study, read_config_file

    path = Path(__file__).resolve().parents[1] / "config" / "examples" / "conditional.yaml"
    cfg = resolve_config(one_study(read_config_file(path), [str(path)]))
    s = SearchSpace.from_config(cfg["search_space"])
    assert {"momentum", "lr_step_size", "lr_gamma", "hidden_units_2", "hidden_units_3"} == set(s.conditions)


# -- the report's plots --------------------------------------------------------------------------------


def test_plots_take_trials_without_their_inactive_parameters(tmp_path):
    from snaketune.plots import plot_importances, plot_parallel_coordinates, plot_slices
    from snaketune.records import Objective

    s = SearchSpace.from_config({**SPACE, "momentum": {**SPACE["momentum"], "grid": None}})
    records = []
    for i in range(12):
        p = s.sample(1, i)
        records.append({"trial": f"r{i:04d}", "status": "ok", "objective": 0.1 * (i % 5) + p["n_layers"], "params": p})
    records.append(
        {"trial": "r0099", "status": "failed", "objective": None, "params": {"optimizer": "adam", "n_layers": 1, "epochs": 2}}
    )
    for plot in (plot_parallel_coordinates, plot_slices, plot_importances):
        out = tmp_path / f"{plot.__name__}.png"
        plot(out, records, s, objective=Objective.single("val_accuracy", "maximize"))
        assert out.stat().st_size > 0


# -- end to end ----------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_a_conditional_grid_end_to_end(tmp_path):
    cfg = tiny_config(
        search_space={
            "optimizer": ["adam", "sgd"],
            "momentum": {"type": "float", "low": 0.5, "high": 0.9, "grid": [0.9], "when": {"optimizer": "sgd"}},
            "n_layers": [1, 2],
            "hidden_units_2": {"type": "categorical", "choices": [4], "when": {"n_layers": {"min": 2}}},
            "hidden_units": 8,
            "batch_size": 32,
            "epochs": 1,
        },
        final={"retrain": False},
    )
    s = Study(tmp_path, cfg)
    s.run("--until", "collect")
    table = s.table()
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    for _, row in table.iterrows():
        params = yaml.safe_load((s.results / "trials" / row["trial"] / "params.yaml").read_text())
        assert ("momentum" in params) == (row["optimizer"] == "sgd") == (row["momentum"] == row["momentum"])  # NaN = empty
        assert ("hidden_units_2" in params) == (row["n_layers"] == 2) == (row["hidden_units_2"] == row["hidden_units_2"])
