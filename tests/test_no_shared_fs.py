"""Studies run where jobs share no file system (Kubernetes pods, Google Batch VMs): every file
moves through a storage provider, and each job sees copies of only the files it declares.

No Kubernetes here. The same conditions, made of real parts: Snakemake's cluster-generic executor
submits every job to a stand-in "pod" (a fresh empty folder, nothing in it but the job script;
the environment is this one, as the image's would be), `--shared-fs-usage none` and
`--job-deploy-sources` as the Kubernetes executor sets them, and the `fs` storage provider as the
store (a folder that only Snakemake's storage code reads and writes, like a bucket). A file a job
reads without declaring it is not in its pod; one it writes without declaring it is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, snakemake_cmd, tiny_config

pytestmark = pytest.mark.workflow

POD = """#!/bin/sh
# A stand-in for a pod: the job script runs in a fresh empty folder, in the background.
pod=$(mktemp -d "{pods}/pod.XXXXXX")
cp "$1" "$pod/job.sh"
(cd "$pod" && PATH="{bin}:$PATH" sh job.sh > job.out 2>&1; echo $? > exit) < /dev/null > /dev/null 2>&1 &
echo "$pod"
"""
POD_STATUS = """#!/bin/sh
if [ ! -f "$1/exit" ]; then echo running; elif [ "$(cat "$1/exit")" = 0 ]; then echo success; else echo failed; fi
"""


@pytest.fixture
def pods(tmp_path):
    """Snakemake's arguments for a run of stand-in pods and a storage folder; returns them, the store
    and the pods' folder."""
    folder, store = tmp_path / "pods", tmp_path / "store"
    folder.mkdir()
    scripts = {}
    for name, text in (("submit", POD), ("status", POD_STATUS)):
        scripts[name] = tmp_path / f"pod-{name}.sh"
        scripts[name].write_text(text.format(pods=folder, bin=BIN))
        scripts[name].chmod(0o755)
    args = [
        "--executor", "cluster-generic",
        "--cluster-generic-submit-cmd", str(scripts["submit"]),
        "--cluster-generic-status-cmd", str(scripts["status"]),
        "--jobs", "2",
        "--shared-fs-usage", "none",
        "--job-deploy-sources",
        "--default-storage-provider", "fs",
        "--default-storage-prefix", str(store),
        "--seconds-between-status-checks", "1",
    ]  # fmt: skip
    return args, store, folder


def failed_pods(folder: Path) -> str:
    """The job output of every pod that failed, for an assertion's message."""
    out = []
    for pod in sorted(folder.iterdir()):
        if (pod / "exit").is_file() and (pod / "exit").read_text().strip() != "0":
            out.append(f"--- {pod.name}\n{(pod / 'job.out').read_text()[-3000:]}")
    return "\n".join(out)


def run_in_pods(s, pods, *extra: str, check: bool = True):
    """Run study ``s`` from a copy of the workflow in its folder (as users run it, from their
    checkout: Snakemake deploys the workflow's sources to each pod from the working directory)."""
    args, store, folder = pods
    for part in ("Snakefile", "workflow", "envs", "profiles"):
        if not (s.path / part).exists():
            copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
            copy(REPO / part, s.path / part)
    cmd = snakemake_cmd() + ["--configfile", s.config_path.name, "--cores", "2", *args, *extra]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=s.path, capture_output=True, text=True, timeout=900, env=env)
    if check:
        assert proc.returncode == 0, f"{proc.stderr[-4000:]}\n{failed_pods(folder)}"
    return proc


