"""Snakemake script: the study as a TensorBoard log folder (snaketune.export_tensorboard)."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them; without a shared file system the export stops (it reads
# every run's folder, which no job declares).
sm = in_study(snakemake, reads_every_run="snaketune.export_tensorboard")  # noqa: F821 (injected by Snakemake)
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
