"""Study configuration: one config file = one study, checked before any job runs.

``resolve_config`` turns the raw mapping Snakemake loaded into a complete, checked config:
unknown keys (with a "did you mean" hint), defaults from the schema, numbers read by the
schema's types (:func:`_numbers_by_schema`), types and ranges from the JSON schema, then the
checks a schema cannot express (search space, parameter names, the study's size, data files,
objective). Every error is a :class:`ConfigError` whose message names the key.
"""

from __future__ import annotations

import copy
import math
import re
import string
import warnings
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from snaketune.errors import ConfigError, suggest
from snaketune.files import read_yaml
from snaketune.hparams import (
    AUGMENTATION_PARAMS,
    CNN_PARAMS,
    HParams,
    check_builtin_params,
    declared_type,
    layer_of,
)
from snaketune.records import TEST_PREFIX, is_test_metric, test_metric, tiebreak_metric
from snaketune.space import EXPONENT_TEXT, Fixed, FloatRange, IntRange, SearchSpace, as_declared, typed_spec
from snaketune.specs import builtin_trainer
from snaketune.table import FIRST_COLUMNS, LAST_COLUMNS, RUN_COLUMNS, STRUCTURE_COLUMNS
from snaketune.task import BUILTIN_METRICS, SOURCE_TASKS, TASK_METRICS, config_task, objective_mismatch

PLACEHOLDERS = ("params", "out", "data", "fold", "budget", "resume", "stage", "seed")
# Keys whose value is replaced by the last config file that sets them, never merged.
REPLACED_KEYS = ("search_space",)
SCHEMA = "config.schema.yaml"
# The size of a study, in jobs of its DAG and in trials (snaketune.plan.plan_size). Snakemake builds
# a DAG at about 1 ms per job: 10,000 jobs take 10-20 s at every start, 100,000 about two minutes and
# 2 GB (docs/benchmarks.md, "How large a study may be"). Planning costs about 0.1 ms per trial in
# every snakemake process (on a cluster: in every job), whatever search.trials_per_job packs.
WARN_JOBS = 10_000
MAX_JOBS = 100_000
MAX_TRIALS = 100_000
# Names a search-space parameter may not have: the trials table's own columns (snaketune.table), and
# validation and test metrics' names (a parameter and a metric of one name share a column).
TABLE_COLUMNS = (*FIRST_COLUMNS, *STRUCTURE_COLUMNS, *LAST_COLUMNS, *RUN_COLUMNS)
VAL_PREFIX = "val_"


class StudySizeWarning(UserWarning):
    """A study large enough that Snakemake takes a while to plan it (more than WARN_JOBS jobs), or
    one whose shape says less than the user may expect (a front of a few trials): printed when the
    workflow starts, never an error."""


# Several objectives under a schedule: fewer trials than this at the largest budget make a thin front.
MIN_FRONT_TRIALS = 3


class _Yaml12Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, reading a plain (unquoted) number in exponent notation as a float, as
    YAML 1.2 does: ``1e-3`` is 0.001, while ``"1e-3"`` stays text."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(f"^(?:{EXPONENT_TEXT.pattern})$"), list("-+0123456789.")
)


def read_config_file(path: str | Path) -> Any:
    """A config file as YAML 1.2 reads it (JSON is YAML): unquoted ``1e-3`` is a number, quoted text is text."""
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Yaml12Loader)


def schema_path() -> Path:
    """The config schema, shipped inside the package (for tools that want a file, such as
    ``snakemake.utils.validate``)."""
    return Path(str(files("snaketune") / SCHEMA))


def load_schema(path: str | Path | None = None) -> dict:
    """The config schema as a mapping: the package's own, or the one at ``path``."""
    if path is not None:
        return read_yaml(path)
    return yaml.safe_load((files("snaketune") / SCHEMA).read_text(encoding="utf-8"))


