"""Study configuration: one config file = one study, checked before any job runs.

``resolve_config`` turns the raw mapping Snakemake loaded into a complete, checked config:
unknown keys (with a "did you mean" hint), types and ranges from the JSON schema, defaults
from the schema, then the checks a schema cannot express (search space, data files,
objective). Every error is a :class:`ConfigError` whose message names the key.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from snaketune.errors import ConfigError, suggest
from snaketune.files import read_yaml
from snaketune.hparams import AUGMENTATION_PARAMS, BUILTIN_METRICS, CNN_PARAMS, INT_PARAMS, HParams, check_builtin_params
from snaketune.space import Fixed, FloatRange, IntRange, SearchSpace

PLACEHOLDERS = ("params", "out", "data", "fold", "budget", "resume", "stage", "seed")
# Keys whose value is replaced by the last config file that sets them, never merged.
REPLACED_KEYS = ("search_space",)
# A number in exponent notation without a dot or without an exponent sign (1e-4, 1.5e3): YAML 1.2
# reads it as a float, PyYAML (YAML 1.1, Snakemake's loader) as text.
EXPONENT_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")
SCHEMA = "config.schema.yaml"


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
    into every other study. The search space of the last file that has one wins whole. A study
    file without ``study:`` is named after the file.
    """
    config = copy.deepcopy(config)
    if not configfiles:
        return config
    loaded = []
    for f in configfiles:
        try:
            loaded.append(read_yaml(f) or {})
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
    return err.message + "."


def _numbers_from_text(value: Any, schema: Mapping | None) -> Any:
    """``1e-4`` as a number, as YAML 1.2 reads it: in the search space (values and bounds) and in
    keys the schema types as numbers; anywhere else (names, paths, commands) text stays text."""
    if isinstance(value, str):
        if EXPONENT_TEXT.fullmatch(value) and (schema is None or "number" in _types(schema)):
            return float(value)
        return value
    if isinstance(value, list):
        return [_numbers_from_text(v, schema if schema is None else schema.get("items", {})) for v in value]
    if isinstance(value, Mapping):
        props = {} if schema is None else schema.get("properties", {})
        return {
            k: _numbers_from_text(v, None if schema is None or k == "search_space" else props.get(k, {}))
            for k, v in value.items()
        }
    return value


def _types(schema: Mapping) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def resolve_config(raw: Mapping, schema: Mapping | None = None) -> dict:
    """Check ``raw`` and return a complete config with every default filled in."""
    schema = schema if schema is not None else load_schema()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the config must be a mapping of keys, but got {type(raw).__name__}")
    raw = _numbers_from_text(raw, schema)
    _check_unknown_keys(raw, schema)
    cfg = _apply_defaults(dict(raw), schema)
    _schema_errors(cfg, schema)
    check_semantics(cfg)
    cfg["final"]["ensemble"] = ensemble_setting(cfg["final"], cfg["trainer"]["command"])
    return cfg


def ensemble_setting(final: Mapping, command: str | None) -> bool:
    """``final.ensemble`` as a boolean: ``auto`` ships an ensemble when there are several retrains
    of the built-in trainer (the protocol measured best, docs/benchmarks.md)."""
    if final["ensemble"] == "auto":
        return final["retrain"] and final["repeats"] > 1 and command is None
    return bool(final["ensemble"])


def check_semantics(cfg: Mapping) -> None:
    """The checks a JSON schema cannot express."""
    space = SearchSpace.from_config(cfg["search_space"])
    search = cfg["search"]
    if search["method"] == "grid":
        space.grid()  # raises on a float range without `grid:`
    if search["schedule"] != "none":
        _check_schedule(space, search)
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
    data = cfg["data"]
    if data["val_fraction"] + data["test_fraction"] >= 0.95:
        raise ConfigError(
            f"config keys `data.val_fraction` ({data['val_fraction']}) + `data.test_fraction` "
            f"({data['test_fraction']}) leave less than 5% of the data for training; make them smaller"
        )
    if data["source"] in ("csv", "npz"):
        if not data.get("path"):
            raise ConfigError(f"config key `data.path` is required for data.source: {data['source']} (the file to read)")
        if not Path(data["path"]).is_file():
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
    command = cfg["trainer"]["command"]
    objective = cfg["objective"]
    if command is None:
        _check_builtin(space, objective)
        _check_family(space, cfg["model"]["family"], data["source"])
    else:
        _check_command(command)
    _check_final(cfg["final"], command)
    _check_select(cfg)


def _check_final(final: Mapping, command: str | None) -> None:
    if final["ensemble"] == "auto":
        return
    if final["ensemble"] and final["repeats"] < 2:
        raise ConfigError(
            f"config key `final.ensemble`: an ensemble needs several retrains, but final.repeats is {final['repeats']}; "
            "set final.repeats to 2 or more, or final.ensemble: false"
        )
    if final["ensemble"] and command is not None:
        raise ConfigError(
            "config key `final.ensemble`: only the built-in trainer's models can be combined (a custom trainer.command "
            "writes models snaketune cannot read); use final.ensemble: false (repeats still report mean and std)"
        )


def _check_select(cfg: Mapping) -> None:
    top_k = cfg["select"]["top_k"]
    if top_k == 0:
        return
    from snaketune.plan import plan_brackets, plan_trials

    if cfg["search"]["schedule"] == "none":
        n = len(plan_trials(cfg))
    else:
        n = sum(len(b.trials) for b in plan_brackets(cfg))
    if top_k > n:
        raise ConfigError(
            f"config key `select.top_k` ({top_k}) is larger than the study's {n} trial(s): it re-evaluates the top_k best "
            f"trials; use a value from 1 to {n}, or 0 for off"
        )


def _check_schedule(space: SearchSpace, search: Mapping) -> None:
    epochs = space["epochs"] if "epochs" in space.names else None
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
        if isinstance(p, FloatRange) and p.name in INT_PARAMS:
            raise ConfigError(f"search_space.{p.name}: must be `type: int` for the built-in trainer, not float")
        for v in values:
            HParams(**{p.name: v}).validate(key="search_space.{}")
    metric, direction = objective["metric"], objective["direction"]
    if metric not in BUILTIN_METRICS:
        raise ConfigError(
            f"config key `objective.metric`: the built-in trainer reports {', '.join(BUILTIN_METRICS)}, "
            f"not {metric!r}{suggest(metric, list(BUILTIN_METRICS))}"
        )
    if BUILTIN_METRICS[metric] != direction:
        raise ConfigError(f"config key `objective.direction`: {metric} should be {BUILTIN_METRICS[metric]}d, not {direction}d")


# Sources whose examples are feature vectors, never (channels, height, width) images; npz may be either.
FLAT_SOURCES = ("digits", "mnist1d", "synthetic", "csv")


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
