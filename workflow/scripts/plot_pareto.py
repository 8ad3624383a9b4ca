"""Snakemake script: the report's figures of a study with several objectives (the front, the hypervolume)."""

import sys

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

import traceback  # noqa: E402

from snaketune import plots  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.records import from_rule_params  # noqa: E402

objective = from_rule_params(sm.params)
records = read_json(sm.input.records)  # trials.json: every trial, in completion order
figures = {
    "front": lambda out: plots.plot_pareto_front(out, records, objective, study=sm.params.study),
    "hypervolume": lambda out: plots.plot_hypervolume_history(out, records, objective, study=sm.params.study),
}
for name, draw in figures.items():
    try:
        draw(sm.output[name])
    except Exception as e:  # a figure must never stop the report: say what went wrong instead
        traceback.print_exc(file=log)
        plots.message_figure(sm.output[name], name, f"This figure failed: {type(e).__name__}: {e}\nSee {sm.log[0]}.")
    print(f"{sm.output[name]}: written", file=log)
