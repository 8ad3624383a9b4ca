"""Snakemake script: choose the best trial of the study and write best.yaml."""

import sys

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.files import read_json, write_yaml  # noqa: E402
from snaketune.records import NoSuccessfulTrial, select_best  # noqa: E402

records = read_json(sm.input.records)  # trials.json: every trial, typed
try:
    best = select_best(records, sm.params.metric, sm.params.direction)
except NoSuccessfulTrial as e:
    print(e, file=log)
    print(f"\nsnaketune: {e}\n", file=sys.__stderr__)
    sys.exit(1)
metrics = best["metrics"]
doc = {
    "study": sm.params.study,
    "trial": best["trial"],
    "metric": sm.params.metric,
    "direction": sm.params.direction,
    "value": best["objective"],
    "best_epoch": metrics.get("best_epoch"),
    "params": best["params"],
    "metrics": metrics,
    "n_trials": len(records),
    "n_ok": sum(r["status"] == "ok" for r in records),
}
write_yaml(sm.output.best, doc)
print(f"best trial {best['trial']}: {sm.params.metric} = {best['objective']}", file=log)
