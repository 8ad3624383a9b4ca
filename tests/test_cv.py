"""k-fold cross-validation: stratified folds, fold runs that never see test, folds combined per trial."""

import json
import sys
import textwrap

import numpy as np
import pytest
import yaml

from conftest import job_count, tiny_config
from snaketune.data import TEST, load_prepared, prepare, stratified_folds, stratified_split
from snaketune.errors import DataError
from snaketune.table import combine_folds
from snaketune.train import TrialSettings, train


def test_folds_are_stratified_and_leave_test_out():
    y = np.repeat(np.arange(3), [60, 30, 15])
    split = stratified_split(y, 0.2, 0.2, 0)
    fold = stratified_folds(y, split, 5, 0)
    assert (fold[split == TEST] == -1).all()
    pool = split != TEST
    assert set(np.unique(fold[pool])) == {0, 1, 2, 3, 4}
    for c in range(3):
        counts = np.bincount(fold[pool & (y == c)], minlength=5)
        assert counts.max() - counts.min() <= 1  # each class spread evenly over the folds
    assert np.array_equal(fold, stratified_folds(y, split, 5, 0))


def test_too_few_examples_for_the_folds_is_a_clear_error():
    y = np.array([0] * 40 + [1] * 5)
    split = stratified_split(y, 0.2, 0.2, 0)
    with pytest.raises(DataError) as e:
        stratified_folds(y, split, 5, 0, classes=["a", "b"])
    assert str(e.value) == (
        "class 'b' has 4 example(s) outside the test part, too few for cv.folds=5: every fold needs one example "
        "of every class (36 examples outside the test part in all); use cv.folds between 2 and 4, or cv.folds: 1 "
        "(one validation part), or add examples"
    )


@pytest.mark.parametrize("k", [2, 127, 128, 129, 130, 300])
def test_no_fold_is_empty_for_any_number_of_folds(k):
    """The fold array once was int8: folds 128 and up wrapped around and had no rows (scored 0.0)."""
    y = np.arange(4000) % 5
    split = stratified_split(y, 0.2, 0.2, 0)
    fold = stratified_folds(y, split, k, 0)
    pool = split != TEST
    assert fold.max() == k - 1 and (fold[~pool] == -1).all() and (fold[pool] >= 0).all()
    for c in range(5):  # every fold holds every class
        assert np.bincount(fold[pool & (y == c)], minlength=k).min() >= 1


def test_more_folds_than_the_smallest_class_allows_is_an_error_in_prepare(tmp_path):
    cfg = {"source": "synthetic", "n_samples": 600, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    prepare(cfg, tmp_path / "ok.npz", folds=160)  # 160 examples of each class outside the test part
    p = load_prepared(tmp_path / "ok.npz")
    assert all(p.rows("search", f)[1].any() for f in (0, 127, 128, 159))
    with pytest.raises(DataError, match=r"synthetic: class 'class0' has 160 example\(s\) .* too few for cv.folds=161"):
        prepare(cfg, tmp_path / "bad.npz", folds=161)


def test_the_data_summary_under_cross_validation_names_no_validation_part(tmp_path):
    cfg = {"source": "synthetic", "n_samples": 600, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    summary = prepare(cfg, tmp_path / "cv.npz", folds=3)
    assert set(summary["split"]) == {"cross-validated", "test"} and "validation" not in summary["split"]
    assert sum(summary["fold_sizes"]) == summary["split"]["cross-validated"] and len(summary["fold_sizes"]) == 3
    assert sum(summary["split"].values()) == summary["n_examples"]
    assert set(prepare(cfg, tmp_path / "plain.npz")["split"]) == {"train", "validation", "test"}


def test_a_fold_without_examples_is_an_error_not_a_score(tmp_path):
    """A prepared file from before the fix (int8 folds) has empty folds: a trainer must not score them."""
    path = tmp_path / "p.npz"
    prepare({"source": "synthetic", "n_samples": 300, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path, folds=3)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["fold"][arrays["fold"] == 2] = 0
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="fold 2 of 3 has no examples; run prepare_data again"):
        load_prepared(path).rows("search", 2)


def test_a_fold_run_trains_on_the_other_folds_and_never_reads_test(tmp_path):
    path = tmp_path / "p.npz"
    prepare({"source": "synthetic", "n_samples": 300, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path, folds=3)
    p = load_prepared(path)
    tr, ev = p.rows("search", 1)
    assert not (tr & ev).any() and (ev == (p.fold == 1)).all() and not (tr & (p.split == TEST)).any()
    assert (tr | ev).sum() == (p.split != TEST).sum()
    # Poison the test part: a fold run must not notice.
    with np.load(path) as f:
        arrays = dict(f)
    arrays["X"][arrays["split"] == TEST] = np.nan
    np.savez(tmp_path / "poisoned.npz", **arrays)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"epochs": 2, "hidden_units": 8}))
    m = train(TrialSettings(params=tmp_path / "params.yaml", out=tmp_path / "o", data=tmp_path / "poisoned.npz", fold=2))
    assert np.isfinite(m["val_loss"])


