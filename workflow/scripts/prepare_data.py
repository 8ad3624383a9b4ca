"""Snakemake script: read the data source once and fix the split for every trial."""

import json
import sys

from snaketune.data import prepare
from snaketune.errors import DataError
from snaketune.files import write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log:
    try:
        summary = prepare(sm.params.data, sm.output.data, folds=sm.params.folds)
    except DataError as e:
        print(f"data error: {e}", file=log)
        print(f"\nsnaketune: data error: {e}\n", file=sys.stderr)
        sys.exit(1)
    write_json(sm.output.summary, summary)
    print(json.dumps(summary, indent=2), file=log)