def test_a_study_runs_with_no_shared_file_system(study, pods):
    """The whole pipeline with every job in a pod of its own: each fold of each trial, the top
    trials re-run with another seed, the winner retrained twice and the retrains combined
    (finalise reads each retrain's files), the test-set figure, the figures that read every run's
    history (learning curves), the summary. Everything lands in the store."""
    _, store, folder = pods
    s = study(tiny_config(cv={"folds": 2}, select={"top_k": 2, "seeds": 1}, final={"repeats": 2}))
    proc = run_in_pods(s, pods)
    results = store / "results" / "tiny"
    assert f"study tiny is done; its files are in {results}/" in proc.stdout + proc.stderr
    rows = (results / "trials.tsv").read_text().splitlines()
    assert len(rows) == 5 and all("\tok\t" in r for r in rows[1:]), rows
    assert len(list(results.glob("select/s*/seed-1/fold-*.json"))) == 4  # 2 top trials x 2 folds
    best = yaml.safe_load((results / "best.yaml").read_text())
    assert "test_accuracy" in json.loads((results / "final" / "metrics.json").read_text())
    assert (results / "final" / "model.pt").stat().st_size > 0
    assert best["trial"] in (results / "summary.txt").read_text()
    # every search run's history was kept (the learning curves read them in another job)
    histories = sorted(results.glob("trials/*/fold-*/history.csv"))
    assert len(histories) == 8 and all(h.stat().st_size > 0 for h in histories)
    # ... and the Optuna journal's per-epoch values
    optuna = pytest.importorskip("optuna")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalStorage(JournalFileBackend(str(results / "optuna.journal")))
    exported = optuna.load_study(study_name="tiny", storage=journal).trials
    assert len(exported) == 4 and all(t.intermediate_values for t in exported)
    for figure in ("learning_curves.png", "optimisation_history.png", "confusion_matrix.png"):
        assert (results / "report" / figure).stat().st_size > 10_000, figure
    # nothing was written to the study's own paths: the jobs ran in pods, the files are in the store
    assert not (s.path / "results").exists()
    assert len(list(folder.iterdir())) >= 8 + 4 + 2 + 1  # folds, re-runs, retrains, prepare_data (at least)
    # a copy of the store (README: aws s3 sync) makes the report as after a local run
    shutil.copytree(store / "results", s.path / "results")
    report = s.path / "report.html"
    done = subprocess.run(
        snakemake_cmd() + ["--configfile", s.config_path.name, "--report", str(report)],
        cwd=s.path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and report.stat().st_size > 100_000, done.stderr[-3000:]


def test_bayesian_rounds_and_a_csv_file_run_with_no_shared_file_system(study, pods, tmp_path):
    """A Bayesian study (each round's proposals are the next trials' input; NSGA-II reads every
    earlier round's file) on the user's own CSV file, which the user puts into the store (data.path is then a path below the storage prefix),
    and which the job that prepares the data declares to get it."""
    rng = __import__("numpy").random.default_rng(0)
    x = rng.normal(size=(200, 3))
    lines = ["a,b,c,label"] + [f"{a:.4f},{b:.4f},{c:.4f},{int(a + b > 0)}" for a, b, c in x]
    pods[1].mkdir()
    (pods[1] / "data.csv").write_text("\n".join(lines) + "\n")  # only in the store
    cfg = tiny_config(
        data={"source": "csv", "path": "data.csv", "label_column": "label"},
        search={"method": "bayes", "sampler": "nsga2", "n_trials": 6, "batch": 2, "n_startup": 2, "seed": 0},
        search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}, "epochs": 2},
        final={"retrain": False},
    )
    s = study(cfg)
    run_in_pods(s, pods)
    results = pods[1] / "results" / "tiny"
    rows = (results / "trials.tsv").read_text().splitlines()
    assert len(rows) == 7 and all("\tok\t" in r for r in rows[1:]), rows
    assert sorted(p.name for p in (results / "rounds").iterdir()) == ["round-0.yaml", "round-1.yaml", "round-2.yaml"]


def test_a_custom_trainer_command_runs_where_the_sources_are(study, pods):
    """trainer.command names its script relative to the checkout: the pod's working directory,
    where Snakemake deployed the sources (with every file git tracks there, the script too); the
    paths it is handed are its copies'."""
    cfg = yaml.safe_load((REPO / "config" / "examples" / "branin.yaml").read_text())
    cfg["search"]["n_trials"] = 3
    s = study(cfg)
    shutil.copytree(REPO / "config" / "examples" / "trainers", s.path / "config" / "examples" / "trainers")
    for git in (["init", "-q"], ["add", "config"]):  # a checkout, as users run from
        subprocess.run(["git", *git], cwd=s.path, check=True, capture_output=True)
    run_in_pods(s, pods)
    rows = (pods[1] / "results" / "branin" / "trials.tsv").read_text().splitlines()
    assert len(rows) == 4 and all("\tok\t" in r for r in rows[1:]), rows


