"""Snakemake script: the study as MLflow runs (snaketune.export_mlflow), with its resolved config."""

import sys

from snaketune.scriptjob import in_study

# The study's files as the job sees them; without a shared file system the export stops (it reads
# every run's folder, which no job declares).
sm = in_study(snakemake, reads_every_run="snaketune.export_mlflow")  # noqa: F821 (injected by Snakemake)
sys.stderr = log = open(sm.log[0], "w", buffering=1)  # from here on a traceback lands in the job's log

from snaketune.export_data import ExportError, MissingExtra  # noqa: E402
from snaketune.export_mlflow import destination_from_env, export_study, summary_line  # noqa: E402
from snaketune.files import read_json  # noqa: E402
from snaketune.layout import Layout  # noqa: E402

tracking_uri, experiment = destination_from_env()
try:
    done = export_study(
        Layout(sm.params.study),
        read_json(sm.input.records),  # trials.json: the trials of the table, in completion order
        config=sm.params.config,
        tracking_uri=tracking_uri,
        experiment=experiment,
    )
except (ExportError, MissingExtra) as e:
    sys.exit(f"snaketune: {e}")
print(summary_line(done), file=log)
