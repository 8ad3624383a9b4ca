"""Search-space syntax, validation, grid expansion, random sampling and stable trial ids."""

import math

import numpy as np
import pytest

from snaketune.errors import ConfigError
from snaketune.plan import grid_trial_id, plan_trials, random_trial_id
from snaketune.space import Categorical, Fixed, FloatRange, IntRange, SearchSpace, parse_param, typed_spec

SEED_GRID = {
    "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "grid": [0.001, 0.01, 0.1]},
    "n_layers": [1, 3, 5],
    "batch_size": [32, 64, 128],
    "epochs": 50,
}


def test_parse_forms():
    assert parse_param("a", 3) == Fixed("a", 3)
    assert parse_param("a", ["x", "y"]) == Categorical("a", ("x", "y"))
    assert parse_param("a", {"type": "categorical", "choices": [1, 2]}) == Categorical("a", (1, 2))
    f = parse_param("a", {"type": "float", "low": 1, "high": 2})
    assert isinstance(f, FloatRange) and f.low == 1.0 and not f.log
    i = parse_param("a", {"type": "int", "low": 1, "high": 8, "log": True})
    assert isinstance(i, IntRange) and i.log


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"type": "float", "low": 5, "high": 1}, "`low <= high` must hold, but got (low=5.0, high=1.0)"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "`log: true` needs `low > 0`"),
        ({"type": "int", "low": 0, "high": 4, "log": True}, "`log: true` needs `low >= 1`"),
        ({"type": "int", "low": 1.5, "high": 4}, "must be an integer"),
        ({"type": "float", "low": 1e-4, "high": 1, "log": True, "step": 0.1}, "cannot be combined"),
        ({"type": "float", "low": 0, "high": 1, "grid": [0.5, 2]}, "value 2 lies outside"),
        ({"type": "float", "low": 0, "high": 1, "grid": []}, "grid: is empty"),
        ({"type": "categorical", "choices": []}, "`choices` is empty"),
        ([], "`choices` is empty"),
        ({"type": "floatt", "low": 0, "high": 1}, "must be one of float, int, categorical"),
        ({"low": 0, "high": 1}, "a mapping needs `type:`"),
        ({"type": "float", "low": 0}, "needs `high`"),
        ({"type": "float", "low": 0, "high": 1, "lg": True}, "unknown key(s) ['lg']"),
        ({"type": "float", "low": 0, "high": 1, "step": 0.3}, "`step` 0.3 must divide high - low = 1, so that `high` is a value"),
        ({"type": "int", "low": 16, "high": 100, "step": 16}, "`step` 16 must divide high - low = 84 [...] e.g. high: 96"),
        ({"type": "float", "low": 0, "high": 1, "grid": [0.5, 0.5]}, "grid: 0.5 is listed twice"),
        ({"type": "float", "low": 0, "high": 1, "step": float("inf")}, "step: must be a positive number, but got inf"),
        (["a", "b", "a"], "'a' is listed twice; list each choice once"),
        ([0.1, float("nan")], "every choice must be a finite number (not .inf or .nan), but got nan"),
        (float("-inf"), "must be a finite number (not .inf or .nan), but got -inf"),
    ],
)
def test_invalid_params_name_the_key(spec, fragment):
    with pytest.raises(ConfigError) as e:
        parse_param("lr", spec)
    for part in fragment.split(" [...] "):
        assert part in str(e.value), str(e.value)
    assert "search_space.lr" in str(e.value)


def test_equal_values_of_different_types_are_different_choices():
    """1, 1.0 and true are told apart, as trial ids tell them apart."""
    assert parse_param("a", [1, 1.0, True]).grid_values() == [1, 1.0, True]


@pytest.mark.parametrize(
    "spec, declared, typed",
    [
        (
            {"type": "int", "low": 1.0, "high": "1e2", "step": 1.0, "grid": [2.0, 3]},
            None,
            {"low": 1, "high": 100, "step": 1, "grid": [2, 3]},
        ),
        ({"type": "float", "low": "1e-4", "high": 1, "grid": ["1e-3", 1]}, None, {"low": 1e-4, "high": 1, "grid": [1e-3, 1]}),
        ({"type": "int", "low": 1.5, "high": 3}, None, {"low": 1.5, "high": 3}),  # not whole: left for the check
        (["1e3", 2.0, "x"], None, ["1e3", 2.0, "x"]),  # nothing declared: as written
        (["1e3", 2.0, True], int, [1000, 2, True]),
        ("1e-3", float, 1e-3),
        ({"type": "categorical", "choices": [4.0, 8]}, int, {"type": "categorical", "choices": [4, 8]}),
    ],
)
def test_typed_spec_reads_numbers_by_their_declared_type(spec, declared, typed):
    def typed_values(x):  # (type, value) all the way down: 2 and 2.0 must differ
        if isinstance(x, dict):
            return {k: typed_values(v) for k, v in x.items() if k != "type"}
        if isinstance(x, list):
            return [typed_values(v) for v in x]
        return (type(x), x)

    assert typed_values(typed_spec(spec, declared)) == typed_values(typed)


