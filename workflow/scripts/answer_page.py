"""Snakemake script: the page the report opens on (results/<study>/report/answer.html): the
summary's results and the optimisation history (the Pareto front with several objectives)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from pathlib import Path  # noqa: E402

from snaketune.files import atomic_write_text  # noqa: E402
from snaketune.summary import answer_html, summary_rows  # noqa: E402

# The study's folder as this job sees it: its table's (a storage provider may have copied the
# inputs elsewhere than results/<study>/, all to one place).
results = Path(sm.input.table).parent
facts = summary_rows(results, searched=sm.params.searched, retrain=sm.params.retrain) or []
atomic_write_text(sm.output.page, answer_html(sm.params.study, facts, sm.input.figure))
print(f"-> {sm.output.page}", file=log)
