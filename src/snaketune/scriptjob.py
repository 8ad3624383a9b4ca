"""The workflow's Python scripts in the run's warm worker: a proposal without ``import optuna``.

A Snakemake ``script:`` job is a new interpreter that imports what its step needs: Optuna for a
Bayesian proposal, torch for the final model's evaluation. Where a run has a warm worker
(:mod:`snaketune.worker`: local runs, on by default), a script whose first lines are ::

    from snaketune.scriptjob import hand_over

    sm = hand_over(snakemake, __file__)  # noqa: F821

hands the rest of itself to the worker instead: the worker forks a child that already holds those
modules and runs the same script file there, with a plain copy of what it reads of Snakemake's
``snakemake`` object (:class:`ScriptJob`: input, output, params, wildcards, log, threads,
resources, config, rule). The job's process waits for the child and exits with its status
(:func:`snaketune.worker.delegate`: stop signals passed on, the child's process group killed if
the job dies), as a trial's job does. Without a worker (a
cluster job, ``SNAKETUNE_WORKER=0``, ``trainer.warm_worker: false``) or when the worker cannot take
it, ``hand_over`` returns ``snakemake`` and the script runs in its own process, as it always did.

Only scripts whose imports are heavy hand themselves over (a bookkeeping script that imports
PyYAML only would wait longer for the worker than for its own imports). Snakemake's
``benchmark.tsv`` follows the job's process: its wall time covers the step, its CPU and memory
columns no longer do.

This module imports neither Snakemake nor anything heavy.
"""

from __future__ import annotations

import base64
import os
import pickle
import runpy
import sys
from collections.abc import Iterable, Mapping
from typing import Any


class Files(list):
    """One of Snakemake's named lists (input, output, log, params, wildcards, resources) as plain
    data: its items in order, and its named entries as attributes, ``keys()``, ``items()``,
    ``get()`` and ``name in files.keys()``."""

    def __init__(self, items: Iterable[Any] = (), names: Mapping[str, Any] | None = None) -> None:
        super().__init__(items)
        self._names = dict(names or {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        return self._names[key] if isinstance(key, str) else super().__getitem__(key)

    def keys(self):
        return self._names.keys()

    def items(self):
        return self._names.items()

    def get(self, name: str, default: Any = None) -> Any:
        return self._names.get(name, default)

    def __reduce__(self):
        return (Files, (list(self), self._names))


def _plain(value: Any) -> Any:
    """A value of Snakemake's named lists as plain Python: its path strings as ``str`` (Snakemake's
    own string types would need Snakemake to unpickle), its nested named lists as lists."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _files(named_list: Any) -> Files:
    return Files([_plain(v) for v in named_list], {str(k): _plain(v) for k, v in named_list.items()})


def _rebased(value: Any, root: str) -> Any:
    """``value`` (a path string, or lists of them) with ``root/`` taken off the paths below it."""
    if isinstance(value, str):
        return os.path.relpath(value, root) if os.path.normpath(value).startswith(root + os.sep) else value
    if isinstance(value, (list, tuple)):
        return type(value)(_rebased(v, root) for v in value)
    return value


class ScriptJob:
    """What a workflow script reads of Snakemake's ``snakemake`` object, as plain data."""

    def __init__(self, sm: Any) -> None:
        self.input, self.output, self.log = _files(sm.input), _files(sm.output), _files(sm.log)
        self.params, self.wildcards, self.resources = _files(sm.params), _files(sm.wildcards), _files(sm.resources)
        self.threads = int(sm.threads)
        self.config = _plain(dict(sm.config))
        self.rule = str(sm.rule)

    def rebase(self, root: str) -> None:
        """Name the job's files (input, output, log) relative to ``root``, the folder of its copies."""
        for name in ("input", "output", "log"):
            files = getattr(self, name)
            setattr(self, name, Files(_rebased(list(files), root), {k: _rebased(v, root) for k, v in files.items()}))


def in_study(sm: Any, *, reads_every_run: str | None = None) -> Any:
    """At the top of a workflow script: the job as it sees the study's files. Where Snakemake hands it
    the study's own paths (a shared file system) that is ``sm``. Without a shared file system it
    hands the job local copies of its files (:meth:`snaketune.layout.Layout.copies_root`): the
    script then works in the folder of those copies and gets a :class:`ScriptJob` whose input,
    output and log are named by the study's paths, as everything it reads through a Layout is.
    ``reads_every_run`` (a module to run on a copy of the study instead): the script reads every
    run's folder, which no job declares, so without a shared file system it stops and says so."""
    if isinstance(sm, ScriptJob):
        return sm
    from snaketune.layout import Layout

    study = sm.config.get("study")
    seen = [*sm.output, *sm.log] or [*sm.input]
    try:
        root = Layout(str(study)).copies_root(str(seen[0])) if study and seen else ""
    except ValueError:  # a file outside the study (a workflow that is not snaketune's)
        root = ""
    if not root:
        return sm
    if reads_every_run:
        sys.exit(
            f"snaketune: {sm.rule} reads every trial's files, which stay in the storage when jobs share no file "
            f"system: copy the study from the storage and run python -m {reads_every_run} on the copy "
            "(README, Run on Kubernetes)"
        )
    job = ScriptJob(sm)
    job.rebase(root)
    os.chdir(root)
    return job


def hand_over(sm: Any, script: str) -> Any:
    """At the top of a workflow script: run ``script`` (the script's own ``__file__``) in the run's
    warm worker and exit with its status; return the job (:func:`in_study`) when there is no worker
    to run it (the script then goes on in this process) or when this already is the worker's
    child."""
    if isinstance(sm, ScriptJob):
        return sm
    job = in_study(sm)
    if job is not sm:  # copies of the study's files (no shared file system): the script runs here, among them
        return job
    from snaketune import worker

    owner = worker.active_owner()
    if owner is None:
        return sm
    payload = base64.b64encode(pickle.dumps(ScriptJob(sm), protocol=pickle.HIGHEST_PROTOCOL)).decode()
    env = {k: v for k, v in os.environ.items() if k != worker.ENV_OWNER}  # the child hands over nothing
    try:
        code = worker.delegate(__name__, [os.path.realpath(script), payload], env, owner=owner)
    except worker.WorkerError as e:
        print(f"[snaketune] no warm worker ({e}): {sm.rule} runs in its own process", file=sys.stderr, flush=True)
        return sm
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """In the worker's child: ``python -m snaketune.scriptjob <script> <job>`` runs the script with
    the job as its ``snakemake``."""
    script, payload = sys.argv[1:] if argv is None else argv
    job = pickle.loads(base64.b64decode(payload))
    sys.argv = [script]
    runpy.run_path(script, init_globals={"snakemake": job}, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
