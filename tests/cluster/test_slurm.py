"""A study on a real (single-node) SLURM cluster through the real CLI and profiles/slurm.

The module fixture uses a cluster that is already up, or brings one up with
tests/cluster/slurm-up.sh (root and apt-get needed) and stops it again with slurm-down.sh.
Without SLURM the test is skipped, unless SNAKETUNE_REQUIRE_SLURM=1 (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import BIN, REPO, SNAKEFILE, snakemake_cmd, tiny_config

pytestmark = pytest.mark.cluster

HERE = Path(__file__).resolve().parent
REQUIRE = os.environ.get("SNAKETUNE_REQUIRE_SLURM") == "1"
UP_TIMEOUT = 420  # apt-get included
RUN_TIMEOUT = 240
# The plugin's line for each job it submits, e.g.
# "Job 5 has been submitted with SLURM jobid 12 (log: <logdir>/rule_train_trial/r0002/12.log)."
SUBMITTED = re.compile(
    r"submitted with SLURM jobid (?P<id>\d+) \(log: \S*/rule_(?P<rule>[a-z_]+)/(?:(?P<wildcards>[^/\s]+)/)?\d+\.log\)"
)


def unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"SLURM is required (SNAKETUNE_REQUIRE_SLURM=1) but {reason}", pytrace=False)
    pytest.skip(f"no SLURM cluster: {reason}")


def sh(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


def cluster_ready() -> bool:
    """A controller answers and some node is usable."""
    if not shutil.which("sinfo"):
        return False
    try:
        proc = sh("sinfo", "-h", "-o", "%t", timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = proc.stdout.split()
    return proc.returncode == 0 and any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states)


@pytest.fixture(scope="module")
def slurm_cluster():
    """Yield once a cluster with GPUs is up; stop it afterwards if this fixture started it."""
    started = False
    if not cluster_ready():
        if os.name != "posix" or os.geteuid() != 0:
            unavailable("none is running, and starting one needs root")
        if not shutil.which("apt-get") and not shutil.which("slurmctld") and not Path("/usr/sbin/slurmctld").exists():
            unavailable("none is running, and there is neither SLURM nor apt-get to install it")
        t0 = time.monotonic()
        started = True  # slurm-up.sh may have started some daemons even if it fails
        try:
            up = subprocess.run(["bash", str(HERE / "slurm-up.sh")], capture_output=True, text=True, timeout=UP_TIMEOUT)
        except subprocess.TimeoutExpired:
            subprocess.run(["bash", str(HERE / "slurm-down.sh")], capture_output=True, timeout=120)
            unavailable(f"tests/cluster/slurm-up.sh did not finish within {UP_TIMEOUT} s")
        if up.returncode != 0:
            subprocess.run(["bash", str(HERE / "slurm-down.sh")], capture_output=True, timeout=120)
            unavailable(f"tests/cluster/slurm-up.sh failed ({up.returncode}):\n{up.stdout[-2000:]}\n{up.stderr[-3000:]}")
        print(f"\nslurm-up.sh: {time.monotonic() - t0:.1f} s\n{up.stdout}")
    gres = sh("sinfo", "-h", "-o", "%G").stdout
    if "gpu" not in gres:
        if started:
            subprocess.run(["bash", str(HERE / "slurm-down.sh")], capture_output=True, timeout=120)
        unavailable(f"the running cluster has no GPUs (sinfo %G: {gres.strip()!r}); stop it or use tests/cluster/slurm-up.sh")
    try:
        yield
    finally:
        if started:
            down = subprocess.run(["bash", str(HERE / "slurm-down.sh")], capture_output=True, text=True, timeout=180)
            print(down.stdout, down.stderr)


def run_snakemake(cmd: list[str], cwd: Path, env: dict) -> tuple[int, str]:
    """Run snakemake; on timeout interrupt it (it then cancels its SLURM jobs) before failing."""
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            pytest.fail(f"snakemake did not finish within {RUN_TIMEOUT} s:\n{out[-6000:]}")
    return proc.returncode, out


def sacct_jobs(run_id: str) -> list[dict]:
    """The allocations of this run's jobs (the plugin names every job after the run id)."""
    fields = ["JobID", "JobName", "Comment", "State", "AllocTRES"]
    proc = sh("sacct", "-X", "-n", "-P", "--name", run_id, "-S", "now-1days", "-o", ",".join(fields))
    assert proc.returncode == 0, proc.stderr
    return [dict(zip(fields, line.split("|"))) for line in proc.stdout.splitlines() if line.strip()]


