"""Snakemake script: read the data source once, decide the task and fix the split for every trial."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

import json  # noqa: E402
import warnings  # noqa: E402

from snaketune.data import prepare  # noqa: E402
from snaketune.errors import DataError  # noqa: E402
from snaketune.files import write_json  # noqa: E402

warnings.filterwarnings("ignore", message="skipped unreadable image")  # reported below, once, without a code location
# The built-in trainer's objective must be a metric of the task the data turn out to have. Read from
# the config, not a param: it decides nothing in the prepared file, so changing it re-prepares nothing.
objective = sm.config["objective"]["metric"] if sm.config["trainer"]["command"] is None else None
# Without a shared file system the user's file is a declared input: its copy is where the job reads it.
data = {**sm.params.data, "path": sm.input.source} if "source" in sm.input.keys() else sm.params.data
try:
    summary = prepare(data, sm.output.data, folds=sm.params.folds, objective=objective)
except DataError as e:
    print(f"data error: {e}", file=log)
    print(f"\nsnaketune: data error: {e}\n", file=sys.__stderr__)  # for the person at the terminal too
    sys.exit(1)
print(f"task: {summary['task']} ({summary['task_rule']})", file=log)
images = summary.get("images")
if images:  # decoded here, once per study; trials load the array
    print(
        f"decoded {images['decoded_images']} images in {images['decode_seconds']:.2f} s "
        f"into {images['array_mb']:g} MB (uint8, {summary['input_shape']})",
        file=log,
    )
    for name in images["skipped"]:
        print(f"warning: skipped unreadable image {name} (data.skip_unreadable: true)", file=log)
        print(f"snaketune: warning: skipped unreadable image {name}", file=sys.__stderr__)
write_json(sm.output.summary, summary)
print(json.dumps(summary, indent=2), file=log)
