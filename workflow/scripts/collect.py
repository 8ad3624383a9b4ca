"""Snakemake script: gather every trial's result into trials.tsv (for people) and trials.json
(the same trials as typed records in completion order, for the jobs after it); with select.top_k
the top trials' re-evaluations add their mean over the seeds."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.records import from_rule_params  # noqa: E402
from snaketune.trial_files import collect_study  # noqa: E402

rows = collect_study(
    sm.input.results,
    sm.output.table,
    sm.output.records,
    sm.params.param_names,
    from_rule_params(sm.params),
    seed_files=sm.input.reeval,
    front=sm.output.get("front"),
)
counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "infeasible", "failed")}
print(
    f"{len(rows)} trials: {', '.join(f'{n} {s}' for s, n in counts.items() if n or s != 'infeasible')} -> {sm.output.table}",
    file=log,
)
