"""Successive halving and Hyperband shapes, promotion, and BOHB's choice of budget."""

import pytest

from snaketune.bayes import observations
from snaketune.schedule import hyperband, promote, schedule_epochs, successive_halving


def shape(b):
    return [(r.budget, r.n) for r in b.rungs]


def test_successive_halving_keeps_a_third_three_times_longer():
    assert shape(successive_halving(27, 1, 27, 3)) == [(1, 27), (3, 9), (9, 3), (27, 1)]
    # min_epochs is rounded up to R / eta^s so that the last rung ends exactly at R.
    assert shape(successive_halving(10, 3, 30, 3)) == [(3, 10), (10, 3), (30, 1)]
    # Never an empty rung: the winner always reaches the full budget.
    assert shape(successive_halving(4, 1, 27, 3)) == [(1, 4), (3, 1), (9, 1), (27, 1)]


def test_hyperband_brackets_follow_li_et_al():
    # R = 81, eta = 3: the table of Li et al. (2018), section 3.
    brackets = hyperband(1, 81, 3)
    assert [shape(b) for b in brackets] == [
        [(1, 81), (3, 27), (9, 9), (27, 3), (81, 1)],
        [(3, 34), (9, 11), (27, 3), (81, 1)],
        [(9, 15), (27, 5), (81, 1)],
        [(27, 8), (81, 2)],
        [(81, 5)],
    ]
    assert [b.index for b in brackets] == [0, 1, 2, 3, 4]


def test_hyperband_repeats_until_enough_configurations():
    one = hyperband(1, 27, 3)
    assert sum(b.n_configs for b in one) == 27 + 12 + 6 + 4
    two = hyperband(1, 27, 3, n_configs_at_least=50)
    assert len(two) == 2 * len(one) and [b.index for b in two] == list(range(8))


def test_schedule_epochs_counts_only_the_extra_epochs_of_promoted_trials():
    sh = successive_halving(9, 1, 9, 3)  # 9 x 1, 3 x (3-1), 1 x (9-3)
    assert schedule_epochs([sh]) == 9 + 6 + 6
    # Full-budget random search over the same 9 configurations would train 81 epochs.
    assert schedule_epochs([sh]) < 9 * 9 / 3


@pytest.mark.parametrize("direction, expected", [("maximize", ["c", "a"]), ("minimize", ["d", "b"])])
def test_promote_takes_the_best_ok_trials(direction, expected):
    records = [
        {"trial": "a", "status": "ok", "objective": 0.8},
        {"trial": "b", "status": "ok", "objective": 0.5},
        {"trial": "c", "status": "ok", "objective": 0.9},
        {"trial": "x", "status": "failed", "objective": None},
        {"trial": "d", "status": "ok", "objective": 0.4},
    ]
    assert promote(records, 2, "score", direction) == expected


def test_promote_ties_keep_trial_order_and_fewer_ok_than_slots():
    records = [{"trial": t, "status": "ok", "objective": 1.0} for t in "abc"]
    assert promote(records, 2, "score", "maximize") == ["a", "b"]
    assert promote(records[:1] + [{"trial": "z", "status": "failed"}], 3, "score", "maximize") == ["a"]


def test_bohb_fits_on_the_largest_budget_with_enough_results():
    def rec(t, budget, value):
        return {"trial": t, "status": "ok", "objective": value, "budget": budget, "params": {"x": value}}

    records = [rec(f"t{i}", 1, i) for i in range(9)] + [rec(f"t{i}", 3, 10 + i) for i in range(3)] + [rec("t0", 9, 99)]
    assert {o.value for o in observations(records, min_count=3)} == {10, 11, 12}
    assert len(observations(records, min_count=4)) == 9  # only budget 1 has >= 4 results
    assert [o.value for o in observations(records, min_count=1)] == [99]
