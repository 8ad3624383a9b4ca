"""Workflow scripts in the run's warm worker (snaketune.scriptjob): a script that hands itself over
runs in a child of the worker, sees what Snakemake gave it, fails as it would on its own, runs on
its own when there is no worker, and leaves nothing running when its job is killed.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_orphans import alive, forked, gone_within, wait_for, workers_of
from test_worker import owner  # noqa: F401 (a fixture)

from snaketune import worker
from snaketune.scriptjob import Files, ScriptJob, hand_over

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="finding processes reads /proc")
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

SNAKEFILE = """
rule step:
    input: data="in.txt", results=["r1.txt", "r2.txt"]
    output: out="out.json"
    params: search={"seed": 3, "nested": [1, (2, 3)]}, n=config.get("code", 5)
    log: "step.log"
    script: "step.py"
"""

STEP = """
import json, os, sys, time
from snaketune.scriptjob import hand_over

sm = hand_over(snakemake, __file__)
if sm.params.n == 9:
    time.sleep(600)
json.dump({
    "ppid": os.getppid(), "warm": "optuna" in sys.modules, "file": __file__,
    "results": list(sm.input.results), "data": sm.input.data, "first": sm.input[0], "named": sm.input["data"],
    "search": sm.params.search, "n": sm.params.n, "has_n": "n" in sm.params.keys(), "log": sm.log[0],
    "config": sm.config, "threads": sm.threads, "rule": sm.rule,
}, open(sm.output.out, "w"))
if sm.params.n == 7:
    sys.exit(3)
"""


@pytest.fixture
def workflow(tmp_path):
    for name in ("in.txt", "r1.txt", "r2.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "step.py").write_text(STEP)
    return tmp_path


def command(work: Path, *args: str) -> list[str]:
    return [SNAKEMAKE, "--cores", "1", "--directory", str(work), "--snakefile", str(work / "Snakefile"), *args]


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(work, *args), capture_output=True, text=True, cwd=work)


def test_a_script_runs_in_a_child_of_the_worker_and_sees_what_snakemake_gave_it(workflow, owner):  # noqa: F811
    done = snakemake(workflow)
    assert done.returncode == 0, done.stderr
    seen = json.loads((workflow / "out.json").read_text())
    assert seen["ppid"] in workers_of(owner), "forked by the run's worker"
    assert seen["warm"], "with the worker's imports"
    assert seen["file"] == str((workflow / "step.py").resolve())
    assert seen["results"] == ["r1.txt", "r2.txt"] and seen["data"] == seen["first"] == seen["named"] == "in.txt"
    assert seen["search"] == {"seed": 3, "nested": [1, [2, 3]]} and seen["n"] == 5 and seen["has_n"]
    assert seen["log"] == "step.log" and seen["threads"] == 1 and seen["rule"] == "step" and seen["config"] == {}
    # its failure is the job's failure, with its exit status
    failed = snakemake(workflow, "--forceall", "--config", "code=7")
    assert failed.returncode != 0 and "exit status 3" in failed.stderr + failed.stdout


def test_without_a_worker_the_script_runs_in_its_own_process(workflow, monkeypatch):
    monkeypatch.setenv(worker.ENV_SWITCH, "0")
    monkeypatch.setenv(worker.ENV_OWNER, worker.owner_token())
    done = snakemake(workflow)
    assert done.returncode == 0, done.stderr
    seen = json.loads((workflow / "out.json").read_text())
    assert not seen["warm"] and seen["ppid"] not in workers_of(worker.owner_token())
    assert seen["search"] == {"seed": 3, "nested": [1, [2, 3]]} and seen["results"] == ["r1.txt", "r2.txt"]
    assert workers_of(worker.owner_token()) == [], "none was started"


def test_killing_the_job_leaves_no_script_running(workflow, owner):  # noqa: F811
    run = subprocess.Popen(
        command(workflow, "--config", "code=9"),
        cwd=workflow,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        children = wait_for(lambda: forked(owner), 120, "the script's child")
        os.killpg(run.pid, signal.SIGKILL)  # Snakemake and its job, at once
        run.wait()
        assert gone_within(children, 20) == [], "the worker killed the orphaned script"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert all(not alive(p) for p in children)


def test_the_copy_is_plain_data_that_unpickles_without_snakemake():
    try:
        from snakemake.iocontainers import Namedlist
    except ImportError:  # Snakemake before its io containers moved
        from snakemake.io import Namedlist

    class Sm:  # what Snakemake's object offers a script
        input = Namedlist(fromdict={"data": "in.txt"})
        output = Namedlist(fromdict={"out": "o"})
        log = Namedlist(["l"])
        params = Namedlist(fromdict={"search": {"a": (1, 2)}})
        wildcards = Namedlist(fromdict={"round": "3"})
        resources = Namedlist(fromdict={"_cores": 1})
        threads, config, rule = 2, {"study": "s"}, "propose"

    job = ScriptJob(Sm())
    assert job.wildcards.round == "3" and job.params.search == {"a": (1, 2)} and job.log[0] == "l"
    assert isinstance(job.input, Files) and not hasattr(job.input, "nothing")
    assert hand_over(job, "anything.py") is job, "the worker's child hands over nothing"
    code = "import pickle, sys; job = pickle.load(sys.stdin.buffer); print(job.input.data, 'snakemake' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(job), capture_output=True, check=True)
    assert out.stdout.decode().split() == ["in.txt", "False"]
