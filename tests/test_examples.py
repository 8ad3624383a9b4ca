"""Every runnable study in config/examples/ is a valid config, as `snakemake --configfile` reads it
(the default study's config first, the example's keys over it, its search space whole)."""

import copy
from pathlib import Path

import pytest

from snaketune.config import ConfigError, one_study, read_config_file, resolve_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))
# Examples that read the user's own files, which the repository does not ship.
NEEDS_USER_DATA = {"animals.yaml": "data.path"}


def merged(base: dict, over: dict) -> dict:
    """Snakemake's merge of config files: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_every_example_is_a_valid_study(example, monkeypatch):
    monkeypatch.chdir(REPO)  # examples name files relative to the checkout (trainers, data)
    raw = merged(read_config_file(REPO / "config" / "config.yaml"), read_config_file(example))
    config = one_study(raw, [str(example)])
    if example.name in NEEDS_USER_DATA:
        with pytest.raises(ConfigError, match=NEEDS_USER_DATA[example.name]):
            resolve_config(config)
        return
    resolved = resolve_config(config)
    assert resolved["study"] == read_config_file(example).get("study", example.stem)


def test_there_are_examples():
    assert {"bayes.yaml", "hyperband.yaml", "pareto.yaml"} <= {e.name for e in EXAMPLES}
