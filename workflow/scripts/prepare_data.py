"""Snakemake script: read the data source once and fix the split for every trial."""

import json
import sys
import warnings

from snaketune.data import prepare
from snaketune.errors import DataError
from snaketune.files import write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
warnings.filterwarnings("ignore", message="skipped unreadable image")  # reported below, once, without a code location
with open(sm.log[0], "w") as log:
    try:
        summary = prepare(sm.params.data, sm.output.data, folds=sm.params.folds)
    except DataError as e:
        print(f"data error: {e}", file=log)
        print(f"\nsnaketune: data error: {e}\n", file=sys.stderr)
        sys.exit(1)
    images = summary.get("images")
    if images:  # decoded here, once per study; trials load the array
        print(
            f"decoded {images['decoded_images']} images in {images['decode_seconds']:.2f} s "
            f"into {images['array_mb']:g} MB (uint8, {summary['input_shape']})",
            file=log,
        )
        for name in images["skipped"]:
            print(f"warning: skipped unreadable image {name} (data.skip_unreadable: true)", file=log)
            print(f"snaketune: warning: skipped unreadable image {name}", file=sys.stderr)
    write_json(sm.output.summary, summary)
    print(json.dumps(summary, indent=2), file=log)
