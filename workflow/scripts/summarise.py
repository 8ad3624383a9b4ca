"""Snakemake script: the study's answer, for programs (results/<study>/best.yaml: the winner, its
validation and test scores, the gap) and for people (results/<study>/summary.txt)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from pathlib import Path  # noqa: E402

from snaketune.files import atomic_write_text, read_json, read_yaml, write_yaml  # noqa: E402
from snaketune.summary import answer, run_summary  # noqa: E402

final = read_json(sm.input.final) if sm.input.final else None
write_yaml(sm.output.best, answer(read_yaml(sm.input.winner), final))

text = run_summary(
    Path(sm.output.summary).parent,
    searched=sm.params.searched,
    retrain=sm.params.retrain,
    configfiles=sm.params.configfiles,
)
atomic_write_text(sm.output.summary, (text or "") + "\n")
print(f"-> {sm.output.best}, {sm.output.summary}", file=log)
