"""Snakemake script: the report's figures of the search and the trials table as HTML (the learning
curves, which wait for the final retrain: plot_curves.py)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune import plots  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.records import from_rule_params  # noqa: E402
from snaketune.space import SearchSpace  # noqa: E402

objective = from_rule_params(sm.params)  # with several objectives or limits, the whole objective
space = SearchSpace.from_config(sm.params.search_space)
records = read_json(sm.input.records)  # trials.json: every trial, in completion order
figures = {
    "history": lambda out: plots.plot_optimisation_history(out, records, objective=objective, study=sm.params.study),
    "parallel": lambda out: plots.plot_parallel_coordinates(out, records, space, objective=objective),
    "importances": lambda out: plots.plot_importances(out, records, space, objective=objective),
    "slices": lambda out: plots.plot_slices(out, records, space, objective=objective),
}
print(f"{len(records)} trials", file=log)
plots.draw_or_explain(figures, sm.output, log)
plots.write_trials_html(
    sm.input.table, sm.output.table, study=sm.params.study, metric=sm.params.metric, direction=sm.params.direction
)
print(f"{sm.output.table}: written", file=log)
