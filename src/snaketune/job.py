"""``snaketune-trial --spec '<json>'``: what every training job of the workflow runs.

The spec (:mod:`snaketune.specs`) says which kind of job it is: one run of the trainer
(:mod:`snaketune.runner`), a pack of runs (:mod:`snaketune.packs`), a rung slot of a
multi-fidelity schedule (:mod:`snaketune.rungs`), a top trial's re-run with an extra seed
(:mod:`snaketune.reeval`) or the retrain of a Pareto front member (:mod:`snaketune.front`). Exit status 0: the job's result is recorded (a
failed search trial is a result too); 1: the job must be rerun (stopped, killed by a SIGKILL
snaketune did not send, no GPU slot), or it must not run now (another live run writes its folder),
or the final retrain failed.

Where the run has a warm worker (:mod:`snaketune.worker`: local runs, on by default) and the job's
trainer is snaketune's own (not a ``trainer.command``), the job's process imports almost nothing:
it hands its whole work to the worker, which forks a child that has imported all of it (and
torch), and waits for that child, passing its stop signals on (:func:`snaketune.worker.delegate`).
The child does what this process would have done, its trainer forked by the worker in turn.

A job never outlives the process that started it: on Linux the kernel sends it SIGTERM when its
parent dies (Snakemake, or the shell Snakemake started it with), and it stops its trainer as on any
SIGTERM. Its trainer dies with it in any case (:mod:`snaketune.supervise`).

SIGTERM or SIGINT (Snakemake stopping, Ctrl-C) stops the trainer with the same signal, and the job
fails without a record, naming the signal. One that comes after the trainer has ended is ignored:
what is left is writing the record, and a job that has written it must succeed (Snakemake deletes
a failed job's outputs). A pack's job stops at any point: its rerun resumes each of its runs from
the checkpoint the pack keeps.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    """``snaketune-trial``: the job in the run's warm worker where it may (:func:`forkable`), else here."""
    argv = sys.argv[1:] if argv is None else argv
    if forkable(argv):
        from snaketune import worker
        from snaketune.supervise import die_with_parent

        owner = worker.active_owner()
        if owner is not None:
            die_with_parent(signal.SIGTERM)
            try:
                return worker.delegate(__name__, argv, os.environ, owner=owner)
            except worker.WorkerError as e:
                print(f"[snaketune] no warm worker ({e}): this job runs in its own process", file=sys.stderr, flush=True)
    return run_job(argv)


def forkable(argv: list[str]) -> bool:
    """Whether this job's work may run in a warm worker: a spec (``--spec``) that trains with
    snaketune's own trainer, on a shared file system (no ``--study``). A spec this cannot read is
    left to :func:`run_job`, which says what is wrong with it."""
    if any(a == "--study" or a.startswith("--study=") for a in argv):
        return False
    text = None  # the last --spec, as argparse takes it (run_job's parser allows no abbreviations)
    for i, a in enumerate(argv):
        if a.startswith("--spec="):
            text = a.split("=", 1)[1]
        elif a == "--spec" and i + 1 < len(argv):
            text = argv[i + 1]
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read()
        data = json.loads(text)
        trainer = data["trainer"] if "trainer" in data else data["runs"][0]["trainer"]
        return trainer["command"] is None
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, OSError):
        return False


def run_job(argv: list[str] | None = None) -> int:
    """The job's work, in this process (its exit status)."""
    import argparse
    from pathlib import Path

    from snaketune.gpu import GpuLeaseError
    from snaketune.layout import Layout
    from snaketune.runner import Preempted, leave_declared_files, run_trial
    from snaketune.specs import FrontSpec, PackSpec, ReevalSpec, SlotSpec, from_json, rooted
    from snaketune.supervise import FolderBusy, Leftover, die_with_parent, finish_once_trained

    ap = argparse.ArgumentParser(
        prog="snaketune-trial",
        description="Run one snaketune training job (used by the workflow's training rules).",
        allow_abbrev=False,  # forkable() reads --spec and --study as written
    )
    ap.add_argument("--spec", required=True, help="the job's spec as JSON (snaketune.specs), or @file holding it")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the trainer")
    ap.add_argument("--timeout", type=float, default=0, help="seconds before a trial is killed (0 = no limit)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument(
        "--study",
        help="without a shared file system: the study's name; the spec's files are then the job's copies of the "
        "study's files, found from --job-log",
    )
    ap.add_argument("--job-log", help="with --study: the job's log file as Snakemake named it")
    args = ap.parse_args(argv)
    if args.study and not args.job_log:
        ap.error("--study needs --job-log (the job's log file as Snakemake named it)")
    die_with_parent(signal.SIGTERM)
    text = Path(args.spec[1:]).read_text(encoding="utf-8") if args.spec.startswith("@") else args.spec
    copies = bool(args.study)  # the workflow passes --study where jobs share no file system
    if copies:
        text = rooted(text, os.path.abspath(Layout(args.study).copies_root(args.job_log) or "."))
    spec = from_json(text)
    if not isinstance(spec, PackSpec):
        finish_once_trained()
    kw = {"threads": args.threads, "timeout": args.timeout or None, "device": args.device}
    try:
        # Packs, rung slots and re-evaluations are imported only by their jobs: a plain trial's runner stays lean.
        if isinstance(spec, PackSpec):
            from snaketune.packs import run_pack

            run_pack(spec, **kw)
            return 0
        if isinstance(spec, SlotSpec):
            from snaketune.rungs import run_slot

            run_slot(spec, **kw)
            return 0
        if isinstance(spec, ReevalSpec):
            from snaketune.reeval import run_reeval

            run_reeval(spec, **kw)
            return 0
        if isinstance(spec, FrontSpec):
            from snaketune.front import run_front

            result = run_front(spec, **kw)
            if result["status"] == "failed":
                print(f"[snaketune] the retrain of front member {result['trial']} failed: {result['reason']}", file=sys.stderr)
            return 0
        result = run_trial(spec, **kw)
        if copies:
            leave_declared_files(spec)
    except (Preempted, GpuLeaseError, FolderBusy, Leftover) as e:
        print(f"[snaketune] {e}", file=sys.stderr, flush=True)
        return 1
    if result["status"] == "failed" and spec.stage == "final":
        print(f"[snaketune] the final retrain failed: {result['reason']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # the worker's child of a job that main() handed over
    sys.exit(run_job(sys.argv[1:]))