@pytest.mark.parametrize(
    "setting, named",
    [
        ({"search": {"method": "grid", "trials_per_job": 2}}, "search.trials_per_job"),
        ({"search": {"method": "bayes", "n_trials": 4, "parallel": 2}}, "search.parallel"),
        (
            {"search": {"method": "random", "n_trials": 4, "schedule": "successive_halving", "min_epochs": 1, "eta": 2}},
            "search.schedule",
        ),
    ],
)
def test_what_needs_a_shared_file_system_is_refused_before_any_job(study, pods, setting, named):
    s = study(tiny_config(**setting))
    _, store, folder = pods
    proc = run_in_pods(s, pods, "-n", check=False)
    assert proc.returncode == 1
    assert "needs a shared file system" in proc.stderr and named in proc.stderr, proc.stderr[-2000:]
    assert not list(folder.iterdir()) and not store.exists()


def test_the_jobs_see_the_study_s_paths_in_their_copies(tmp_path, monkeypatch):
    """A script job handed copies works in their folder and names them by the study's paths."""
    from snaketune.scriptjob import Files, in_study

    root = tmp_path / ".snakemake" / "storage" / "s3" / "bucket"
    (root / "results" / "s").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    class Sm:
        input = Files(
            [".snakemake/storage/s3/bucket/results/s/trials.json"],
            {"records": ".snakemake/storage/s3/bucket/results/s/trials.json"},
        )
        output = Files(
            [".snakemake/storage/s3/bucket/results/s/best.yaml"], {"best": ".snakemake/storage/s3/bucket/results/s/best.yaml"}
        )
        log = Files([".snakemake/storage/s3/bucket/results/s/logs/x.log"], {})
        params, wildcards, resources = Files(), Files(), Files()
        threads, config, rule = 1, {"study": "s"}, "x"

    job = in_study(Sm())
    assert job.input.records == "results/s/trials.json" and job.output[0] == "results/s/best.yaml"
    assert job.log[0] == "results/s/logs/x.log"
    assert Path(os.getcwd()) == root.resolve()


def test_a_job_finds_its_copies_by_the_study_s_folder_in_their_paths():
    from snaketune.layout import Layout

    layout = Layout("s")
    assert layout.copies_root("results/s/trials.tsv") == ""  # a shared file system: the study's own path
    assert layout.copies_root(".snakemake/storage/s3/bucket/results/s/trials/t1/result.json") == ".snakemake/storage/s3/bucket"
    # a storage prefix that itself names the study's folder: the last one is the study's
    assert layout.copies_root(".snakemake/storage/fs/x/results/s/results/s/best.yaml") == ".snakemake/storage/fs/x/results/s"
    with pytest.raises(ValueError, match="study 's'"):
        layout.copies_root("elsewhere/results/other/best.yaml")


def test_an_empty_history_is_no_history(tmp_path, monkeypatch):
    """Where a trainer wrote no history.csv the runner leaves an empty one (a declared output
    without a shared file system); the learning curves leave it out as they leave out a missing one."""
    from snaketune.layout import Layout

    monkeypatch.chdir(tmp_path)
    layout = Layout("s")
    history = Path(layout.run_file("t1", "history.csv"))
    history.parent.mkdir(parents=True)
    history.touch()
    assert layout.trial_history_files({"trial": "t1"}) == []
    history.write_text("epoch,val_accuracy\n1,0.5\n")
    assert layout.trial_history_files({"trial": "t1"}) == [history]


def test_a_training_job_names_its_files_by_their_copies_and_leaves_the_rest(tmp_path):
    """snaketune-trial --study: the spec's files under the copies' folder; the user's parameter
    values (even one named like a path field) and the log the table shows stay as they were."""
    from conftest import run_spec
    from snaketune.specs import from_json, rooted, to_json

    spec = run_spec("results/s/trials/t1", data="results/s/data/prepared.npz", params={"data": "x", "lr": 0.1})
    spec = from_json(rooted(to_json(spec), "/pod/.snakemake/storage/s3/bucket"))
    assert spec.dir == "/pod/.snakemake/storage/s3/bucket/results/s/trials/t1"
    assert spec.trainer.data == "/pod/.snakemake/storage/s3/bucket/results/s/data/prepared.npz"
    assert spec.params == {"data": "x", "lr": 0.1} and spec.log == "results/s/trials/t1/train.log"
