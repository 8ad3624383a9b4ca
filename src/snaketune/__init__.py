"""snaketune: hyperparameter search for PyTorch networks as a Snakemake workflow.

The library behind the workflow's rules. It never imports Snakemake, and importing this package
imports nothing at all: the names below load their modules when first used, so a trial job's
runner (which imports only what it needs) starts in a fraction of the time numpy alone takes.
"""

import importlib

_WHERE = {
    "ConfigError": "snaketune.errors",
    "DataError": "snaketune.errors",
    "SearchSpace": "snaketune.space",
    "BracketPlan": "snaketune.plan",
    "Trial": "snaketune.plan",
    "load_schema": "snaketune.config",
    "one_study": "snaketune.config",
    "plan_brackets": "snaketune.plan",
    "plan_trials": "snaketune.plan",
    "resolve_config": "snaketune.config",
    "trial_seed": "snaketune.plan",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'snaketune' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
