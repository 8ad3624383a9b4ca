"""Snakemake script: choose the best trial of the study and write select/winner.yaml, the final
stage's input (with select.top_k: the best mean over the seeds among the re-evaluated trials)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.files import read_json, read_yaml, write_yaml  # noqa: E402
from snaketune.records import NoSuccessfulTrial, best_document, from_rule_params  # noqa: E402

records = read_json(sm.input.records)  # trials.json: every trial, typed
reevaluated = [t["trial"] for t in read_yaml(sm.input.top)["trials"]] if sm.input.top else None
try:
    objective = from_rule_params(sm.params)
    doc = best_document(records, objective, study=sm.params.study, reevaluated=reevaluated, trial=sm.params.get("trial"))
except NoSuccessfulTrial as e:
    print(e, file=log)
    print(f"\nsnaketune: {e}\n", file=sys.__stderr__)
    sys.exit(1)
write_yaml(sm.output.winner, doc)
how = f" (mean over {doc['seeds']} seeds, std {doc['objective_std']:.4g})" if reevaluated is not None else ""
how += f" ({doc['chosen_by']})" if "chosen_by" in doc and reevaluated is None else ""
print(f"best trial {doc['trial']}: {sm.params.metric} = {doc['value']}{how}", file=log)
