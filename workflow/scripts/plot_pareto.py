"""Snakemake script: the report's figures of a study with several objectives (the front, the hypervolume)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune import plots  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.records import from_rule_params  # noqa: E402

objective = from_rule_params(sm.params)
records = read_json(sm.input.records)  # trials.json: every trial, in completion order
figures = {
    "front": lambda out: plots.plot_pareto_front(out, records, objective, study=sm.params.study),
    "hypervolume": lambda out: plots.plot_hypervolume_history(out, records, objective, study=sm.params.study),
}
plots.draw_or_explain(figures, sm.output, log)