def one_study(config: dict, configfiles: Sequence[str | Path]) -> dict:
    """Apply the one-file-one-study rule to a config Snakemake merged from several files.

    Snakemake merges config files recursively, so the default study's search space would leak
    into every other study. The search space of the last file that has one wins whole, read
    from the file as YAML 1.2 reads it (:func:`read_config_file`): Snakemake's loader (YAML 1.1)
    reads ``1e-3`` as text, the same text as ``"1e-3"``. A search space no file here has (the
    default study's, or a module's config) comes as Snakemake read it; there text in exponent
    notation is taken for the number it looks like, as the two cannot be told apart. A study
    file without ``study:`` is named after the file.
    """
    config = copy.deepcopy(config)
    if "search_space" in config:
        config["search_space"] = _numbers_from_yaml11(config["search_space"])
    if not configfiles:
        return config
    loaded = []
    for f in configfiles:
        try:
            loaded.append(read_config_file(f) or {})
        except FileNotFoundError:
            raise ConfigError(f"config file {f} does not exist") from None
        except Exception as e:  # yaml errors carry line numbers
            raise ConfigError(f"config file {f} is not valid YAML: {e}") from None
        if not isinstance(loaded[-1], dict):
            raise ConfigError(f"config file {f} must hold a mapping of keys, but holds {type(loaded[-1]).__name__}")
    for key in REPLACED_KEYS:
        for data in reversed(loaded):
            if key in data:
                config[key] = copy.deepcopy(data[key])
                break
    if not any("study" in data for data in loaded):
        config["study"] = Path(configfiles[-1]).stem
    return config


def _check_unknown_keys(cfg: Any, schema: Mapping, prefix: str = "") -> None:
    if not isinstance(cfg, Mapping) or schema.get("additionalProperties", True) is not False:
        return
    props = schema.get("properties", {})
    for key, value in cfg.items():
        where = f"{prefix}{key}"
        if key not in props:
            valid = ", ".join(props)
            raise ConfigError(
                f"config key `{where}` is not known{suggest(key, list(props))}; "
                f"valid keys{' under `' + prefix[:-1] + '`' if prefix else ''}: {valid}"
            )
        _check_unknown_keys(value, props[key], f"{where}.")


def _apply_defaults(cfg: dict, schema: Mapping) -> dict:
    out = copy.deepcopy(cfg)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict) and "properties" in sub:
            out[key] = _apply_defaults(out[key], sub)
    return out


def _schema_errors(cfg: Mapping, schema: Mapping) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for err in errors[:5]:
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        desc = " ".join(err.schema.get("description", "").split())
        lines.append(f"config key `{key}`: {_schema_message(err)}" + (f" ({desc})" if desc and len(desc) < 200 else ""))
    raise ConfigError("\n".join(lines))


# JSON schema's type names, as a config's reader knows them.
TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "object": "a mapping (key: value)",
    "array": "a list",
    "null": "null",
}


def _schema_message(err: Any) -> str:
    """What a schema check wants, then what it got: "must be >= 1, but got 0"."""
    want, got = err.validator_value, f"but got {err.instance!r}."
    match err.validator:
        case "enum":
            return f"{err.instance!r} is not allowed. Valid: {', '.join(map(str, want))}."
        case "type":
            return f"must be {' or '.join(TYPE_NAMES.get(t, t) for t in ([want] if isinstance(want, str) else want))}, {got}"
        case "minimum":
            return f"must be >= {want}, {got}"
        case "maximum":
            return f"must be <= {want}, {got}"
        case "exclusiveMinimum":
            return f"must be > {want}, {got}"
        case "exclusiveMaximum":
            return f"must be < {want}, {got}"
        case "minItems" | "maxItems" if err.schema.get("minItems") == err.schema.get("maxItems"):
            return f"must be a list of {want} values, {got}"
        case "minItems":
            return f"must be a list of at least {want} values, {got}"
        case "maxItems":
            return f"must be a list of at most {want} values, {got}"
        case "minProperties":
            return f"must name at least {want} key(s), {got}"
        case "pattern":
            return f"{err.instance!r} is not allowed (it must match {want})."
        case "maxLength":
            start = err.instance[:20] + "..." if len(err.instance) > 20 else err.instance
            return f"must be at most {want} characters long, but got {len(err.instance)} characters ({start!r})."
    return err.message + "."


