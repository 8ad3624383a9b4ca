"""Shared helpers: run the real snakemake CLI on tiny studies in a temporary folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
BIN = Path(sys.executable).parent


# Tests with side effects on the machine run only when asked for (CI asks for both): the cluster
# test installs and starts SLURM as root, the browser test needs Chromium. `pytest` alone is the
# README's test command: fast and without side effects.
OPT_IN = {
    "cluster": ("--cluster", "SNAKETUNE_REQUIRE_SLURM", "starts a local SLURM cluster (as root it apt-installs slurm-wlm)"),
    "browser": ("--browser", "SNAKETUNE_REQUIRE_CHROMIUM", "renders the report in Chromium"),
}


def pytest_addoption(parser):
    for marker, (option, env, what) in OPT_IN.items():
        parser.addoption(option, action="store_true", help=f"also run the {marker} tests: {what} (or {env}=1)")


def pytest_collection_modifyitems(config, items):
    for marker, (option, env, what) in OPT_IN.items():
        if config.getoption(option) or os.environ.get(env) == "1":
            continue
        skip = pytest.mark.skip(reason=f"opt-in: {what}; run with pytest {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def worker_sockets():
    """The warm workers' sockets (snaketune.worker) of this test session in a folder of their own:
    short (a socket's path holds 108 bytes), and removed afterwards."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="stw-")
    os.environ["SNAKETUNE_WORKER_DIR"] = folder
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def run_spec(out, command=None, *, data, params=None, metric="val_accuracy", direction="maximize", patience=5, **over):
    """A search run's spec (snaketune.specs.RunSpec) for tests that call the runner directly."""
    from snaketune.specs import RunSpec, TrainerSettings

    trainer = TrainerSettings(str(data), command, metric, direction, patience, 0.0, over.pop("family", "mlp"))
    fields = {"trial": "t1", "dir": str(out), "log": str(Path(out) / "train.log"), "stage": "search", "seed": 0}
    return RunSpec(**{**fields, "params": params, "trainer": trainer, **over})


def snakemake_cmd() -> list[str]:
    exe = shutil.which("snakemake", path=str(BIN)) or shutil.which("snakemake")
    if exe is None:
        pytest.skip("snakemake is not installed")
    return [exe]


def tiny_config(**overrides) -> dict:
    """A 4-trial grid on the synthetic data, 2 epochs: seconds, not minutes."""
    cfg = {
        "study": "tiny",
        "data": {"source": "synthetic", "n_samples": 300},
        "search": {"method": "grid", "seed": 0},
        "search_space": {
            "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True, "grid": [0.01, 0.05]},
            "n_layers": [1, 2],
            "hidden_units": 16,
            "batch_size": 32,
            "epochs": 2,
        },
        "early_stopping": {"patience": 0},
        "final": {"repeats": 1},  # one retrain: tiny studies stay quick (tests/test_final.py tests repeats)
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict) and key != "search_space":
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


class Study:
    """A study folder with its own config file; ``run`` invokes the real snakemake CLI."""

    def __init__(self, path: Path, config: dict, name: str = "study.yaml") -> None:
        self.path = path
        self.config_path = path / name
        self.write(config)

    def write(self, config: dict) -> None:
        self.config = config
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def results(self) -> Path:
        return self.path / "results" / self.config.get("study", self.config_path.stem)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        cmd = snakemake_cmd() + [
            "--snakefile", str(SNAKEFILE),
            "--directory", str(self.path),
            "--configfile", str(self.config_path),
            "--cores", "2",
            *args,
        ]  # fmt: skip
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        proc = subprocess.run(cmd, cwd=self.path, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return proc

    def table(self):
        import pandas as pd

        return pd.read_csv(self.results / "trials.tsv", sep="\t")


@pytest.fixture
def study(tmp_path):
    def make(config: dict | None = None, name: str = "study.yaml") -> Study:
        return Study(tmp_path, config if config is not None else tiny_config(), name)

    return make


def job_count(dry_run_output: str, rule: str) -> int:
    """How many jobs of ``rule`` a ``snakemake -n`` run lists in its job stats (0 if none)."""
    for line in dry_run_output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == rule and parts[1].isdigit():
            return int(parts[1])
    return 0


def run_and_kill(s: Study, wait_for, extra=()) -> None:
    """Start snakemake, SIGTERM it once ``wait_for()`` holds, as a user pressing Ctrl-C would."""
    cmd = snakemake_cmd() + [
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(s.path),
        "--configfile",
        str(s.config_path),
        "--cores",
        "2",
        *extra,
    ]
    proc = subprocess.Popen(cmd, cwd=s.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not wait_for() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
