"""Snakemake script: choose which trials of a rung go on to the next one."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.files import read_json, write_yaml  # noqa: E402
from snaketune.records import from_rule_params  # noqa: E402
from snaketune.schedule import promote  # noqa: E402

records = [read_json(f) for f in sm.input.results]
chosen = promote(records, sm.params.n, from_rule_params(sm.params))
write_yaml(sm.output.promotion, {"rung": int(sm.wildcards.rung), "trials": chosen})
n_ok = sum(r.get("status") == "ok" for r in records)
print(f"bracket {sm.wildcards.bracket} rung {sm.wildcards.rung}: promoted {chosen} ({n_ok} of {len(records)} ok)", file=log)
