"""pyproject.toml, envs/*.yaml and the Dockerfile name the same software with compatible versions."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import REPO

# conda-forge names of the PyPI packages where they differ
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base"}


def pyproject_requirements() -> dict[str, SpecifierSet]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    return {r.name.lower(): r.specifier for r in reqs}


def conda_requirements() -> dict[str, SpecifierSet]:
    env = yaml.safe_load((REPO / "envs" / "snaketune.yaml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip: section
            for r in dep["pip"]:
                req = Requirement(r.replace(" ", ""))
                out[req.name.lower()] = req.specifier
            continue
        name, _, spec = dep.partition(" ")
        out[name.lower()] = SpecifierSet(spec.replace(" ", ""))
    return out


def test_conda_env_lists_every_dependency_with_the_same_range():
    py, conda = pyproject_requirements(), conda_requirements()
    conda_to_pypi = {v: k for k, v in CONDA_NAMES.items()}
    conda = {conda_to_pypi.get(k, k): v for k, v in conda.items() if k not in ("python", "pip")}
    missing = sorted(set(py) - set(conda))
    extra = sorted(set(conda) - set(py))
    assert not missing, f"envs/snaketune.yaml lacks {missing}"
    assert not extra, f"envs/snaketune.yaml has {extra} that pyproject.toml does not"
    for name, spec in py.items():
        assert str(spec) == str(conda[name]), f"{name}: pyproject {spec} vs conda {conda[name]}"


def test_the_report_works_without_the_test_extra():
    # `snakemake --report` refuses to run without pygments; pytest pulls it into test installs,
    # so only the README's plain install would lack it (it did once).
    assert "pygments" in pyproject_requirements()


def test_python_versions_agree():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    requires = SpecifierSet(data["project"]["requires-python"])
    env = yaml.safe_load((REPO / "envs" / "snaketune.yaml").read_text())
    conda_python = SpecifierSet(
        next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python ")).split(" ", 1)[1].replace(" ", "")
    )
    docker_python = re.search(r"^FROM python:(\d+\.\d+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    for version in (docker_python, "3.11"):
        assert version in requires and version in conda_python


def test_dockerfile_installs_the_project_and_a_compatible_torch():
    text = (REPO / "Dockerfile").read_text()
    torch_default = re.search(r'^ARG TORCH_SPEC="([^"]+)"', text, re.M).group(1)
    assert Requirement(torch_default).specifier == pyproject_requirements()["torch"]
    assert re.search(r"pip install \.(\s|$)", text), "the image must install the project (and so pyproject's dependencies)"
    for path in ("pyproject.toml", "workflow", "Snakefile", "config", "profiles", "envs"):
        assert re.search(rf"^COPY {path}\b", text, re.M), f"the image lacks {path}"


def test_snakefile_names_the_container_and_every_rule_an_env():
    snakefile = (REPO / "Snakefile").read_text()
    assert re.search(r'^container: "docker://snaketune/snaketune:[\w.]+"', snakefile, re.M)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert f"snaketune:{version}" in snakefile, "the container tag follows the project version"
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        n_rules = len(re.findall(r"^rule \w+:", text, re.M))
        assert text.count('conda:\n        "../../envs/snaketune.yaml"') == n_rules, f"{smk.name}: a rule without conda env"
