"""Snakemake script: the study as an Optuna journal file, for optuna-dashboard."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.export import write_journal  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.layout import Layout  # noqa: E402
from snaketune.space import SearchSpace  # noqa: E402

records = read_json(sm.input.records)  # trials.json: every trial, in completion order
write_journal(
    sm.output.journal,
    records,
    SearchSpace.from_config(sm.params.search_space),
    metric=sm.params.metric,
    direction=sm.params.direction,
    study_name=sm.params.study,
    layout=Layout(sm.params.study),
    user_attrs={"search": sm.params.search},
    objectives=sm.params.get("objectives"),
)
print(f"{len(records)} trials -> {sm.output.journal} (study {sm.params.study!r})", file=log)
