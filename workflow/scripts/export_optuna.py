"""Snakemake script: the study as an Optuna journal file, for optuna-dashboard."""

from pathlib import Path

from snaketune.export import write_journal
from snaketune.files import read_json
from snaketune.space import SearchSpace

sm = snakemake  # noqa: F821 (injected by Snakemake)
trials_dir = Path(sm.input.table).parent / "trials"  # results/<study>/trials/<trial>/history.csv
records = read_json(sm.input.records)  # trials.json: every trial, in completion order
write_journal(
    sm.output.journal,
    records,
    SearchSpace.from_config(sm.params.search_space),
    metric=sm.params.metric,
    direction=sm.params.direction,
    study_name=sm.params.study,
    trials_dir=trials_dir,
    user_attrs={"search": sm.params.search},
)
with open(sm.log[0], "w") as log:
    print(f"{len(records)} trials -> {sm.output.journal} (study {sm.params.study!r})", file=log)
