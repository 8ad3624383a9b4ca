"""The study the export tests read: config/examples/bayes.yaml shrunk as tests/conftest.py
shrinks configs (synthetic data, 2 epochs, 5 trials in two rounds), trained by the built-in
trainer behind a command that makes trial b0-1 fail, as a broken trainer would. Run once per
test session and shared: each export test writes only its own export's folder, which the test
module's ``exported`` fixture writes once with :func:`exported_by`."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import yaml

from conftest import REPO, Study, tiny_config

FAILED_TRIAL = "b0-1"
FAILED_REASON = "cursed on purpose"
# The built-in trainer (python -m snaketune.train), but for one trial.
TRAINER = f"""
import os, sys
if os.path.basename(os.environ["SNAKETUNE_OUT"]) == {FAILED_TRIAL!r}:
    sys.exit({FAILED_REASON!r})
from snaketune.train import main
main()
"""


def export_config() -> dict:
    example = yaml.safe_load((REPO / "config" / "examples" / "bayes.yaml").read_text())
    return tiny_config(
        study="bayes-export",
        search={**example["search"], "n_trials": 5, "n_startup": 3, "batch": 2},
        search_space={
            **example["search_space"],
            "hidden_units": {"type": "int", "low": 8, "high": 16, "log": True},
            "batch_size": [32, 64],
            "epochs": 2,
        },
        trainer={"command": f"{sys.executable} trainer.py"},
    )


_finished: list[Study] = []


def finished_study(tmp_path_factory) -> Study:
    """The study, run to the end through the real snakemake CLI (once per test session)."""
    if not _finished:
        s = Study(tmp_path_factory.mktemp("export-study"), export_config())
        (s.path / "trainer.py").write_text(TRAINER)
        s.run()
        _finished.append(s)
    return _finished[0]


def exported_by(rule: str, tmp_path_factory) -> Study:
    """The finished study, exported by ``rule`` of the workflow (``snakemake export_mlflow``, ...)."""
    s = finished_study(tmp_path_factory)
    s.run(rule)
    return s


def read_table(results: Path) -> dict[str, dict[str, str]]:
    """The study's trials.tsv: each row by its trial id."""
    with open(results / "trials.tsv", newline="") as fh:
        return {r["trial"]: r for r in csv.DictReader(fh, delimiter="\t")}
