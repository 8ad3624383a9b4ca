"""A Bayesian study through the real snakemake CLI: rounds as jobs, reproducible at any parallelism."""

import filecmp

import pandas as pd
import pytest

from conftest import Study, job_count, tiny_config

pytestmark = pytest.mark.workflow

TIMING = ["seconds", "train_seconds"]


def bayes_config():
    return tiny_config(
        study="bo",
        search={"method": "bayes", "sampler": "tpe", "n_trials": 10, "n_startup": 4, "batch": 3, "seed": 5},
        search_space={
            "lr": {"type": "float", "low": 0.001, "high": 0.3, "log": True},
            "n_layers": {"type": "int", "low": 1, "high": 3},
            "hidden_units": [8, 16],
            "epochs": 2,
        },
    )


def test_bayes_rounds_are_jobs_and_reproducible_across_parallelism(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Study(tmp_path / "a", bayes_config()), Study(tmp_path / "b", bayes_config())
    dry = a.run("-n").stdout
    assert job_count(dry, "propose") == 3  # rounds of 4, 3, 3
    assert job_count(dry, "train_trial") == 10

    a.run("--cores", "1")
    b.run("--cores", "2")
    for r in range(3):
        fa, fb = a.results / "rounds" / f"round-{r}.yaml", b.results / "rounds" / f"round-{r}.yaml"
        assert filecmp.cmp(fa, fb, shallow=False), f"round {r} proposals differ"
    for tid in ["b0-0", "b1-2", "b2-0"]:
        pa, pb = (a.results / "trials" / tid / "params.yaml"), (b.results / "trials" / tid / "params.yaml")
        assert pa.read_text() == pb.read_text()
    ta, tb = a.table().drop(columns=TIMING), b.table().drop(columns=TIMING)
    pd.testing.assert_frame_equal(ta, tb)
    assert sorted(ta["round"].unique()) == [0, 1, 2]
    assert (ta["status"] == "ok").all()
