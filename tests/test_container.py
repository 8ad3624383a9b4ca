"""--sdm apptainer runs every job in the image the Snakefile's `container:` names, and
SNAKETUNE_CONTAINER points it at a local .sif instead of pulling from a registry.

No apptainer here (Debian has no package for it): a stand-in `apptainer` on PATH answers
`--version`, notes each `apptainer exec` Snakemake makes and runs its command on the host. That
checks what Snakemake asks of apptainer (which image, which arguments), not the image itself.
"""

from __future__ import annotations

import os
import shlex

import pytest

from conftest import tiny_config

pytestmark = pytest.mark.workflow

FAKE_APPTAINER = """#!/bin/sh
# A stand-in for apptainer: `apptainer exec [options] IMAGE SHELL -c COMMAND` runs COMMAND here.
if [ "$1" = "--version" ]; then echo "apptainer version 1.3.6"; exit 0; fi
for arg in "$@"; do printf '%s\\0' "$arg"; done > "$(mktemp "{calls}/call.XXXXXX")"
while [ $# -gt 4 ]; do shift; done
exec "$2" -c "$4"
"""


@pytest.fixture
def apptainer(tmp_path, monkeypatch):
    """A stand-in apptainer first on PATH; returns the calls it has seen, each as its arguments."""
    folder = tmp_path / "bin"
    folder.mkdir()
    seen = tmp_path / "apptainer-calls"
    seen.mkdir()
    exe = folder / "apptainer"
    exe.write_text(FAKE_APPTAINER.format(calls=seen))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def calls() -> list[list[str]]:
        return [call.read_text().split("\0")[:-1] for call in sorted(seen.iterdir())]

    return calls


def test_the_default_image_is_pulled_from_a_registry(study, apptainer, monkeypatch):
    monkeypatch.delenv("SNAKETUNE_CONTAINER", raising=False)
    out = study(tiny_config()).run("-n", "--sdm", "apptainer")
    assert "Singularity image docker://snaketune/snaketune:0.1.0 will be pulled." in out.stdout + out.stderr


def test_a_local_sif_runs_every_job_without_a_registry(study, apptainer, tmp_path, monkeypatch):
    image = tmp_path / "images" / "snaketune.sif"
    image.parent.mkdir()
    image.write_bytes(b"not a real image: the stand-in apptainer never opens it")
    monkeypatch.setenv("SNAKETUNE_CONTAINER", str(image))
    s = study(tiny_config())

    dry = s.run("-n", "--sdm", "apptainer")
    assert "will be pulled" not in dry.stdout + dry.stderr  # a local image is used where it is

    s.run("--sdm", "apptainer", "--apptainer-args=--nv")
    assert (s.results / "best.yaml").is_file() and (s.results / "final" / "metrics.json").is_file()
    calls = apptainer()
    # Every job but `all` (which runs nothing): prepare_data, 4 trials, collect, select_best,
    # retrain_best, summarise, the figures and the journal.
    assert len(calls) >= 10, calls
    for call in calls:
        image_at = len(call) - 4  # ... IMAGE SHELL -c COMMAND
        assert call[0] == "exec" and call[image_at] == str(image) and call[-2] == "-c", shlex.join(call)
        assert "--nv" in call[:image_at], shlex.join(call)  # GPUs inside the container
    assert sum("snaketune-trial" in call[-1] for call in calls) == 4 + 1  # the trials and the final retrain
