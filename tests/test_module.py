"""snaketune used as a Snakemake module from a host workflow."""

import json
import textwrap

import pytest
import yaml

from conftest import REPO, Study, tiny_config

pytestmark = pytest.mark.workflow


def test_host_workflow_uses_snaketune_as_a_module(tmp_path):
    hpo = tiny_config(study="hosted")
    (tmp_path / "host.yaml").write_text(yaml.safe_dump({"hpo": hpo, "greeting": "hello"}))
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            f"""
            configfile: "host.yaml"


            module snaketune:
                snakefile:
                    "{REPO / "Snakefile"}"
                config:
                    config["hpo"]


            use rule * from snaketune as hpo_*


            rule report_best:
                input:
                    best="results/hosted/best.yaml",
                    test="results/hosted/final/metrics.json",
                output:
                    "host_summary.txt",
                shell:
                    "cat {{input.best}} {{input.test}} > {{output}}"


            rule all:
                default_target: True
                input:
                    "host_summary.txt",
            """
        )
    )
    s = Study.__new__(Study)
    s.path, s.config_path, s.config = tmp_path, tmp_path / "host.yaml", hpo
    # The host's own Snakefile and config file, as a user runs it.
    import subprocess

    from conftest import BIN, snakemake_cmd

    proc = subprocess.run(
        snakemake_cmd() + ["--cores", "2", "--snakefile", str(tmp_path / "Snakefile"), "--directory", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "hpo_train_trial" in proc.stderr  # the module's rules, renamed by the host
    table = s.table()
    assert len(table) == 4 and (table["status"] == "ok").all()  # the host's study, not the default one
    summary = (tmp_path / "host_summary.txt").read_text()
    assert "trial:" in summary and "test_accuracy" in summary
    assert json.loads((tmp_path / "results" / "hosted" / "final" / "metrics.json").read_text())["test_accuracy"] > 0
