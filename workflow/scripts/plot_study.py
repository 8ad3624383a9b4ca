"""Snakemake script: the report's figures of the search and the trials table as HTML."""

import time
import traceback
from pathlib import Path

from snaketune import plots
from snaketune.files import read_json
from snaketune.space import SearchSpace

sm = snakemake  # noqa: F821 (injected by Snakemake)
trials_dir = Path(sm.input.table).parent / "trials"  # results/<study>/trials/<trial>/history.csv
final_dir = Path(sm.input.final).parent if sm.input.final else None  # results/<study>/final/history.csv
kw = {"metric": sm.params.metric, "direction": sm.params.direction}
space = SearchSpace.from_config(sm.params.search_space)
records = read_json(sm.input.records)  # trials.json: every trial, in completion order
figures = {
    "history": lambda out: plots.plot_optimisation_history(out, records, study=sm.params.study, **kw),
    "parallel": lambda out: plots.plot_parallel_coordinates(out, records, space, **kw),
    "importances": lambda out: plots.plot_importances(out, records, space, **kw),
    "slices": lambda out: plots.plot_slices(out, records, space, **kw),
    "curves": lambda out: plots.plot_learning_curves(
        out,
        plots.learning_curves(trials_dir, records, top=sm.params.top, final_dir=final_dir, **kw),
        metric=sm.params.metric,
        top=sm.params.top,
    ),
}
with open(sm.log[0], "w") as log:
    print(f"{len(records)} trials", file=log)
    for name, draw in figures.items():
        t0 = time.perf_counter()
        try:
            draw(sm.output[name])
        except Exception as e:  # a figure must never stop the report: say what went wrong instead
            traceback.print_exc(file=log)
            plots.message_figure(sm.output[name], name, f"This figure failed: {type(e).__name__}: {e}\nSee {sm.log[0]}.")
        print(f"{sm.output[name]}: {time.perf_counter() - t0:.2f} s", file=log)
    plots.write_trials_html(sm.input.table, sm.output.table, study=sm.params.study, **kw)
    print(f"{sm.output.table}: written", file=log)