def test_random_search_on_slurm(slurm_cluster, tmp_path):
    cfg = tiny_config(search={"method": "random", "n_trials": 4, "seed": 0})
    cfg["search_space"] = {
        "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
        "n_layers": [1, 2],
        "hidden_units": 16,
        "batch_size": 32,
        "epochs": 2,
    }
    config_path = tmp_path / "study.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = snakemake_cmd() + [
        "--profile", str(REPO / "profiles" / "slurm"),
        "--snakefile", str(SNAKEFILE),
        "--directory", str(tmp_path),
        "--configfile", str(config_path),
        "--slurm-init-seconds-before-status-checks", "5",
        "--slurm-logdir", str(tmp_path / "slurm_logs"),
        "--slurm-keep-successful-logs",
    ]  # fmt: skip
    # The jobs inherit this environment (sbatch --export=ALL): `python` must be the venv's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    t0 = time.monotonic()
    rc, out = run_snakemake(cmd, tmp_path, env)
    seconds = time.monotonic() - t0
    assert rc == 0, f"snakemake failed ({rc}) after {seconds:.0f} s:\n{out[-8000:]}"
    print(f"snakemake on SLURM: {seconds:.1f} s")

    results = tmp_path / "results" / "tiny"
    table = pd.read_csv(results / "trials.tsv", sep="\t")
    assert len(table) == 4 and set(table["status"]) == {"ok"}, table.to_string()
    assert (results / "best.yaml").is_file()
    metrics = json.loads((results / "final" / "metrics.json").read_text())
    assert "test_accuracy" in metrics

    # Every training job ran under SLURM with a GPU of its own.
    trials = set(table["trial"])
    for trial in trials:
        result = json.loads((results / "trials" / trial / "result.json").read_text())
        assert result["status"] == "ok"
        assert result["cuda_visible_devices"], f"{trial}: no CUDA_VISIBLE_DEVICES in the SLURM job: {result}"
    final = json.loads((results / "final" / "result.json").read_text())
    assert final["cuda_visible_devices"], final

    # sacct: every job of this run (the plugin names them all after the run id), matched to
    # rule and trial through the submission lines (log: <slurm-logdir>/rule_<rule>/<trial>/<id>.log).
    match = re.search(r"SLURM run ID: (\S+)", out)
    assert match, f"no 'SLURM run ID' in the output:\n{out[-4000:]}"
    submitted = {m["id"]: (m["rule"], m["wildcards"] or "") for m in SUBMITTED.finditer(out)}
    train = {wc: jobid for jobid, (rule, wc) in submitted.items() if rule == "train_trial"}
    retrain = [jobid for jobid, (rule, _) in submitted.items() if rule == "retrain_best"]
    assert set(train) == trials and len(retrain) == 1, f"submitted: {submitted}"
    jobs: dict[str, dict] = {}
    for _ in range(20):  # slurmdbd may record the last state a moment after the plugin saw it
        jobs = {j["JobID"]: j for j in sacct_jobs(match.group(1))}
        if set(submitted) <= set(jobs) and all(j["State"] == "COMPLETED" for j in jobs.values()):
            break
        time.sleep(1)
    assert set(jobs) == set(submitted), f"sacct lists {sorted(jobs)}, submitted {sorted(submitted)}"
    for jobid in [*train.values(), *retrain]:
        job = jobs[jobid]
        assert job["State"] == "COMPLETED", job
        assert "gres/gpu" in job["AllocTRES"], f"no GPU allocated: {job}"
    # The plugin's comment is "rule_<rule>[_wildcards_<trial>]" (stored where the cluster has
    # AccountingStoreFlags=job_comment, as slurm-up.sh sets).
    if any(j["Comment"] for j in jobs.values()):
        for trial, jobid in train.items():
            assert jobs[jobid]["Comment"] == f"rule_train_trial_wildcards_{trial}", jobs[jobid]