def test_seed_grid_has_27_combinations_in_config_order():
    space = SearchSpace.from_config(SEED_GRID)
    grid = space.grid()
    assert len(grid) == 27 == space.grid_size()
    assert grid[0] == {"lr": 0.001, "n_layers": 1, "batch_size": 32, "epochs": 50}
    assert grid[1]["batch_size"] == 64  # the last parameter varies fastest
    assert {g["lr"] for g in grid} == {0.001, 0.01, 0.1}


def test_grid_over_float_range_without_values_is_an_error():
    space = SearchSpace.from_config({"lr": {"type": "float", "low": 0.001, "high": 0.1}})
    with pytest.raises(ConfigError, match=r"search_space\.lr: grid search cannot enumerate a float range"):
        space.grid()


def test_int_range_grid_enumerates_with_step():
    space = SearchSpace.from_config({"units": {"type": "int", "low": 16, "high": 64, "step": 16}})
    assert [g["units"] for g in space.grid()] == [16, 32, 48, 64]


def test_random_samples_respect_bounds_types_and_steps():
    space = SearchSpace.from_config(
        {
            "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
            "units": {"type": "int", "low": 8, "high": 512, "log": True},
            "layers": {"type": "int", "low": 1, "high": 5},
            "act": ["relu", "gelu"],
            "epochs": 10,
        }
    )
    samples = [space.sample(0, i) for i in range(2000)]
    assert all(1e-5 <= s["lr"] <= 1e-1 for s in samples)
    assert all(isinstance(s["units"], int) and 8 <= s["units"] <= 512 for s in samples)
    assert {s["layers"] for s in samples} == {1, 2, 3, 4, 5}
    assert {round(s["dropout"], 6) for s in samples} <= {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
    assert {s["act"] for s in samples} == {"relu", "gelu"}
    assert all(s["epochs"] == 10 for s in samples)


def test_log_uniform_is_uniform_in_log_space():
    space = SearchSpace.from_config({"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}})
    logs = np.log10([space.sample(1, i)["lr"] for i in range(4000)])
    # Each decade gets about a quarter of the samples; a linear-uniform sampler puts ~90% in the top one.
    counts, _ = np.histogram(logs, bins=[-5, -4, -3, -2, -1])
    assert counts.min() > 800 and counts.max() < 1200
    assert math.isclose(np.median(logs), -3, abs_tol=0.15)


def test_random_trials_are_stable_when_n_trials_grows():
    cfg = {
        "search": {"method": "random", "n_trials": 5, "seed": 3},
        "search_space": {"lr": {"type": "float", "low": 0.1, "high": 1}},
    }
    first = plan_trials(cfg)
    cfg["search"]["n_trials"] = 9
    more = plan_trials(cfg)
    assert [t.id for t in first] == ["r0000", "r0001", "r0002", "r0003", "r0004"]
    assert more[:5] == first
    assert random_trial_id(12) == "r0012"
    cfg["search"]["seed"] = 4
    assert plan_trials(cfg)[0].params != first[0].params


def test_grid_ids_are_stable_when_the_grid_widens():
    cfg = {"search": {"method": "grid", "seed": 0}, "search_space": {"lr": [0.01, 0.1], "n_layers": [1, 2]}}
    before = {t.id: t.params for t in plan_trials(cfg)}
    cfg["search_space"]["n_layers"] = [1, 2, 3]
    after = {t.id: t.params for t in plan_trials(cfg)}
    assert set(before) < set(after) and len(after) == 6
    for tid, params in before.items():
        assert after[tid] == params


def test_grid_id_depends_on_values_not_order_and_tells_1_from_1_0():
    a = grid_trial_id({"lr": 0.1, "n": 1})
    assert a == grid_trial_id({"n": 1, "lr": 0.1})
    assert a != grid_trial_id({"lr": 0.1, "n": 1.0})
    assert a != grid_trial_id({"lr": 0.1, "n": 2})
    assert a.startswith("g") and len(a) == 11 and a[1:].isalnum()


def test_parameter_names_must_be_identifiers():
    with pytest.raises(ConfigError, match="must be an identifier"):
        SearchSpace.from_config({"../evil": 1})
