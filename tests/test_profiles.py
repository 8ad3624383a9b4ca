"""The cluster profiles give every training job of the workflow a GPU, memory and (SLURM) a time limit.

A rule that is not named under set-resources gets default-resources: no GPU and the default
time limit, so a new training rule missing from profiles/slurm/config.yaml would train on a CPU
node and be killed after half an hour. The training rules are read from workflow/rules/*.smk:
the rules that declare ``gpu=1``, and the rules made from them with ``use rule ... as ...``.
The Kubernetes profile is also run: a dry run builds the DAG with it, and the executor plugin
turns a training job's resources into the Kubernetes Job it would submit.
"""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO, tiny_config

KUBERNETES = REPO / "profiles" / "kubernetes"

RULE = re.compile(r"^rule (\w+):", re.M)
USE_RULE = re.compile(r"^use rule (\w+) as (\w+)", re.M)
GPU = re.compile(r"^\s+gpu\s*=\s*1\s*,?\s*$", re.M)


def rule_blocks() -> dict[str, str]:
    """Each rule's name and its text, up to the next unindented line."""
    blocks = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines = smk.read_text().splitlines()
        starts = [i for i, line in enumerate(lines) if line and not line[0].isspace() and not line.startswith("#")]
        for a, b in zip(starts, [*starts[1:], len(lines)]):
            block = "\n".join(lines[a:b])
            if m := RULE.match(block):
                blocks[m.group(1)] = block
            elif m := USE_RULE.match(block):
                blocks[m.group(2)] = block
    return blocks


def training_rules() -> list[str]:
    blocks = rule_blocks()
    training = {name for name, block in blocks.items() if GPU.search(block)}
    grew = True
    while grew:  # `use rule train_trial as train_pack with:` keeps train_trial's resources
        derived = {m.group(2) for block in blocks.values() if (m := USE_RULE.match(block)) and m.group(1) in training}
        grew = not derived <= training
        training |= derived
    return sorted(training)


def test_the_rules_are_found():
    rules = training_rules()
    assert "train_trial" in rules, f"no train_trial among the GPU rules {rules}: has the rule syntax changed?"


@pytest.mark.parametrize("rule", training_rules())
def test_every_training_rule_has_gpu_memory_and_time_on_slurm(rule):
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    resources = profile["set-resources"].get(rule)
    assert resources, f"profiles/slurm/config.yaml: set-resources lacks {rule} (a rule with gpu=1)"
    missing = [key for key in ("gpu", "mem_mb", "runtime") if key not in resources]
    assert not missing, f"profiles/slurm/config.yaml: set-resources.{rule} lacks {missing}"
    assert resources["gpu"] >= 1


@pytest.mark.parametrize("rule", training_rules())
def test_every_training_rule_asks_kubernetes_for_a_gpu_it_accepts(rule):
    profile = yaml.safe_load((KUBERNETES / "config.yaml").read_text())
    resources = profile["set-resources"].get(rule)
    assert resources, f"profiles/kubernetes/config.yaml: set-resources lacks {rule} (a rule with gpu=1)"
    missing = [key for key in ("gpu", "gpu_manufacturer", "scale", "mem_mb") if key not in resources]
    assert not missing, f"profiles/kubernetes/config.yaml: set-resources.{rule} lacks {missing}"
    # The plugin refuses a GPU without its maker, and sets limits only with scale off: Kubernetes
    # rejects a pod that requests a GPU without a limit.
    assert resources["gpu"] >= 1 and resources["gpu_manufacturer"] in ("nvidia", "amd") and resources["scale"] == 0


def dry_run_resources(output: str) -> list[tuple[str, dict]]:
    """Each job of a `snakemake -n` listing: its rule and its resources (less those known only once
    the inputs exist, such as disk_mb, which a dry run shows as <TBD>)."""
    jobs: list[tuple[str, dict]] = []
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append((m.group(1), {}))
        elif jobs and (m := re.match(r"^\s+resources: (.*)$", line)):
            pairs = (item.split("=", 1) for item in m.group(1).split(", "))
            jobs[-1][1].update({k: int(v) if v.isdigit() else v for k, v in pairs if v != "<TBD>"})
    return jobs


def kubernetes_job(plugin, resources: dict, image: str):
    """The Kubernetes Job that the plugin's executor would submit for a job with these resources:
    its run_job, with the cluster's API replaced by a list."""
    executor = plugin.Executor.__new__(plugin.Executor)  # no cluster: skip the connection
    submitted = []
    executor.__dict__.update(
        run_namespace="test",
        container_image=image,
        persistent_volumes=[],
        secret_envvars={},
        k8s_cpu_scalar=0.95,
        k8s_service_account_name=None,
        privileged=False,
        namespace="default",
        logger=logging.getLogger("kubernetes-plugin"),
        workflow=SimpleNamespace(deployment_settings=SimpleNamespace(deployment_method=set())),
        batchapi=SimpleNamespace(create_namespaced_job=lambda namespace, body: submitted.append(body)),
    )
    executor.format_job_exec = lambda job: "true"
    executor._kubernetes_retry = lambda call: call()
    executor.report_job_submission = lambda info: None
    executor.run_job(SimpleNamespace(resources={"_cores": 1, **resources}, jobid=1, attempt=1, is_containerized=False))
    (body,) = submitted
    return body


@pytest.mark.workflow
def test_the_kubernetes_profile_builds_the_dag_and_pods_that_ask_for_a_gpu(study, tmp_path):
    plugin = pytest.importorskip("snakemake_executor_plugin_kubernetes", reason="pip install -e '.[test]' has it")
    pytest.importorskip("snakemake_storage_plugin_fs", reason="pip install -e '.[test]' has it")
    profile = yaml.safe_load((KUBERNETES / "config.yaml").read_text())
    s = study(tiny_config())
    # The profile's S3 bucket replaced by a local folder (a dry run looks at the files).
    out = s.run(
        "--profile",
        str(KUBERNETES),
        "-n",
        "-p",
        "--default-storage-provider",
        "fs",
        "--default-storage-prefix",
        str(tmp_path / "store"),
    )
    # The workflow knows from the start that the pods share no file system: each training job works
    # in its copies of the study's files (tests/test_no_shared_fs.py runs such jobs).
    assert out.stdout.count("snaketune-trial") >= 4 and out.stdout.count("--study tiny --job-log") >= 4, out.stdout[-3000:]
    jobs = dry_run_resources(out.stdout + out.stderr)
    trials = [resources for rule, resources in jobs if rule == "train_trial"]
    assert len(trials) == 4, jobs
    for resources in trials:
        assert resources["gpu"] == 1 and resources["gpu_manufacturer"] == "nvidia" and resources["scale"] == 0, resources
        assert resources["mem_mb"] == 8000, resources
    (collect,) = [resources for rule, resources in jobs if rule == "collect"]
    assert "gpu" not in collect and collect["mem_mb"] == 2000, collect

    body = kubernetes_job(plugin, trials[0], profile["container-image"])
    pod = body.spec.template.spec
    (container,) = pod.containers
    assert container.image == "snaketune/snaketune:0.1.0"
    assert container.resources.requests["nvidia.com/gpu"] == container.resources.limits["nvidia.com/gpu"] == "1"
    assert container.resources.requests["memory"] == container.resources.limits["memory"] == "8000M"
    assert [t.key for t in pod.tolerations] == ["nvidia.com/gpu"]
    assert not kubernetes_job(plugin, collect, profile["container-image"]).spec.template.spec.tolerations  # no GPU
