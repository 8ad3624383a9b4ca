"""Snakemake script: the learning curves of the best trials and of the final retrain."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune import plots  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.layout import Layout  # noqa: E402
from snaketune.records import from_rule_params  # noqa: E402

objective = from_rule_params(sm.params)  # with several objectives or limits, the whole objective
records = read_json(sm.input.records)  # trials.json: every trial, in completion order
top = sm.params.top
figures = {
    "curves": lambda out: plots.plot_learning_curves(
        out,
        plots.learning_curves(Layout(sm.params.study), records, objective=objective, top=top, final=bool(sm.input.final)),
        metric=sm.params.metric,
        top=top,
    ),
}
plots.draw_or_explain(figures, sm.output, log)
