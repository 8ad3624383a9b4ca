"""Search spaces: parse the config's ``search_space`` and enumerate or sample it.

The syntax follows Optuna's vocabulary::

    lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true, grid: [0.001, 0.01, 0.1]}
    n_layers: {type: int, low: 1, high: 5}
    activation: [relu, gelu]          # a bare list is categorical
    epochs: 50                        # a scalar is fixed

Every parameter validates itself on construction and names the offending key and
values in its error, so a bad search space fails before any job runs.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from snaketune.errors import ConfigError

Scalar = Any  # bool | int | float | str | None

# A grid larger than this is almost certainly a typo (a missing `grid:` on a wide int range).
# (A study's size is bounded before its grid is built: snaketune.config.MAX_TRIALS.)
MAX_GRID_SIZE = 1_000_000
MAX_INT_RANGE_GRID = 1_000
# A number in exponent notation without a dot or without an exponent sign (1e-4, 1.5e3): YAML 1.2
# reads it as a float, PyYAML (YAML 1.1, Snakemake's loader) as text.
EXPONENT_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")
# A number as text where a number is declared: Snakemake's --config "search={trials_per_job: 14}"
# hands nested values over as text ('14').
INT_TEXT = re.compile(r"[-+]?[0-9]+")
FLOAT_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
RANGE_TYPES = {"float": float, "int": int}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_scalar(x: Any) -> bool:
    return x is None or isinstance(x, (bool, int, float, str))


def _check_values(key: str, values: Sequence[Any], what: str) -> None:
    """Every value finite (no .inf or .nan: no trial could use it), and listed once (a grid would run
    the same trial twice). 1, 1.0 and true are different values, as for trial ids."""
    seen = set()
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            every = f"every {what} " if len(values) > 1 else ""
            raise ConfigError(f"{key}: {every}must be a finite number (not .inf or .nan), but got {v!r}")
        if (type(v), v) in seen:
            raise ConfigError(f"{key}: {v!r} is listed twice; list each {what} once")
        seen.add((type(v), v))


def as_declared(value: Any, kind: type) -> Any:
    """A config value read as the ``kind`` (int or float) it is declared to be, as YAML 1.2 and JSON
    Schema read numbers: exponent text (``1e-4``, which PyYAML reads as text) is a float, a number
    as text (``'14'``: Snakemake's ``--config`` hands nested values over as text) is that number,
    and a whole float (``2.0``) where an integer is declared is that integer. Anything else is
    returned as it is, for the checks to judge (``2.5`` for an integer stays an error, ``true`` is
    no number)."""
    if isinstance(value, str):
        text = value.strip()
        if kind is int and INT_TEXT.fullmatch(text):
            return int(text)
        if FLOAT_TEXT.fullmatch(text):
            value = float(text)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def typed_spec(spec: Any, declared: type | None = None) -> Any:
    """One ``search_space`` entry with its numbers read by their declared type (:func:`as_declared`):
    a range's ``low``, ``high``, ``step`` and ``grid`` by its ``type``, and the values and choices of
    a parameter the trainer declares ``int`` or ``float`` (the built-in trainer's, snaketune.hparams).
    A custom trainer's values and choices are passed as written: ``"1e3"`` stays text.
    """
    if isinstance(spec, Mapping) and spec.get("type") in RANGE_TYPES:
        kind = RANGE_TYPES[spec["type"]]
        out = {k: as_declared(v, kind) if k in ("low", "high", "step") else v for k, v in spec.items()}
        if isinstance(out.get("grid"), list):
            out["grid"] = [as_declared(v, kind) for v in out["grid"]]
        return out
    if declared is None:
        return spec
    if isinstance(spec, Mapping) and isinstance(spec.get("choices"), list):
        return {**spec, "choices": [as_declared(v, declared) for v in spec["choices"]]}
    if isinstance(spec, list):
        return [as_declared(v, declared) for v in spec]
    return as_declared(spec, declared)


@dataclass(frozen=True)
class Fixed:
    """A value every trial gets."""

    name: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_values(f"search_space.{self.name}", [self.value], "value")

    def grid_values(self) -> list[Scalar]:
        return [self.value]

    def sample(self, rng: np.random.Generator) -> Scalar:
        return self.value


@dataclass(frozen=True)
class Categorical:
    """One of a list of choices."""

    name: str
    choices: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise ConfigError(
                f"search_space.{self.name}: `choices` is empty; give at least one value, e.g. {self.name}: [relu, gelu]"
            )
        for c in self.choices:
            if not _is_scalar(c):
                raise ConfigError(
                    f"search_space.{self.name}: every choice must be a number, string, boolean or null, but got {c!r}"
                )
        _check_values(f"search_space.{self.name}", self.choices, "choice")

    def grid_values(self) -> list[Scalar]:
        return list(self.choices)

    def sample(self, rng: np.random.Generator) -> Scalar:
        return self.choices[int(rng.integers(len(self.choices)))]


@dataclass(frozen=True)
class FloatRange:
    """A float in [low, high], uniform or log-uniform (``log: true``), optionally stepped."""

    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    grid: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        key = f"search_space.{self.name}"
        for attr in ("low", "high"):
            v = getattr(self, attr)
            if not _is_number(v) or not math.isfinite(v):
                raise ConfigError(f"{key}.{attr}: must be a finite number, but got {v!r}")
        if not self.low <= self.high:
            raise ConfigError(f"{key}: `low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ConfigError(f"{key}: `log: true` needs `low > 0`, but got low={self.low}")
        if self.step is not None:
            if not _is_number(self.step) or not math.isfinite(self.step) or self.step <= 0:
                raise ConfigError(f"{key}.step: must be a positive number, but got {self.step!r}")
            if self.log:
                raise ConfigError(f"{key}: `step` and `log: true` cannot be combined (as in Optuna); drop one")
            rest = math.fmod(self.high - self.low, self.step)  # 0, or a hair below step when it divides
            if min(rest, self.step - rest) > 1e-9 * max(self.step, self.high - self.low):
                raise ConfigError(
                    f"{key}: `step` {self.step} must divide high - low = {self.high - self.low:g}, so that `high` is a "
                    f"value of the range; e.g. high: {self.high - rest:g}"
                )
        _check_grid(key, self.grid, self.low, self.high, float)

    def grid_values(self) -> list[Scalar]:
        if self.grid is None:
            raise ConfigError(
                f"search_space.{self.name}: grid search cannot enumerate a float range "
                f"[{self.low}, {self.high}]; add the values to try, e.g. "
                f"`grid: [{self.low}, {self.high}]`, or use search.method: random"
            )
        return list(self.grid)

    def sample(self, rng: np.random.Generator) -> float:
        if self.low == self.high:
            return float(self.low)
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.step is not None:
            n = int(math.floor((self.high - self.low) / self.step + 1e-9))
            return float(self.low + self.step * int(rng.integers(n + 1)))
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high] (inclusive), uniform or log-uniform, with ``step``."""

    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    grid: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        key = f"search_space.{self.name}"
        for attr in ("low", "high", "step"):
            v = getattr(self, attr)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"{key}.{attr}: must be an integer for `type: int`, but got {v!r}")
        if not self.low <= self.high:
            raise ConfigError(f"{key}: `low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.step < 1:
            raise ConfigError(f"{key}.step: must be >= 1, but got {self.step}")
        if self.log and self.low < 1:
            raise ConfigError(f"{key}: `log: true` needs `low >= 1` for an int, but got low={self.low}")
        if self.log and self.step != 1:
            raise ConfigError(f"{key}: `step` and `log: true` cannot be combined (as in Optuna); drop one")
        if (self.high - self.low) % self.step:
            high = self.high - (self.high - self.low) % self.step
            raise ConfigError(
                f"{key}: `step` {self.step} must divide high - low = {self.high - self.low}, so that `high` is a value "
                f"of the range; e.g. high: {high}"
            )
        _check_grid(key, self.grid, self.low, self.high, int)

    def grid_values(self) -> list[Scalar]:
        if self.grid is not None:
            return list(self.grid)
        values = list(range(self.low, self.high + 1, self.step))
        if len(values) > MAX_INT_RANGE_GRID:
            raise ConfigError(
                f"search_space.{self.name}: the int range [{self.low}, {self.high}] has {len(values)} "
                f"values, too many for a grid; add `grid: [...]` with the values to try"
            )
        return values

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            # Log-uniform over the integers, as Optuna does: widen by half a step on each side.
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            v = int(round(math.exp(rng.uniform(lo, hi))))
            return min(max(v, self.low), self.high)
        n = (self.high - self.low) // self.step
        return int(self.low + self.step * int(rng.integers(n + 1)))


Param = Fixed | Categorical | FloatRange | IntRange

_RANGE_KEYS = {"type", "low", "high", "log", "step", "grid"}
_CATEGORICAL_KEYS = {"type", "choices"}


def _check_grid(key: str, grid: Sequence[Any] | None, low: float, high: float, kind: type) -> None:
    if grid is None:
        return
    if len(grid) == 0:
        raise ConfigError(f"{key}.grid: is empty; list the values to try, or remove `grid:`")
    for v in grid:
        ok = _is_number(v) and (kind is float or isinstance(v, int))
        if not ok:
            raise ConfigError(f"{key}.grid: every value must be {'an integer' if kind is int else 'a number'}, but got {v!r}")
    _check_values(f"{key}.grid", grid, "value")
    for v in grid:
        if not low <= v <= high:
            raise ConfigError(f"{key}.grid: value {v} lies outside [low={low}, high={high}]")


def parse_param(name: str, spec: Any) -> Param:
    """Turn one ``search_space`` entry into a parameter object."""
    key = f"search_space.{name}"
    if _is_scalar(spec):
        return Fixed(name, spec)
    if isinstance(spec, list):
        return Categorical(name, tuple(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{key}: expected a value, a list of choices or a mapping with `type:`, but got {spec!r}")
    kind = spec.get("type")
    if kind == "categorical":
        unknown = set(spec) - _CATEGORICAL_KEYS
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)} for `type: categorical`; valid: choices")
        choices = spec.get("choices")
        if not isinstance(choices, list):
            raise ConfigError(f"{key}.choices: must be a list, but got {choices!r}")
        return Categorical(name, tuple(choices))
    if kind in ("float", "int"):
        unknown = set(spec) - _RANGE_KEYS
        if unknown:
            raise ConfigError(
                f"{key}: unknown key(s) {sorted(unknown)} for `type: {kind}`; valid: {sorted(_RANGE_KEYS - {'type'})}"
            )
        for req in ("low", "high"):
            if req not in spec:
                raise ConfigError(f"{key}: `type: {kind}` needs `{req}`")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{key}.log: must be true or false, but got {log!r}")
        grid = spec.get("grid")
        if grid is not None and not isinstance(grid, list):
            raise ConfigError(f"{key}.grid: must be a list of values, but got {grid!r}")
        grid_t = tuple(grid) if grid is not None else None
        if kind == "float":
            low, high = spec["low"], spec["high"]
            low = float(low) if _is_number(low) else low
            high = float(high) if _is_number(high) else high
            return FloatRange(name, low, high, log, spec.get("step"), grid_t)
        return IntRange(name, spec["low"], spec["high"], log, spec.get("step", 1), grid_t)
    raise ConfigError(
        f"{key}.type: must be one of float, int, categorical, but got {kind!r}"
        + ("" if "type" in spec else " (a mapping needs `type:`; a bare list is categorical, a scalar is fixed)")
    )


@dataclass(frozen=True)
class SearchSpace:
    """An ordered collection of parameters (order = config order)."""

    params: tuple[Param, ...]

    @classmethod
    def from_config(cls, spec: Any) -> SearchSpace:
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError("search_space: must be a non-empty mapping of parameter name to value, list or range")
        params = []
        for name, value in spec.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"search_space: parameter name {name!r} must be an identifier (letters, digits, underscore)")
            params.append(parse_param(name, value))
        return cls(tuple(params))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def grid_size(self) -> int:
        return math.prod(len(p.grid_values()) for p in self.params)

    def grid(self) -> list[dict[str, Scalar]]:
        """Every combination, in config order (the last parameter varies fastest)."""
        values = [p.grid_values() for p in self.params]
        size = math.prod(len(v) for v in values)
        if size > MAX_GRID_SIZE:
            raise ConfigError(f"search_space: the grid has {size} combinations (more than {MAX_GRID_SIZE}); narrow it")
        return [dict(zip(self.names, combo)) for combo in itertools.product(*values)]

    def sample(self, seed: int, index: int) -> dict[str, Scalar]:
        """The random-search trial ``index``: drawn from its own seed, so it never depends on n_trials."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
        return {p.name: p.sample(rng) for p in self.params}

    def searched(self) -> list[Param]:
        """The parameters that vary (not Fixed)."""
        return [p for p in self.params if not isinstance(p, Fixed)]
