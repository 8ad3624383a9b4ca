"""Packs: several search runs in one job (``search.trials_per_job``), each with its own folder,
result and status. The built-in trainer runs inside the job's process, so torch is imported once
per pack instead of once per trial.

Snakemake decides whether a pack runs; when it does, every run of it trains. A run that finished
keeps its checkpoint until the whole pack has its record, so a pack killed halfway and rerun
resumes its finished runs at their last epoch (the trainer checks that a checkpoint belongs to
the same parameters, seed and objective) instead of training them again.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from snaketune.files import write_json
from snaketune.gpu import lease_gpu
from snaketune.layout import CHECKPOINT, RESULT
from snaketune.runner import run_trial
from snaketune.specs import PackSpec
from snaketune.supervise import output_to


def run_pack(spec: PackSpec, *, device: str = "auto", **kw: Any) -> dict[str, Any]:
    """Run every run of the pack in turn; write the pack's record; return it."""
    summary, finished = [], []
    # One GPU lease for the whole pack: CUDA fixes a process's devices when it first initialises,
    # so every trial of the pack must run on the device the first one got.
    leasing = lease_gpu(f"pack-{spec.pack}") if device != "cpu" else contextlib.nullcontext(None)
    with leasing as gpu:
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        for run in spec.runs:
            with output_to(Path(run.log)):
                result = run_trial(replace(run, keep_checkpoint=True), in_process=True, lease=False, device=device, **kw)
            print(f"[snaketune] trial {run.trial}: {result['status']} ({result['seconds']:.1f} s)", flush=True)
            summary.append({"trial": run.trial, "status": result["status"], "result": str(Path(run.dir) / RESULT)})
            if result["status"] == "ok" and not run.keep_checkpoint:
                finished.append(Path(run.dir) / CHECKPOINT)
    record = {"pack": spec.pack, "trials": summary}
    write_json(spec.file, record)
    for checkpoint in finished:  # the pack is complete: its runs need no checkpoints
        checkpoint.unlink(missing_ok=True)
    return record
