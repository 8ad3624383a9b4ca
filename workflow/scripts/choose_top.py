"""Snakemake script: choose the top trials of the search to re-evaluate with extra seeds (select.top_k)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.files import write_yaml  # noqa: E402
from snaketune.records import from_rule_params, load_records  # noqa: E402
from snaketune.reeval import top_trials  # noqa: E402

records = load_records(sm.input.results)
top = top_trials(records, sm.params.k, from_rule_params(sm.params))
write_yaml(sm.output.top, {"top_k": sm.params.k, "trials": top})
n_ok = sum(r.get("status") == "ok" for r in records)
print(f"top {len(top)} of {len(records)} trials ({n_ok} ok): {[t['trial'] for t in top]}", file=log)
