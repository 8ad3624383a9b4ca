"""Snakemake script: choose which trials of a rung go on to the next one."""

from snaketune.files import read_json, write_yaml
from snaketune.schedule import promote

sm = snakemake  # noqa: F821 (injected by Snakemake)
records = [read_json(f) for f in sm.input.results]
chosen = promote(records, sm.params.n, sm.params.direction)
write_yaml(sm.output.promotion, {"rung": int(sm.wildcards.rung), "trials": chosen})
with open(sm.log[0], "w") as log:
    n_ok = sum(r.get("status") == "ok" for r in records)
    print(f"bracket {sm.wildcards.bracket} rung {sm.wildcards.rung}: promoted {chosen} ({n_ok} of {len(records)} ok)", file=log)
