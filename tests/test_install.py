"""A plain (non-editable) install of the package validates a config on its own: the schema and
the report captions travel with it, and nothing reaches back into the checkout.

The install runs the very pip: line of envs/snaketune.yaml that puts snaketune into the jobs'
conda environment, on a copy of the checkout's sources (a build inside the checkout would leave
build/ there), with the dependencies of the running environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from test_packaging import PROJECT_ENTRY, conda_pip_entries

PROBE = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import distribution
    from importlib.resources import files

    import snaketune

    out = {"file": snaketune.__file__, "study": snaketune.resolve_config({"study": "x"})["study"]}
    try:
        snaketune.resolve_config({"study": "x", "serach": {}})
    except snaketune.ConfigError as e:
        out["error"] = str(e)
    out["captions"] = sorted(p.name for p in (files("snaketune") / "report").iterdir() if p.name.endswith(".rst"))
    scripts = [ep for ep in distribution("snaketune").entry_points if ep.group == "console_scripts"]
    out["scripts"] = sorted(ep.name for ep in scripts)
    for ep in scripts:
        ep.load()  # the module and function each command names exist
    out["snakemake_imported"] = "snakemake" in sys.modules
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("install")
    source, target = root / "source", root / "site"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    (entry,) = [e for e in conda_pip_entries() if PROJECT_ENTRY.fullmatch(e)]
    # --target cannot take an editable install; the line is otherwise the env file's own.
    (root / "requirements.txt").write_text(entry.removeprefix("-e").strip() + "\n")
    env = {**os.environ, "SNAKETUNE_SOURCE": str(source), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "-r", str(root / "requirements.txt")],
        cwd=root, env=env, check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return root, target


def test_a_plain_install_validates_a_config_without_the_checkout(installed):
    root, target = installed
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert os.path.commonpath([out["file"], str(target)]) == str(target), f"imported {out['file']}, not the install"
    assert out["study"] == "x"
    assert "`serach` is not known" in out["error"] and "did you mean `search`" in out["error"]
    assert out["captions"] == sorted(p.name for p in (REPO / "src" / "snaketune" / "report").glob("*.rst"))
    assert out["scripts"] == ["snaketune-predict", "snaketune-summary", "snaketune-trial"]
    assert not out["snakemake_imported"]
