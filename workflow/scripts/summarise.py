"""Snakemake script: the study's summary for people (results/<study>/summary.txt)."""

import sys

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from pathlib import Path  # noqa: E402

from snaketune.files import atomic_write_text  # noqa: E402
from snaketune.summary import run_summary  # noqa: E402

text = run_summary(
    Path(sm.output.summary).parent,
    searched=sm.params.searched,
    retrain=sm.params.retrain,
    configfiles=sm.params.configfiles,
)
atomic_write_text(sm.output.summary, (text or "") + "\n")
print(f"-> {sm.output.summary}", file=log)
