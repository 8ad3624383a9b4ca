"""Snakemake script: the retrained front members' validation and test scores, beside the winner's."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.front import write_front_table  # noqa: E402
from snaketune.records import from_rule_params  # noqa: E402

rows = write_front_table(
    sm.output.table, sm.input.winner, sm.input.final, sm.input.members, sm.input.front, from_rule_params(sm.params)
)
print(f"{len(rows)} configurations -> {sm.output.table}", file=log)
