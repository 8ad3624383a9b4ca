"""Snakemake script: choose the best trial of trials.tsv and write best.yaml."""

import sys

from snaketune.files import read_json, write_yaml
from snaketune.table import NoSuccessfulTrial, read_table, select_best

sm = snakemake  # noqa: F821 (injected by Snakemake)
rows = read_table(sm.input.table)
with open(sm.log[0], "w") as log:
    try:
        best = select_best(rows, sm.params.metric, sm.params.direction)
    except NoSuccessfulTrial as e:
        print(e, file=log)
        print(f"\nsnaketune: {e}\n", file=sys.stderr)
        sys.exit(1)
    # The table holds text; the trial's record (trials.json) holds the typed parameters.
    result = next(r for r in read_json(sm.input.records) if r["trial"] == best["trial"])
    metrics = result["metrics"]
    doc = {
        "study": sm.params.study,
        "trial": best["trial"],
        "metric": sm.params.metric,
        "direction": sm.params.direction,
        "value": result["objective"],
        "best_epoch": metrics.get("best_epoch"),
        "params": result["params"],
        "metrics": metrics,
        "n_trials": len(rows),
        "n_ok": sum(r["status"] == "ok" for r in rows),
    }
    write_yaml(sm.output.best, doc)
    print(f"best trial {best['trial']}: {sm.params.metric} = {result['objective']}", file=log)
