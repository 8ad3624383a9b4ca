"""Snakemake script: gather every trial's result into trials.tsv (for people) and trials.json
(the same trials as typed records in completion order, for the jobs after it)."""

from snaketune.files import write_json
from snaketune.table import combine_records, iter_results, table_rows, write_table
from snaketune.trial_files import in_completion_order

sm = snakemake  # noqa: F821 (injected by Snakemake)
results = list(iter_results(sm.input.results))  # each file read once, packs expanded
records = combine_records(r for _, r in results)
rows = table_rows(records, sm.params.param_names, sm.params.metric, sm.params.direction)
write_table(sm.output.table, rows, sm.params.param_names)
write_json(sm.output.records, in_completion_order(results, records))
with open(sm.log[0], "w") as log:
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"{len(rows)} trials: {n_ok} ok, {len(rows) - n_ok} failed -> {sm.output.table}", file=log)
