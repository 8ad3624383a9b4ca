"""Snakemake script: gather every trial's result into trials.tsv (for people) and trials.json
(the same trials as typed records in completion order, for the jobs after it); with select.top_k
the top trials' re-evaluations add their mean over the seeds."""

import sys

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.trial_files import collect_study  # noqa: E402

rows = collect_study(
    sm.input.results,
    sm.output.table,
    sm.output.records,
    sm.params.param_names,
    sm.params.metric,
    sm.params.direction,
    seed_files=sm.input.reeval,
)
n_ok = sum(r["status"] == "ok" for r in rows)
print(f"{len(rows)} trials: {n_ok} ok, {len(rows) - n_ok} failed -> {sm.output.table}", file=log)