def _numbers_from_yaml11(value: Any) -> Any:
    """Text in exponent notation (``1e-4``) as the number YAML 1.2 reads, everywhere in ``value``."""
    if isinstance(value, str) and EXPONENT_TEXT.fullmatch(value):
        return float(value)
    if isinstance(value, list):
        return [_numbers_from_yaml11(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _numbers_from_yaml11(v) for k, v in value.items()}
    return value


def _numbers_by_schema(value: Any, schema: Mapping, key: str = "") -> Any:
    """The config's numbers read by the type the schema declares (the one place where config values
    change type): in a ``number`` key exponent text is a float; in an ``integer`` key a whole float
    is an int (``2.0`` -> 2; JSON Schema counts it as an integer, Python's range() does not).
    Infinity and NaN are rejected in every key (the search space, a mapping the schema leaves open,
    is read by its parameters: snaketune.space). Text elsewhere (names, paths, commands) stays text;
    everything else is for the schema to judge."""
    if isinstance(value, Mapping):
        each = schema.get("additionalProperties")
        if "properties" not in schema and not isinstance(each, Mapping):
            return value
        props = schema.get("properties", {})
        return {
            k: _numbers_by_schema(v, props.get(k, each if isinstance(each, Mapping) else {}), f"{key}.{k}" if key else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_numbers_by_schema(v, schema.get("items", {}), key) for v in value]
    types = _types(schema)
    for kind, name in ((int, "integer"), (float, "number")):
        if name in types:
            value = as_declared(value, kind)
            break
    if isinstance(value, str):  # --config "final={retrain: false}" hands text over
        if "boolean" in types and value in BOOLEAN_TEXT:
            value = BOOLEAN_TEXT[value]
        elif "null" in types and value in ("null", "~", "None"):
            value = None
    if isinstance(value, float) and not math.isfinite(value):
        desc = " ".join(schema.get("description", "").split())
        raise ConfigError(
            f"config key `{key}`: must be a finite number (not .inf or .nan), but got {value!r}."
            + (f" ({desc})" if desc and len(desc) < 200 else "")
        )
    return value


BOOLEAN_TEXT = {"true": True, "True": True, "false": False, "False": False}


def _types(schema: Mapping) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def resolve_config(raw: Mapping, schema: Mapping | None = None, *, shared_fs: bool = True) -> dict:
    """Check ``raw`` and return a complete config with every default filled in.

    Numbers are read by their declared type (the schema's for config keys, a range's ``type`` and
    the built-in trainer's parameters in the search space): ``1e-3`` is a number there, and ``2.0``
    an integer where one is declared. A custom trainer's values are passed as they are.
    ``shared_fs=False`` (a run whose files live in a storage provider): ``data.path`` names a file
    in the storage, which is not checked here (Snakemake names it if it is missing there).
    """
    schema = schema if schema is not None else load_schema()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the config must be a mapping of keys, but got {type(raw).__name__}")
    _check_unknown_keys(raw, schema)
    cfg = _apply_defaults(dict(raw), schema)
    cfg = _numbers_by_schema(cfg, schema)
    _schema_errors(cfg, schema)
    builtin = builtin_trainer(cfg)
    cfg["search_space"] = {name: typed_spec(spec, _declared_type(name, builtin)) for name, spec in cfg["search_space"].items()}
    check_semantics(cfg, shared_fs=shared_fs)
    cfg["final"]["ensemble"] = ensemble_setting(cfg["final"], builtin)
    return cfg


def _declared_type(name: str, builtin: bool) -> type | None:
    """The type the trainer declares for parameter ``name``: the built-in trainer's int and float
    parameters; None for anything else (a custom trainer's values are passed as written)."""
    return declared_type(name) if builtin else None


def ensemble_setting(final: Mapping, builtin: bool) -> bool:
    """``final.ensemble`` as a boolean: ``auto`` ships an ensemble when there are several retrains
    of the built-in trainer (the protocol measured best, docs/benchmarks.md)."""
    if final["ensemble"] == "auto":
        return final["retrain"] and final["repeats"] > 1 and builtin
    return bool(final["ensemble"])


def check_semantics(cfg: Mapping, *, shared_fs: bool = True) -> None:
    """The checks a JSON schema cannot express (``shared_fs``: :func:`resolve_config`)."""
    space = SearchSpace.from_config(cfg["search_space"])
    _check_param_names(space, cfg["objective"])
    _check_objective(cfg)
    search = cfg["search"]
    if search["method"] == "grid":
        space.grid_size()  # raises on a float range without `grid:`
        space.check_reachable(grid=True)
    if search["schedule"] != "none":
        _check_schedule(space, search, cfg["search_space"].get("epochs"))
        if search["trials_per_job"] > 1:
            raise ConfigError(
                "config keys `search.trials_per_job` and `search.schedule` conflict: rung slots are one job each; "
                "use trials_per_job: 1 with a schedule"
            )
        if cfg["cv"]["folds"] > 1:
            raise ConfigError(
                "config keys `cv.folds` and `search.schedule` conflict: cross-validation of multi-fidelity "
                "rungs is not supported; use cv.folds: 1 with a schedule, or search.schedule: none"
            )
    if search["parallel"]:
        _check_parallel(search)
    if search["method"] == "bayes" and search["sampler"] == "nsga2" and search["batch"] < 2:
        raise ConfigError(
            f"config key `search.batch` ({search['batch']}): NSGA-II's population is a round's batch, at least 2; "
            "raise search.batch (e.g. 8) or use search.sampler: tpe"
        )
    _check_size(cfg)
    data = cfg["data"]
    if data["val_fraction"] + data["test_fraction"] >= 0.95:
        raise ConfigError(
            f"config keys `data.val_fraction` ({data['val_fraction']}) + `data.test_fraction` "
            f"({data['test_fraction']}) leave less than 5% of the data for training; make them smaller"
        )
    if data["source"] in ("csv", "npz"):
        if not data.get("path"):
            raise ConfigError(f"config key `data.path` is required for data.source: {data['source']} (the file to read)")
        if shared_fs and not Path(data["path"]).is_file():
            raise ConfigError(f"config key `data.path`: file {data['path']!r} does not exist (data.source: {data['source']})")
    elif data["source"] == "images":
        if not data.get("path"):
            raise ConfigError(
                "config key `data.path` is required for data.source: images (a folder with one sub-folder per class, "
                "e.g. cats/ dogs/ horses/)"
            )
        if not Path(data["path"]).is_dir():
            what = "is a file, not a folder" if Path(data["path"]).exists() else "does not exist"
            raise ConfigError(
                f"config key `data.path`: folder {data['path']!r} {what} (data.source: images needs a folder with one "
                "sub-folder of images per class)"
            )
    elif data.get("path"):
        raise ConfigError(
            f"config key `data.path` is only used by data.source csv, npz or images, but data.source is {data['source']!r}; "
            "remove data.path or change the source"
        )
    command, function = cfg["trainer"]["command"], cfg["trainer"].get("function")
    objective = cfg["objective"]
    if command is not None and function is not None:
        raise ConfigError(
            "config keys `trainer.command` and `trainer.function` conflict: a study has one trainer; "
            "set one of them (both null: the built-in trainer)"
        )
    if builtin_trainer(cfg):
        _check_builtin(space, objective)
        _check_family(space, cfg["model"]["family"], data["source"])
    elif command is not None:
        _check_command(command)
    else:
        _check_function(function)
    _check_final(cfg["final"], builtin_trainer(cfg))
    _check_select(cfg)
    _check_task(cfg)


def _check_task(cfg: Mapping) -> None:
    """``data.task`` against the source, and the built-in trainer's objective against the task when the
    config fixes it (snaketune.task.config_task; else prepare_data checks it against the data)."""
    data = cfg["data"]
    known = SOURCE_TASKS.get(data["source"])
    task = data.get("task", "auto")
    if task != "auto" and known is not None and task != known:
        what = "classes" if known == "classification" else "values to predict"
        raise ConfigError(
            f"config key `data.task`: {task}, but data.source {data['source']} holds {what}; use data.task: auto "
            f"(or {known}), or data.source csv or npz for your own data"
        )
    task = config_task(cfg)
    if task is not None and builtin_trainer(cfg):
        why = objective_mismatch(task, cfg["objective"]["metric"])
        if why:
            source = f"data.task: {data['task']}" if data.get("task", "auto") != "auto" else f"data.source: {data['source']}"
            raise ConfigError(f"config key `objective.metric`: {why} ({source})")


def _check_final(final: Mapping, builtin: bool) -> None:
    if final["ensemble"] == "auto":
        return
    if final["ensemble"] and final["repeats"] < 2:
        raise ConfigError(
            f"config key `final.ensemble`: an ensemble needs several retrains, but final.repeats is {final['repeats']}; "
            "set final.repeats to 2 or more, or final.ensemble: false"
        )
    if final["ensemble"] and not builtin:
        raise ConfigError(
            "config key `final.ensemble`: only the built-in trainer's models can be combined (a custom trainer "
            "writes models snaketune cannot read); use final.ensemble: false (repeats still report mean and std)"
        )


FUNCTION_TEXT = re.compile(r"(?P<where>[^:\s]+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


def _check_function(function: str) -> None:
    """``trainer.function``: ``module:function`` or ``path/to/file.py:function``; a file must exist
    (the module is imported only in a trial's own process, never while the DAG is built)."""
    m = FUNCTION_TEXT.fullmatch(function.strip())
    if m is None:
        raise ConfigError(
            f"config key `trainer.function`: {function!r} is not `module:function` or `path/to/file.py:function` "
            "(e.g. my_package.train:fit)"
        )
    where = m["where"]
    if where.endswith(".py"):
        if not Path(where).is_file():
            raise ConfigError(f"config key `trainer.function`: file {where!r} does not exist (relative to {Path.cwd()})")
    elif not all(part.isidentifier() for part in where.split(".")):
        raise ConfigError(f"config key `trainer.function`: {where!r} is not a module name (e.g. my_package.train)")


def _check_param_names(space: SearchSpace, objective: Mapping) -> None:
    """A parameter is a column of trials.tsv and a field of its row: one named like another column
    (``objective``, ``status``) or a metric would take its place (and choose the winner by itself)."""
    metric = objective["metric"]
    metrics = [m for m in (metric, tiebreak_metric(metric)) if m is not None]
    metrics += [test_metric(m) for m in metrics] + list(objective["also"]) + list(objective["constraints"])
    for name in space.names:
        if name in TABLE_COLUMNS:
            why = f"is a column of trials.tsv, which snaketune fills itself ({', '.join(TABLE_COLUMNS)})"
        elif name in metrics or name.startswith(VAL_PREFIX) or is_test_metric(name):
            why = (
                f"is the name of a metric (the objective {metric!r}, its tie-break and test names, and every "
                f"name starting with {VAL_PREFIX} or {TEST_PREFIX} are metrics' names)"
            )
        else:
            continue
        raise ConfigError(
            f"search_space.{name}: the parameter name {name!r} {why}; a parameter of that name would replace it in the "
            f"table and the ranking. Rename the parameter (e.g. `p_{name}`), and read it under that name in the trainer"
        )


def _check_size(cfg: Mapping) -> None:
    """A study Snakemake can plan in reasonable time and memory: counted from the config
    (snaketune.plan.plan_size) before any trial is sampled or any grid listed."""
    from snaketune.plan import plan_size

    size = plan_size(cfg)
    search, folds, grid = cfg["search"], cfg["cv"]["folds"], cfg["search"]["method"] == "grid"
    keys = ["search_space" if grid else "search.n_trials"]
    what = f"the study has {size.trials:,} trials" + (" (the grid's combinations)" if grid else "")
    fewer = "make the grid smaller" if grid else "lower search.n_trials"
    if search["schedule"] == "hyperband":
        keys += ["search_space.epochs", "search.min_epochs", "search.eta"]
        epochs, min_epochs, eta = cfg["search_space"]["epochs"], search["min_epochs"], search["eta"]
        what = (
            f"the study has {size.trials:,} trials (the configurations Hyperband starts in its brackets with "
            f"epochs {epochs}, min_epochs {min_epochs} and eta {eta}" + (", each bracket the whole grid)" if grid else ")")
        )
        fewer += (
            ", lower epochs, or raise min_epochs or eta (Hyperband's largest bracket starts about eta^s "
            "configurations, s = log_eta(epochs / min_epochs))"
        )
    if size.trials > MAX_TRIALS:
        raise ConfigError(
            f"{_keys(keys)}: {what}, more than the {MAX_TRIALS:,} snaketune can plan in reasonable time and memory; "
            f"{fewer}, or split the study into several"
        )
    if folds > 1:
        keys.append("cv.folds")
        what += f" × {folds:,} folds"
        fewer += ", use fewer cv.folds"
    pack = search["schedule"] == "none" and search["trials_per_job"] < size.trials * folds
    if size.jobs > MAX_JOBS:
        raise ConfigError(
            f"{_keys(keys)}: {what}: {size.jobs:,} jobs, more than the {MAX_JOBS:,} Snakemake can plan in reasonable "
            f"time and memory; {fewer}"
            + (f", or pack more trials into one job with search.trials_per_job (now {search['trials_per_job']})" if pack else "")
        )
    if size.jobs > WARN_JOBS:
        warnings.warn(
            f"snaketune: {what}: {size.jobs:,} jobs. Snakemake plans them at every start at a few ms per job (over "
            f"{WARN_JOBS:,}: tens of seconds)" + ("; search.trials_per_job packs several trials into one job" if pack else ""),
            StudySizeWarning,
            # resolve_config's line: Python drops a warning attributed to a Snakefile's code (its __name__ is None)
            stacklevel=3,
        )


def _keys(keys: Sequence[str]) -> str:
    """``"config key `a`"``, ``"config keys `a`, `b`"``: the keys a message is about."""
    return f"config key{'s' if len(keys) > 1 else ''} " + ", ".join(f"`{k}`" for k in keys)


# What the built-in trainer writes besides the task's validation metrics (snaketune.train), and the
# values each can take: a limit outside them can never hold, or always holds.
BUILTIN_RUN_METRICS: dict[str, tuple[float, float]] = {
    "n_parameters": (1, math.inf),
    "train_seconds": (0, math.inf),
    "epochs_run": (1, math.inf),
    "best_epoch": (1, math.inf),
    "train_loss": (0, math.inf),
}
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "val_accuracy": (0, 1),
    "val_loss": (0, math.inf),
    "val_rmse": (0, math.inf),
    "val_mae": (0, math.inf),
    "val_r2": (-math.inf, 1),
    **BUILTIN_RUN_METRICS,
}


def _check_objective(cfg: Mapping) -> None:
    """objective.also and objective.constraints: no objective twice, limits that can hold, metrics
    the built-in trainer writes, and the settings that take several objectives or limits."""
    from snaketune.records import Limit

    objective, search = cfg["objective"], cfg["search"]
    also, constraints = objective["also"], objective["constraints"]
    if objective["metric"] in also:
        raise ConfigError(
            f"config key `objective.also`: {objective['metric']} is already the first objective (objective.metric); "
            "list only the other objectives there"
        )
    limits = []
    for name, bounds in constraints.items():
        try:
            limits.append(Limit(name, bounds.get("min"), bounds.get("max")))
        except ValueError as e:
            raise ConfigError(f"config key `objective.constraints.{name}`: {e}") from None
    if builtin_trainer(cfg):
        task = config_task(cfg)
        val = TASK_METRICS[task] if task else BUILTIN_METRICS
        written = [*val, *BUILTIN_RUN_METRICS]
        for key, names in (("objective.also", list(also)), ("objective.constraints", list(constraints))):
            for name in names:
                if name not in written:
                    raise ConfigError(
                        f"config key `{key}`: the built-in trainer never writes {name!r}{suggest(name, written)}; "
                        f"it writes {', '.join(written)}"
                    )
        for name, d in also.items():
            if name in BUILTIN_METRICS and BUILTIN_METRICS[name] != d:
                raise ConfigError(f"config key `objective.also.{name}`: {name} should be {BUILTIN_METRICS[name]}d, not {d}d")
        for lim in limits:
            low, high = METRIC_RANGES[lim.metric]
            if (lim.max is not None and lim.max < low) or (lim.min is not None and lim.min > high):
                raise ConfigError(
                    f"config key `objective.constraints.{lim.metric}`: {lim} can never hold: the built-in trainer's "
                    f"{lim.metric} lies in [{low:g}, {high:g}]"
                )
    if (also or limits) and search["method"] == "bayes" and search["sampler"] == "cmaes":
        what = "several objectives" if also else "limits (objective.constraints)"
        raise ConfigError(
            f"config key `search.sampler`: cmaes takes one objective and no limits, but the study has {what}; "
            "use search.sampler: tpe or gp (both model several objectives and limits), or qmc"
        )
    if also and search["schedule"] != "none":
        from snaketune.plan import full_budget_trials

        full = full_budget_trials(cfg)
        if full < MIN_FRONT_TRIALS:
            warnings.warn(
                f"objective.also with search.schedule {search['schedule']}: the Pareto front is made of the trials "
                f"trained to the largest budget (scores at smaller budgets are not comparable), and this schedule "
                f"trains only {full} to it; raise search.n_trials or lower search.eta for a front of several trials",
                StudySizeWarning,
                stacklevel=2,
            )
    front = cfg["final"]["front"]
    if front and not also:
        raise ConfigError(
            f"config key `final.front` ({front}): retraining members of the Pareto front needs several objectives "
            "(objective.also); use final.front: 0"
        )
    if front and not cfg["final"]["retrain"]:
        raise ConfigError(
            f"config key `final.front` ({front}): front members are retrained like the winner, but final.retrain is false"
        )
    if also and cfg["select"]["top_k"]:
        raise ConfigError(
            "config keys `select.top_k` and `objective.also` conflict: re-evaluation with extra seeds averages one "
            "objective; use select.top_k: 0 with several objectives (name a front member with select.trial instead)"
        )


def _check_select(cfg: Mapping) -> None:
    if cfg["select"]["trial"] is not None and cfg["select"]["top_k"]:
        raise ConfigError(
            "config keys `select.trial` and `select.top_k` conflict: a named trial is retrained as it is; use one of them"
        )
    top_k = cfg["select"]["top_k"]
    if top_k == 0:
        return
    from snaketune.plan import plan_size

    n = plan_size(cfg).trials
    if top_k > n:
        raise ConfigError(
            f"config key `select.top_k` ({top_k}) is larger than the study's {n} trial(s): it re-evaluates the top_k best "
            f"trials; use a value from 1 to {n}, or 0 for off"
        )


def _check_parallel(search: Mapping) -> None:
    """``search.parallel`` (asynchronous Bayesian search): each trial after round 0 is a round of
    its own, so it packs nothing and fills no bracket. Cross-validation (a trial's result = its
    folds), failed trials, several objectives and select.top_k work as with rounds."""
    w = search["parallel"]
    if search["method"] != "bayes":
        raise ConfigError(
            f"config key `search.parallel` ({w}) is for search.method: bayes (an asynchronous sliding window of "
            f"proposals), but search.method is {search['method']}; remove it (grid and random trials all run in "
            "parallel already)"
        )
    if search["trials_per_job"] > 1:
        raise ConfigError(
            f"config keys `search.parallel` ({w}) and `search.trials_per_job` ({search['trials_per_job']}) conflict: "
            "asynchronous search proposes one trial at a time, nothing to pack; use trials_per_job: 1, or rounds "
            "(search.parallel: null) to pack a round's trials"
        )
    if search["schedule"] != "none":
        raise ConfigError(
            f"config keys `search.parallel` ({w}) and `search.schedule` ({search['schedule']}) conflict: a schedule's "
            "brackets are proposed whole; use search.schedule: none with parallel, or search.parallel: null"
        )
    if search["sampler"] == "nsga2":
        raise ConfigError(
            f"config keys `search.parallel` ({w}) and `search.sampler` (nsga2) conflict: NSGA-II breeds a generation "
            "from the whole one before it, which rounds give and a sliding window does not; use rounds "
            "(search.parallel: null) or search.sampler: tpe"
        )


def _check_schedule(space: SearchSpace, search: Mapping, written: Any) -> None:
    epochs = space["epochs"] if "epochs" in space.names else None
    if isinstance(epochs, Fixed) and written != epochs.value:  # {value: .., when: ..}
        raise ConfigError(
            f"config key `search.schedule`: {search['schedule']} needs `epochs` in search_space as a plain integer "
            f"(the largest budget, every trial's), e.g. `epochs: 27`, but search_space has epochs: {written!r}"
        )
    if not isinstance(epochs, Fixed) or not isinstance(epochs.value, int) or isinstance(epochs.value, bool):
        found = "has no `epochs`" if epochs is None else f"has epochs: {_spec_text(epochs)}"
        raise ConfigError(
            f"config key `search.schedule`: {search['schedule']} needs a fixed integer `epochs` in search_space "
            f"(the largest budget), e.g. `epochs: 27`, but search_space {found}"
        )
    if search["min_epochs"] >= epochs.value:
        raise ConfigError(
            f"config key `search.min_epochs` ({search['min_epochs']}) must be smaller than search_space.epochs "
            f"({epochs.value}): the first rung trains fewer epochs than the last"
        )
    if search["min_epochs"] * search["eta"] > epochs.value:
        raise ConfigError(
            f"config key `search.schedule`: with min_epochs {search['min_epochs']} and eta {search['eta']} there is only one rung "
            f"below epochs {epochs.value}; lower min_epochs or eta, or raise epochs"
        )


def _spec_text(param: Any) -> str:
    """A parameter as the config wrote it, roughly: ``27``, ``[9, 27]``, ``{low: 1, high: 9}``."""
    if isinstance(param, Fixed):
        return repr(param.value)
    if isinstance(param, FloatRange | IntRange):
        return f"{{type: {'float' if isinstance(param, FloatRange) else 'int'}, low: {param.low}, high: {param.high}}}"
    return f"[{', '.join(map(str, param.grid_values()))}]"


def _check_builtin(space: SearchSpace, objective: Mapping) -> None:
    check_builtin_params(space.names)
    for p in space.params:
        if isinstance(p, FloatRange | IntRange) and p.grid is None:
            values = [p.low, p.high]
        else:
            values = p.grid_values()
        if isinstance(p, FloatRange) and declared_type(p.name) is int:
            raise ConfigError(f"search_space.{p.name}: must be `type: int` for the built-in trainer, not float")
        for v in values:
            HParams.from_params({p.name: v}, key="search_space.{}")
    _check_layer_widths(space)
    metric, direction = objective["metric"], objective["direction"]
    if metric not in BUILTIN_METRICS:
        reported = " and ".join(f"{', '.join(metrics)} ({task})" for task, metrics in TASK_METRICS.items())
        raise ConfigError(
            f"config key `objective.metric`: the built-in trainer reports {reported}, "
            f"not {metric!r}{suggest(metric, list(BUILTIN_METRICS))}"
        )
    if BUILTIN_METRICS[metric] != direction:
        raise ConfigError(f"config key `objective.direction`: {metric} should be {BUILTIN_METRICS[metric]}d, not {direction}d")


def _check_layer_widths(space: SearchSpace) -> None:
    """``hidden_units_<i>`` sets the width of hidden layer i, so it must be active only in trials with
    at least i layers (else it would be recorded, and tell grid points apart, without any effect)."""
    for name in space.names:
        layer = layer_of(name)
        if layer is None:
            continue
        if "n_layers" in space.names:
            least = space.least_value("n_layers", space.conditions.get(name))
        else:
            least = HParams.n_layers
        if least is not None and least < layer:
            raise ConfigError(
                f"search_space.{name}: the width of hidden layer {layer} has an effect only when n_layers >= {layer}, "
                f"but {name} is active with n_layers {least}"
                + ("" if "n_layers" in space.names else " (the default)")
                + f"; add `when: {{n_layers: {{min: {layer}}}}}` to {name}, or search n_layers from {layer} up"
            )


# Sources whose examples are feature vectors, never (channels, height, width) images; npz may be either.
FLAT_SOURCES = ("digits", "mnist1d", "synthetic", "csv", "diabetes")


def _check_family(space: SearchSpace, family: str, source: str) -> None:
    """Parameters that would have no effect, and networks that cannot read the data, are errors."""
    if family != "cnn":
        unused = [n for n in space.names if n in CNN_PARAMS]
        if unused:
            raise ConfigError(
                f"search_space: {_are(unused)} used only by model.family cnn, but model.family is {family!r}; "
                f"remove {'it' if len(unused) == 1 else 'them'} or set model.family: cnn"
            )
    if source in FLAT_SOURCES:
        if family == "cnn":
            raise ConfigError(
                f"config key `model.family`: cnn needs images (data.source: images, or npz with X of shape "
                f"(n, channels, height, width)), but data.source {source!r} gives feature vectors; use model.family: mlp"
            )
        augmenting = [n for n in space.names if n in AUGMENTATION_PARAMS]
        if augmenting:
            raise ConfigError(
                f"search_space: {_are(augmenting)} for augmenting images, but data.source {source!r} gives feature "
                f"vectors; remove {'it' if len(augmenting) == 1 else 'them'} or use data.source: images"
            )


def _are(names: Sequence[str]) -> str:
    """``"flip is"``, ``"n_conv, kernel_size are"``."""
    return f"{', '.join(names)} {'is' if len(names) == 1 else 'are'}"


def _check_command(command: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(command) if f is not None]
    except ValueError as e:
        raise ConfigError(
            f"config key `trainer.command`: cannot parse the template ({e}); write a literal brace as {{{{ or }}}}"
        ) from None
    for f in fields:
        if f not in PLACEHOLDERS:
            raise ConfigError(
                f"config key `trainer.command`: unknown placeholder {{{f}}}{suggest(f, PLACEHOLDERS)}; "
                f"valid: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )
    if not command.strip():
        raise ConfigError("config key `trainer.command` is empty; use null for the built-in trainer")
