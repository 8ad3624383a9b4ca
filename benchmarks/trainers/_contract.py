"""The trainer contract for a cheap objective: read the trial's parameters, write ``metrics.json``.

Shared by the benchmark trainers in this folder. ``SNAKETUNE_PARAMS`` is a flat YAML mapping,
``SNAKETUNE_OUT`` the trial's folder; the objective is reported as ``loss`` (``test_loss`` in the
final stage). The file is written atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def run(objective: Callable[[Mapping[str, float]], float], names: Sequence[str]) -> None:
    import yaml

    params_path, out = os.environ.get("SNAKETUNE_PARAMS"), os.environ.get("SNAKETUNE_OUT")
    if not params_path or not out:
        sys.exit(f"{sys.argv[0]}: SNAKETUNE_PARAMS and SNAKETUNE_OUT must be set (the trainer contract)")
    with open(params_path) as f:
        params = yaml.safe_load(f) or {}
    missing = [n for n in names if n not in params]
    if missing:
        print(f"[snaketune] trial failed: params must define {', '.join(missing)}", file=sys.stderr)
        sys.exit(2)
    loss = objective(params)
    key = "test_loss" if os.environ.get("SNAKETUNE_STAGE") == "final" else "loss"
    path = Path(out) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({key: loss, **{n: float(params[n]) for n in names}}) + "\n")
    os.replace(tmp, path)