def test_combine_folds_mean_std_and_failures():
    def rec(fold, obj, status="ok", reason=None):
        return {"trial": "t", "fold": fold, "folds": 3, "status": status, "objective": obj, "reason": reason,
                "params": {"lr": 0.1}, "seconds": 1.0, "metrics": {"val_accuracy": obj, "best_epoch": 3 + fold, "n_parameters": 10}}  # fmt: skip

    ok = combine_folds([rec(2, 0.8), rec(0, 0.6), rec(1, 0.7)])
    assert ok["status"] == "ok" and ok["objective"] == pytest.approx(0.7)
    assert ok["objective_std"] == pytest.approx(np.std([0.6, 0.7, 0.8]))
    assert ok["metrics"]["fold_objectives"] == [0.6, 0.7, 0.8] and ok["metrics"]["best_epoch"] == 4
    assert ok["metrics"]["n_parameters"] == 10 and ok["seconds"] == 3.0
    bad = combine_folds([rec(0, 0.6), rec(1, None, "failed", "diverged at epoch 2"), rec(2, 0.8)])
    assert bad["status"] == "failed" and bad["reason"] == "fold 1: diverged at epoch 2" and bad["objective"] is None


@pytest.mark.workflow
def test_cv_study_end_to_end(study):
    s = study(tiny_config(study="cv", cv={"folds": 3}))
    assert job_count(s.run("-n").stdout, "train_trial") == 4 * 3
    s.run()
    table = s.table()
    assert len(table) == 4 and (table["folds"] == 3).all() and (table["objective_std"] >= 0).all()
    tid = table["trial"][0]
    per_fold = [
        json.loads((s.results / "trials" / tid / f"fold-{f}" / "metrics.json").read_text())["val_accuracy"] for f in range(3)
    ]
    assert table["objective"][0] == pytest.approx(np.mean(per_fold))
    assert table["objective_std"][0] == pytest.approx(np.std(per_fold))
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    assert final["epochs_run"] == best["best_epoch"] and "test_accuracy" in final


@pytest.mark.workflow
def test_a_failed_fold_fails_its_trial(study):
    s = study(
        tiny_config(
            study="cvfail",
            cv={"folds": 2},
            trainer={"command": f"{sys.executable} trainer.py"},
            objective={"metric": "score", "direction": "maximize"},
            search_space={"x": [1, 2, 3]},
            final={"retrain": False},
        )
    )
    (s.path / "trainer.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys, yaml
            x = yaml.safe_load(open(os.environ["SNAKETUNE_PARAMS"]))["x"]
            if x == 2 and os.environ["SNAKETUNE_FOLD"] == "1":
                sys.exit("fold 1 of x=2 is broken")
            json.dump({"score": x + int(os.environ["SNAKETUNE_FOLD"])}, open(os.path.join(os.environ["SNAKETUNE_OUT"], "metrics.json"), "w"))
            """
        )
    )
    s.run()
    table = s.table().set_index("x")
    assert table.loc[2, "status"] == "failed" and "fold 1: exit code 1: fold 1 of x=2 is broken" in table.loc[2, "error"]
    assert table.loc[3, "objective"] == 3.5 and table.loc[1, "objective"] == 1.5
    assert yaml.safe_load((s.results / "best.yaml").read_text())["params"] == {"x": 3}
