"""Snakemake script: the study as a TensorBoard log folder (snaketune.export_tensorboard)."""

import sys

from snaketune.scriptjob import ScriptJob, in_study

# The study's files as the job sees them (copies of them without a shared file system).
sm = in_study(snakemake)  # noqa: F821 (injected by Snakemake)
if isinstance(sm, ScriptJob):  # copies: the export reads every run's folder, which no job declares
    sys.exit(
        "snaketune: export_tensorboard reads every trial's files, which stay in the storage when jobs share no file "
        "system: copy the study from the storage and run python -m snaketune.export_tensorboard on the copy (README, Run on Kubernetes)"
    )
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.export_data import ExportError, MissingExtra  # noqa: E402
from snaketune.export_tensorboard import export_study, summary_line  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.layout import Layout  # noqa: E402

try:
    done = export_study(Layout(sm.params.study), read_json(sm.input.records), logdir=sm.output.logdir)
except (ExportError, MissingExtra) as e:
    sys.exit(f"snaketune: {e}")
print(summary_line(done), file=log)
