"""snaketune: hyperparameter search for PyTorch networks as a Snakemake workflow.

The library behind the workflow's rules. It never imports Snakemake, and this package
imports nothing heavy (no torch, no pandas), so each trial process stays lean.
"""

from snaketune.config import load_schema, one_study, resolve_config
from snaketune.errors import ConfigError, DataError
from snaketune.plan import BracketPlan, Trial, plan_brackets, plan_trials, trial_seed
from snaketune.space import SearchSpace

__all__ = [
    "ConfigError",
    "DataError",
    "SearchSpace",
    "BracketPlan",
    "Trial",
    "load_schema",
    "one_study",
    "plan_brackets",
    "plan_trials",
    "resolve_config",
    "trial_seed",
]
