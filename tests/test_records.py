"""The records module: one ranking rule for every consumer, the budget to rank at, final-stage names."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

from conftest import tiny_config
from snaketune import records as rec
from snaketune.export import build_study
from snaketune.schedule import promote
from snaketune.space import SearchSpace
from snaketune.table import select_best, table_rows
from snaketune.trial_files import best_record as best_record_old_home


def ok(trial, accuracy, loss=None, budget=None, **extra):
    metrics = {"val_accuracy": accuracy}
    if loss is not None:
        metrics["val_loss"] = loss
    r = {"trial": trial, "status": "ok", "objective": accuracy, "params": {"x": len(trial)}, "metrics": metrics, **extra}
    if budget is not None:
        r["budget"] = budget
    return r


def failed(trial, reason="diverged at epoch 2"):
    return {"trial": trial, "status": "failed", "objective": None, "reason": reason, "params": {"x": 1}, "metrics": {}}


def order(records, metric="val_accuracy", direction="maximize", **kw):
    return [r["trial"] for r in rec.ranked(records, metric, direction, **kw)]


# -- the rule ---------------------------------------------------------------------------------------


def test_equal_accuracies_are_told_apart_by_the_loss_then_by_position():
    records = [ok("a", 0.9, 0.30), ok("b", 0.9, 0.20), ok("c", 0.8, 0.01), ok("d", 0.9, 0.20), ok("e", 0.9)]
    # b and d tie on accuracy and loss: the earlier one first; e has no loss: after those that have one.
    assert order(records) == ["b", "d", "a", "e", "c"]
    assert rec.best_record(records, "val_accuracy", "maximize")["trial"] == "b"


def test_the_loss_tie_break_follows_the_objectives_split_and_only_for_accuracy():
    records = [
        {**ok("a", 0.9), "metrics": {"val_accuracy": 0.9, "val_loss": 0.5, "train_loss": 0.1}},
        {**ok("b", 0.9), "metrics": {"val_accuracy": 0.9, "val_loss": 0.4, "train_loss": 0.9}},
    ]
    assert order(records) == ["b", "a"]  # val_loss decides, not train_loss
    assert rec.tiebreak_metric("val_accuracy") == "val_loss"
    assert rec.tiebreak_metric("train_accuracy") == "train_loss"
    assert rec.tiebreak_metric("val_loss") is None and rec.tiebreak_metric("score") is None
    # A minimised objective without a tie-break metric: equal values keep their position.
    scores = [{"trial": t, "status": "ok", "objective": v} for t, v in [("a", 2.0), ("b", 1.0), ("c", 1.0)]]
    assert order(scores, "score", "minimize") == ["b", "c", "a"]


@pytest.mark.parametrize("direction, expected", [("maximize", ["b", "a", "y", "x"]), ("minimize", ["a", "b", "y", "x"])])
def test_failed_trials_come_last_in_their_order(direction, expected):
    records = [failed("y"), ok("a", 0.5), {"trial": "x", "status": "ok", "objective": float("nan")}, ok("b", 0.7)]
    assert order(records, direction=direction) == expected
    assert order(records, direction=direction, ok_only=True) == expected[:2]


def test_a_score_at_a_larger_budget_outranks_any_at_a_smaller_one():
    records = [ok("short", 0.99, 0.01, budget=3), ok("long", 0.70, 0.90, budget=9), ok("mid", 0.95, budget=5)]
    assert order(records) == ["long", "mid", "short"]
    assert order(records, direction="minimize") == ["long", "mid", "short"]
    # trials.tsv rows hold text: "10" is a larger budget than "9", though it sorts before it as text.
    rows = [
        {"trial": "nine", "status": "ok", "objective": "0.99", "budget": "9"},
        {"trial": "ten", "status": "ok", "objective": "0.5", "budget": "10"},
    ]
    assert order(rows) == ["ten", "nine"]


def test_table_rows_are_ranked_by_their_text_columns():
    rows = [
        {"trial": "a", "status": "ok", "objective": "0.9", "val_loss": "0.3"},
        {"trial": "f", "status": "failed", "objective": "", "error": "boom"},
        {"trial": "b", "status": "ok", "objective": "0.9", "val_loss": "0.25"},
    ]
    assert order(rows) == ["b", "a", "f"]
    assert select_best(rows, "val_accuracy", "maximize")["trial"] == "b"


def test_direction_must_be_valid():
    with pytest.raises(ValueError, match="'maximize' or 'minimize', but got 'max'"):
        rec.ranked([ok("a", 0.5)], "val_accuracy", "max")


def test_no_successful_trial_lists_the_reasons():
    with pytest.raises(rec.NoSuccessfulTrial, match=r"all 2 trials failed(.|\n)*a: out of memory(.|\n)*b: boom"):
        select_best(
            [failed("a", "out of memory"), {"trial": "b", "status": "failed", "error": "boom"}], "val_accuracy", "maximize"
        )
    assert rec.best_record([failed("a")], "val_accuracy", "maximize") is None
    assert rec.best_record([], "val_accuracy", "maximize") is None


# -- every consumer uses the rule ---------------------------------------------------------------------


def test_promote_breaks_a_tie_in_accuracy_by_the_lower_loss():
    records = [ok("a", 0.9, 0.40), failed("z"), ok("b", 0.9, 0.10), ok("c", 0.6, 0.05)]
    assert promote(records, 1, "val_accuracy", "maximize") == ["b"]
    assert promote(records, 5, "val_accuracy", "maximize") == ["b", "a", "c"]


def test_table_best_yaml_promotion_and_export_agree_on_the_winner():
    records = [ok("a", 0.9, 0.40), failed("z"), ok("b", 0.9, 0.10), ok("c", 0.6, 0.05), ok("d", 0.9, 0.10)]
    args = ("val_accuracy", "maximize")
    rows = table_rows(records, ["x"], *args)
    assert [r["trial"] for r in rows] == ["b", "d", "a", "c", "z"]  # trials.tsv
    assert select_best(rows, *args)["trial"] == "b"  # best.yaml
    assert best_record_old_home(records, *args)["trial"] == "b"  # the report's star
    assert promote(records, 2, "val_accuracy", "maximize") == ["b", "d"]
    space = SearchSpace.from_config({"x": {"type": "int", "low": 0, "high": 5}})
    study = build_study(records, space, metric="val_accuracy", direction="maximize", study_name="s")
    assert study.user_attrs["best_trial"] == "b"  # the Optuna journal


# -- the budget to rank at -----------------------------------------------------------------------------


def test_rank_budget_is_the_largest_budget_with_enough_successes_else_the_most():
    records = (
        [ok(f"t{i}", 0.5, budget=1) for i in range(6)]
        + [ok(f"t{i}", 0.6, budget=3) for i in range(2)]
        + [failed("t9") | {"budget": 3}]
        + [ok("t0", 0.7, budget=9)]
    )
    assert rec.rank_budget(records, 1) == 9
    assert rec.rank_budget(records, 2) == 3
    assert rec.rank_budget(records, 3) == 1  # the failed trial at budget 3 does not count
    assert rec.rank_budget(records, 7) == 1  # none has enough: the budget with the most successes
    tie = [ok("a", 0.5, budget=2), ok("b", 0.5, budget=4)]
    assert rec.rank_budget(tie, 5) == 4  # equally many: the larger
    assert rec.rank_budget([ok("a", 0.5), failed("b")], 1) is None  # no schedule
    assert rec.rank_budget([failed("a") | {"budget": 2}, failed("b") | {"budget": 6}], 1) == 6
    rows = [{"trial": "a", "status": "ok", "objective": "0.5", "budget": b} for b in ("9", "10")]
    assert rec.rank_budget(rows, 1) == "10"


# -- final-stage names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, final",
    [
        ("val_accuracy", "test_accuracy"),
        ("val_loss", "test_loss"),
        ("val_f1", "test_f1"),
        ("score", "test_score"),
        ("loss", "test_loss"),
        ("train_loss", "test_train_loss"),  # only a leading val_ is replaced
        ("valley", "test_valley"),
    ],
)
def test_final_stage_metric_names(metric, final):
    assert rec.test_metric(metric) == final
    assert rec.is_test_metric(final) and not rec.is_test_metric(metric)


@pytest.mark.workflow
def test_a_custom_objective_is_retrained_and_tested_under_its_test_name(study):
    """Issue 14.4: objective `score`, final.retrain: a trainer writing `test_score`, as documented, passes."""
    s = study(
        tiny_config(
            study="named",
            trainer={"command": f"{sys.executable} trainer.py"},
            objective={"metric": "score", "direction": "maximize"},
            search_space={"x": [1, 2]},
            final={"retrain": True},
        )
    )
    (s.path / "trainer.py").write_text(
        textwrap.dedent(
            """
            import json, os, yaml
            x = yaml.safe_load(open(os.environ["SNAKETUNE_PARAMS"]))["x"]
            key = "test_score" if os.environ["SNAKETUNE_STAGE"] == "final" else "score"
            json.dump({key: x / 10}, open(os.path.join(os.environ["SNAKETUNE_OUT"], "metrics.json"), "w"))
            """
        )
    )
    s.run()
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    assert final["test_score"] == 0.2
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert best["params"] == {"x": 2} and best["test"]["value"] == 0.2
