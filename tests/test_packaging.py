"""pyproject.toml, envs/*.yaml and the Dockerfile name the same software with compatible versions,
and the library's modules import each other without cycles and without Snakemake."""

from __future__ import annotations

import ast
import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import REPO

# conda-forge names of the PyPI packages where they differ
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base"}
# The pip: entry of envs/snaketune.yaml that installs snaketune itself (tests/test_install.py runs it).
PROJECT_ENTRY = re.compile(r"(-e\s+)?\$\{SNAKETUNE_SOURCE\}")
LIBRARY = REPO / "src" / "snaketune"


def pyproject_requirements() -> dict[str, SpecifierSet]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    return {r.name.lower(): r.specifier for r in reqs}


def conda_env() -> dict:
    return yaml.safe_load((REPO / "envs" / "snaketune.yaml").read_text())


def conda_pip_entries() -> list[str]:
    return next(dep["pip"] for dep in conda_env()["dependencies"] if isinstance(dep, dict))


def conda_requirements() -> dict[str, SpecifierSet]:
    out = {}
    for dep in conda_env()["dependencies"]:
        if isinstance(dep, dict):  # the pip: section
            for r in dep["pip"]:
                if not PROJECT_ENTRY.fullmatch(r):
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


def test_conda_env_installs_snaketune_itself_once():
    entries = [e for e in conda_pip_entries() if PROJECT_ENTRY.fullmatch(e)]
    assert len(entries) == 1, f"envs/snaketune.yaml must install snaketune once under pip:, has {entries}"


def test_python_versions_agree():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    requires = SpecifierSet(data["project"]["requires-python"])
    conda_python = conda_requirements()["python"]
    docker_python = re.search(r"^FROM python:(\d+\.\d+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    for version in (docker_python, "3.11"):
        assert version in requires and version in conda_python


def test_dockerfile_installs_the_project_and_a_compatible_torch():
    text = (REPO / "Dockerfile").read_text()
    torch_default = re.search(r'^ARG TORCH_SPEC="([^"]+)"', text, re.M).group(1)
    assert Requirement(torch_default).specifier == pyproject_requirements()["torch"]
    assert re.search(r"pip install \.(\s|$)", text), "the image must install the project (and so pyproject's dependencies)"
    assert "PYTHONPATH" not in text and "sys.path" not in text, "the image imports the installed library, nothing else"
    for path in ("pyproject.toml", "src", "workflow", "Snakefile", "config", "profiles", "envs"):
        assert re.search(rf"^COPY {path}\b", text, re.M), f"the image lacks {path}"


def test_snakefile_names_the_container_and_every_rule_an_env():
    snakefile = (REPO / "Snakefile").read_text()
    # The built image's tag, unless SNAKETUNE_CONTAINER names a local image (tests/test_container.py).
    assert re.search(
        r'^container: os\.environ\.get\("SNAKETUNE_CONTAINER"\) or "docker://snaketune/snaketune:[\w.]+"', snakefile, re.M
    )
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert f"snaketune:{version}" in snakefile, "the container tag follows the project version"
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        n_rules = len(re.findall(r"^rule \w+:", text, re.M))
        assert text.count('conda:\n        "../../envs/snaketune.yaml"') == n_rules, f"{smk.name}: a rule without conda env"


def library_imports() -> dict[str, set[str]]:
    """Each module of src/snaketune and the modules it imports (anywhere in it, functions included)."""
    modules = {p.stem for p in LIBRARY.glob("*.py")}
    graph = {}
    for path in LIBRARY.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ("snaketune." + (node.module or "")).rstrip(".") if node.level else (node.module or "")
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if base == "snaketune" and a.name in modules}
        graph[path.stem] = found
    return graph


def cycles_through(start: str, graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles among the modules ``start`` reaches."""
    edges = {m: {i.split(".")[1] for i in imports if i.startswith("snaketune.")} - {m} for m, imports in graph.items()}
    found, path = [], []

    def visit(module: str) -> None:
        if module in path:
            found.append(path[path.index(module) :] + [module])
            return
        path.append(module)
        for dep in sorted(edges.get(module, ())):
            visit(dep)
        path.pop()

    visit(start)
    return found


def test_the_config_checks_import_no_module_that_imports_them_back():
    # config imported hparams, and hparams imported config (for its "did you mean" helper).
    assert cycles_through("config", library_imports()) == []


def test_the_library_never_imports_snakemake():
    users = sorted(m for m, imports in library_imports().items() if any(i.split(".")[0] == "snakemake" for i in imports))
    assert not users, f"src/snaketune/{users[0]}.py imports snakemake; the library must work without it (DESIGN.md)"
