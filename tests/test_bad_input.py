"""Bad input gets a clear error before any job runs, and nothing is lost.

tests/bad_configs/ holds one malformed study per file; its first line says which fragment the
error message must contain. Each is checked in-process, through what the workflow does at parse
time (workflow/rules/common.smk): Snakemake loads the study file (run from the checkout: merged
over config/config.yaml; elsewhere: alone), then ``snaketune.one_study`` and
``snaketune.resolve_config``. tests/bad_configs/cli/
holds the files Snakemake itself rejects before the workflow sees them; those, and one of the
corpus, also run through the real snakemake CLI.
"""

import json
import sys
from pathlib import Path

import pytest
from snakemake.common.configfile import load_configfile
from snakemake.utils import update_config

import snaketune
from conftest import REPO, Study, tiny_config

CORPUS = Path(__file__).parent / "bad_configs"
BAD = sorted(CORPUS.glob("*.yaml"))
CLI = sorted((CORPUS / "cli").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <fragment>'"
    return first[len("# expect: ") :]


def config_as_the_workflow_sees_it(path: Path, over_default: bool) -> dict:
    """What `snakemake --configfile <path>` hands common.smk: run in the checkout, the Snakefile's
    `configfile: "config/config.yaml"` with the study file merged over it; run in a folder without
    that file, the study file alone."""
    config = load_configfile(str(REPO / "config" / "config.yaml")) if over_default else {}
    update_config(config, load_configfile(str(path)))
    return config


@pytest.mark.parametrize("over_default", [True, False], ids=["in-checkout", "elsewhere"])
@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_malformed_config_is_a_clear_error(path, over_default, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data paths resolve against the run's directory
    config = config_as_the_workflow_sees_it(path, over_default)
    with pytest.raises(snaketune.ConfigError) as e:
        snaketune.resolve_config(snaketune.one_study(config, [str(path)]))
    assert expected(path) in str(e.value)


def run_cli(tmp_path: Path, config_path: Path):
    s = Study.__new__(Study)
    s.path, s.config_path, s.config = tmp_path, config_path, {}
    proc = s.run("-n", check=False, timeout=120)
    return proc, proc.stdout + proc.stderr


@pytest.mark.workflow
@pytest.mark.parametrize("path", [*CLI, CORPUS / "01-unknown-top-key.yaml"], ids=lambda p: p.stem)
def test_malformed_config_file_stops_the_cli_before_any_job(tmp_path, path):
    proc, out = run_cli(tmp_path, path)
    assert proc.returncode != 0
    assert expected(path) in out, out[-2000:]
    assert "Traceback" not in out and 'File "' not in out
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
@pytest.mark.parametrize(
    "content, fragment",
    [
        ("a,b,species\n1,2,x\n3,4,y\n", "no label column 'label'"),
        ("f1,label\n1.0,x\n2.0,x\n3.0,x\n4.0,x\n5.0,x\n", "single class"),
        ("f1,label\n1.0,a\nnan,b\n", "NaN or infinite value(s), the first on line 3, column 'f1'"),
        ("f1,label\n" + "".join(f"{i},a\n" for i in range(30)) + "1,b\n", "class 'b' has 1 example(s)"),
    ],
)
def test_bad_data_is_a_clear_error_naming_the_problem(study, content, fragment):
    s = study(tiny_config(data={"source": "csv", "path": "data.csv"}))
    (s.path / "data.csv").write_text(content)
    proc = s.run(check=False)
    assert proc.returncode != 0
    assert fragment in proc.stderr and "data.csv" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (s.results / "trials").exists()  # no trial ran


HOSTILE = ["../../escape", "a'b\"c", "$(touch pwned)", "x; touch pwned2", "line\nbreak", "`touch pwned3`", "/etc/passwd"]


@pytest.mark.workflow
def test_hostile_parameter_values_stay_inside_the_study(study):
    s = study(
        tiny_config(
            study="hostile",
            trainer={"command": f"{sys.executable} trainer.py {{params}} {{out}}"},
            objective={"metric": "score", "direction": "maximize"},
            search_space={"name": HOSTILE},
            final={"retrain": False},
        )
    )
    (s.path / "trainer.py").write_text(
        "import json, os, sys, yaml\n"
        "p = yaml.safe_load(open(sys.argv[1]))\n"
        "json.dump({'score': len(p['name']), 'echo': p['name']}, open(os.path.join(sys.argv[2], 'metrics.json'), 'w'))\n"
    )
    s.run()
    assert sorted(s.table()["status"]) == ["ok"] * len(HOSTILE)
    echoed = sorted(json.loads(p.read_text())["echo"] for p in (s.results / "trials").glob("*/metrics.json"))
    assert echoed == sorted(HOSTILE)  # every value reached the trainer unchanged
    created = {p.relative_to(s.path).parts[0] for p in s.path.rglob("*")}
    assert created <= {"results", ".snakemake", "trainer.py", "study.yaml"}, created
    assert not list(s.path.rglob("pwned*")) and not Path("/tmp/pwned").exists()
    assert all(p.resolve().is_relative_to(s.results.resolve()) for p in (s.results).rglob("*"))
