"""Snakemake script: the report's figures of the search and the trials table as HTML."""

import sys

sm = snakemake  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

import time  # noqa: E402
import traceback  # noqa: E402

from snaketune import plots  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.layout import Layout  # noqa: E402
from snaketune.space import SearchSpace  # noqa: E402

layout = Layout(sm.params.study)
# objectives: the whole objective with several objectives or limits (snaketune.records.rule_params).
kw = {"metric": sm.params.metric, "direction": sm.params.direction, "objective": sm.params.get("objectives")}
space = SearchSpace.from_config(sm.params.search_space)
records = read_json(sm.input.records)  # trials.json: every trial, in completion order
figures = {
    "history": lambda out: plots.plot_optimisation_history(out, records, study=sm.params.study, **kw),
    "parallel": lambda out: plots.plot_parallel_coordinates(out, records, space, **kw),
    "importances": lambda out: plots.plot_importances(out, records, space, **kw),
    "slices": lambda out: plots.plot_slices(out, records, space, **kw),
    "curves": lambda out: plots.plot_learning_curves(
        out,
        plots.learning_curves(layout, records, top=sm.params.top, final=bool(sm.input.final), **kw),
        metric=sm.params.metric,
        top=sm.params.top,
    ),
}
print(f"{len(records)} trials", file=log)
for name, draw in figures.items():
    t0 = time.perf_counter()
    try:
        draw(sm.output[name])
    except Exception as e:  # a figure must never stop the report: say what went wrong instead
        traceback.print_exc(file=log)
        plots.message_figure(sm.output[name], name, f"This figure failed: {type(e).__name__}: {e}\nSee {sm.log[0]}.")
    print(f"{sm.output[name]}: {time.perf_counter() - t0:.2f} s", file=log)
plots.write_trials_html(
    sm.input.table, sm.output.table, study=sm.params.study, metric=sm.params.metric, direction=sm.params.direction
)
print(f"{sm.output.table}: written", file=log)
