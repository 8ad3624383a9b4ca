"""Snakemake script: gather every trial's result.json into trials.tsv."""

from snaketune.table import collect, write_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
rows = collect(sm.input.results, sm.params.param_names, sm.params.metric, sm.params.direction)
write_table(sm.output.table, rows, sm.params.param_names)
with open(sm.log[0], "w") as log:
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"{len(rows)} trials: {n_ok} ok, {len(rows) - n_ok} failed -> {sm.output.table}", file=log)
