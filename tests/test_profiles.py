"""The SLURM profile gives every training job of the workflow a GPU, memory and a time limit.

A rule that is not named under set-resources gets default-resources: no GPU and the default
time limit, so a new training rule missing from profiles/slurm/config.yaml would train on a CPU
node and be killed after half an hour. The training rules are read from workflow/rules/*.smk:
the rules that declare ``gpu=1``, and the rules made from them with ``use rule ... as ...``.
"""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import REPO

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
