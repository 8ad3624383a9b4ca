"""Snakemake script: choose the Pareto front members to retrain besides the winner (final.front)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.files import read_json, read_yaml, write_yaml  # noqa: E402
from snaketune.front import front_members  # noqa: E402
from snaketune.records import from_rule_params  # noqa: E402

winner = read_yaml(sm.input.winner)["trial"]
members = front_members(read_json(sm.input.records), sm.params.k, from_rule_params(sm.params), winner)
write_yaml(sm.output.front, {"winner": winner, "members": members})
print(f"{len(members)} of {sm.params.k} front members to retrain besides {winner}: {[m['trial'] for m in members]}", file=log)
