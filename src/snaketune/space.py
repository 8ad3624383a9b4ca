"""Search spaces: parse the config's ``search_space`` and enumerate or sample it.

The syntax follows Optuna's vocabulary::

    lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true, grid: [0.001, 0.01, 0.1]}
    n_layers: {type: int, low: 1, high: 5}
    activation: [relu, gelu]          # a bare list is categorical
    epochs: 50                        # a scalar is fixed
    momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}   # conditional

A parameter with ``when:`` exists only in the trials where its condition holds on the other
parameters' values (:class:`Condition`); elsewhere it is *inactive*: absent from the trial's
parameters, so never enumerated, sampled, hashed into an id nor handed to the trainer.

Every parameter validates itself on construction and names the offending key and
values in its error, so a bad search space fails before any job runs.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from snaketune.errors import ConfigError, suggest

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
    if isinstance(spec, Mapping) and "value" in spec:
        return {**spec, "value": as_declared(spec["value"], declared)}
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


def _same(a: Any, b: Any) -> bool:
    """A parameter's value matches a condition's: numbers by value (4 == 4.0), a boolean only a
    boolean (true is not 1), anything else by type and value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Clause:
    """One key of a ``when:`` mapping: parameter ``param`` takes one of ``values``, or lies in
    [``low``, ``high``] (``{min: .., max: ..}``; either may be open)."""

    param: str
    values: tuple[Scalar, ...] | None = None
    low: float | None = None
    high: float | None = None

    def holds(self, value: Any) -> bool:
        if self.values is not None:
            return any(_same(value, v) for v in self.values)
        if not _is_number(value):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def text(self) -> str:
        """As the config wrote it: ``optimizer: sgd``, ``n_layers: {min: 4}``."""
        if self.values is not None:
            shown = self.values[0] if len(self.values) == 1 else list(self.values)
            return f"{self.param}: {shown}"
        bounds = ", ".join(f"{k}: {v}" for k, v in (("min", self.low), ("max", self.high)) if v is not None)
        return f"{self.param}: {{{bounds}}}"


@dataclass(frozen=True)
class Condition:
    """A parameter's ``when:``: it is active when every clause holds on the active values of the
    parameters named (a parameter that is itself inactive satisfies no clause)."""

    clauses: tuple[Clause, ...]

    @property
    def parents(self) -> list[str]:
        return [c.param for c in self.clauses]

    def holds(self, params: Mapping[str, Any]) -> bool:
        return all(c.param in params and c.holds(params[c.param]) for c in self.clauses)

    def text(self) -> str:
        return "{" + ", ".join(c.text() for c in self.clauses) + "}"


def parse_when(name: str, spec: Any) -> Condition:
    """``when: {optimizer: sgd}``, ``{optimizer: [sgd, adamw]}`` (one of them), ``{n_layers: {min: 4}}``
    (``min``/``max``, inclusive); several keys must all hold."""
    key = f"search_space.{name}.when"
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(
            f"{key}: must be a mapping of parameter: value(s), e.g. `when: {{optimizer: sgd}}`, "
            f"`when: {{optimizer: [sgd, adamw]}}` or `when: {{n_layers: {{min: 4}}}}`, but got {spec!r}"
        )
    clauses = []
    for other, want in spec.items():
        where = f"{key}.{other}"
        if isinstance(want, Mapping):
            unknown = set(want) - {"min", "max"}
            if unknown or not want:
                raise ConfigError(f"{where}: a range condition takes `min` and/or `max`, but got {dict(want)!r}")
            for bound, v in want.items():
                if not _is_number(v) or not math.isfinite(v):
                    raise ConfigError(f"{where}.{bound}: must be a finite number, but got {v!r}")
            low, high = want.get("min"), want.get("max")
            if low is not None and high is not None and low > high:
                raise ConfigError(f"{where}: `min <= max` must hold, but got (min={low}, max={high})")
            clauses.append(Clause(str(other), low=low, high=high))
            continue
        values = want if isinstance(want, list) else [want]
        if not values or not all(_is_scalar(v) for v in values):
            raise ConfigError(
                f"{where}: must be a value, a list of values (one of them) or {{min: .., max: ..}}, but got {want!r}"
            )
        clauses.append(Clause(str(other), values=tuple(values)))
    return Condition(tuple(clauses))


def parse_param(name: str, spec: Any) -> Param:
    """Turn one ``search_space`` entry into a parameter object (its ``when:`` aside: :func:`parse_entry`)."""
    key = f"search_space.{name}"
    if _is_scalar(spec):
        return Fixed(name, spec)
    if isinstance(spec, list):
        return Categorical(name, tuple(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{key}: expected a value, a list of choices or a mapping with `type:`, but got {spec!r}")
    kind = spec.get("type")
    if "value" in spec and kind is None:  # the mapping form of a fixed value, for `when:`
        unknown = set(spec) - {"value"}
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)} for a fixed `value:`; valid: value, when")
        if not _is_scalar(spec["value"]):
            raise ConfigError(f"{key}.value: must be a number, string, boolean or null, but got {spec['value']!r}")
        return Fixed(name, spec["value"])
    if kind == "categorical":
        unknown = set(spec) - _CATEGORICAL_KEYS
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)} for `type: categorical`; valid: choices, when")
        choices = spec.get("choices")
        if not isinstance(choices, list):
            raise ConfigError(f"{key}.choices: must be a list, but got {choices!r}")
        return Categorical(name, tuple(choices))
    if kind in ("float", "int"):
        unknown = set(spec) - _RANGE_KEYS
        if unknown:
            raise ConfigError(
                f"{key}: unknown key(s) {sorted(unknown)} for `type: {kind}`; valid: {sorted(_RANGE_KEYS - {'type'})}, when"
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
        + (
            ""
            if "type" in spec
            else " (a mapping needs `type:`, or `value:` for a fixed value; a bare list is categorical, a scalar is fixed)"
        )
    )


def parse_entry(name: str, spec: Any) -> tuple[Param, Condition | None]:
    """One ``search_space`` entry: its parameter, and its ``when:`` condition if it has one."""
    if isinstance(spec, Mapping) and "when" in spec:
        rest = {k: v for k, v in spec.items() if k != "when"}
        if not rest:
            raise ConfigError(
                f"search_space.{name}: has a `when:` but no values; e.g. `{name}: {{type: categorical, choices: [..], "
                f"when: ..}}`, `{{type: float, low: .., high: .., when: ..}}` or `{{value: .., when: ..}}`"
            )
        return parse_param(name, rest), parse_when(name, spec["when"])
    return parse_param(name, spec), None


def _domain_text(p: Param, grid: bool) -> str:
    if isinstance(p, IntRange) and not (grid and p.grid is not None):
        return f"{p.low} to {p.high}" + (f" in steps of {p.step}" if p.step != 1 else "")
    return ", ".join(map(str, p.grid_values()))


def _int_lattice(p: IntRange, low: float, high: float) -> list[int]:
    """The smallest and the largest value of ``p``'s range within [low, high] (none: empty)."""
    lo = p.low if low == -math.inf else max(p.low, math.ceil(low))
    hi = p.high if high == math.inf else min(p.high, math.floor(high))
    first = p.low + -(-(lo - p.low) // p.step) * p.step
    last = p.low + ((hi - p.low) // p.step) * p.step
    return [first, last] if first <= last else []


def _values_meeting(p: Param, clause: Clause, grid: bool) -> bool:
    """Whether ``p`` can take a value that ``clause`` accepts (with ``grid``: among its grid values)."""
    if isinstance(p, IntRange) and not (grid and p.grid is not None):
        if clause.values is not None:
            return any(
                _is_number(v) and float(v).is_integer() and p.low <= v <= p.high and (int(v) - p.low) % p.step == 0
                for v in clause.values
            )
        return bool(
            _int_lattice(p, -math.inf if clause.low is None else clause.low, math.inf if clause.high is None else clause.high)
        )
    return any(clause.holds(v) for v in p.grid_values())


def _representatives(p: Param, clauses: Sequence[Clause], grid: bool) -> list[Scalar]:
    """Values of ``p`` that between them meet every combination of ``clauses`` that some value of
    ``p`` meets: all values of a finite domain; of an int range, the values next to each bound."""
    if not isinstance(p, IntRange) or (grid and p.grid is not None):
        return p.grid_values()
    points: set[int] = set()
    cuts = [float(p.low), float(p.high)]
    for c in clauses:
        cuts += [float(v) for v in (c.values or ()) if _is_number(v)]
        cuts += [float(v) for v in (c.low, c.high) if v is not None]
    for t in cuts:
        for near in (t - 1, t, t + 1):
            points.update(_int_lattice(p, near, math.inf)[:1] + _int_lattice(p, -math.inf, near)[1:])
    return sorted(points)


# Conditions whose every combination of the parameters they name is more than this are checked clause
# by clause only (whether each can hold), not jointly.
MAX_CONDITION_SCENARIOS = 100_000


@dataclass(frozen=True)
class SearchSpace:
    """An ordered collection of parameters (order = config order), some of them conditional
    (``conditions``: parameter name -> its ``when:``)."""

    params: tuple[Param, ...]
    conditions: Mapping[str, Condition] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = self.names
        for name, cond in self.conditions.items():
            for c in cond.clauses:
                where = f"search_space.{name}.when.{c.param}"
                if c.param == name:
                    raise ConfigError(f"{where}: a parameter cannot depend on itself; name another parameter")
                if c.param not in names:
                    raise ConfigError(
                        f"{where}: {c.param!r} is not a parameter of search_space{suggest(c.param, names)}; "
                        f"conditions name other parameters: {', '.join(n for n in names if n != name)}"
                    )
                other = self[c.param]
                if isinstance(other, FloatRange):
                    raise ConfigError(
                        f"{where}: {c.param} is a float range, whose values a condition cannot match; condition on a "
                        "categorical, int or fixed parameter (e.g. make it a list of choices)"
                    )
                if c.values is None and not all(_is_number(v) for v in _sample_values(other)):
                    raise ConfigError(
                        f"{where}: `min`/`max` need a numeric parameter, but {c.param} takes {_domain_text(other, False)}; "
                        f"list the values instead, e.g. `{c.param}: [{_domain_text(other, False).split(', ')[0]}]`"
                    )
                if not _values_meeting(other, c, grid=False):
                    raise ConfigError(f"{where}: {c.text()} can never hold: {c.param} takes {_domain_text(other, False)}")
        self.order  # noqa: B018  (raises on a cycle)
        self.check_reachable(grid=False)

    @classmethod
    def from_config(cls, spec: Any) -> SearchSpace:
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError("search_space: must be a non-empty mapping of parameter name to value, list or range")
        params, conditions = [], {}
        for name, value in spec.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"search_space: parameter name {name!r} must be an identifier (letters, digits, underscore)")
            param, cond = parse_entry(name, value)
            params.append(param)
            if cond is not None:
                conditions[name] = cond
        return cls(tuple(params), conditions)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def conditional(self) -> bool:
        """Whether some parameter has a ``when:``."""
        return bool(self.conditions)

    @cached_property
    def order(self) -> tuple[str, ...]:
        """The parameter names, each after those its condition names (config order where free)."""
        placed: list[str] = []
        left = list(self.names)
        while left:
            free = [n for n in left if all(q in placed for q in self._parents(n))]
            if not free:
                raise ConfigError(f"search_space: the `when:` conditions form a cycle: {self._cycle(left)}; break it")
            placed.append(free[0])
            left.remove(free[0])
        return tuple(placed)

    def _parents(self, name: str) -> list[str]:
        cond = self.conditions.get(name)
        return cond.parents if cond is not None else []

    def _cycle(self, left: Sequence[str]) -> str:
        path = [left[0]]
        while True:
            nxt = next(q for q in self._parents(path[-1]) if q in left)
            if nxt in path:
                loop = path[path.index(nxt) :] + [nxt]
                pairs = list(zip(loop, loop[1:]))
                return f"{pairs[0][0]} depends on {pairs[0][1]}" + "".join(f", {x} on {y}" for x, y in pairs[1:])
            path.append(nxt)

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether parameter ``name`` exists given the (active) values ``params`` of the others."""
        cond = self.conditions.get(name)
        return cond is None or cond.holds(params)

    def active(self, params: Mapping[str, Any]) -> dict[str, Scalar]:
        """``params`` without the inactive parameters, in config order."""
        kept: dict[str, Any] = {}
        for name in self.order:
            if name in params and self.is_active(name, kept):
                kept[name] = params[name]
        return {n: kept[n] for n in self.names if n in kept}

    def check_reachable(self, grid: bool) -> None:
        """Every conditional parameter is active in some trial (with ``grid``: some grid point); else
        a ConfigError naming it. Skipped when the conditions have too many combinations to try."""
        if not self.conditions:
            return
        controllers = {c.param: [] for cond in self.conditions.values() for c in cond.clauses}
        for cond in self.conditions.values():
            for c in cond.clauses:
                controllers[c.param].append(c)
        reps = {n: _representatives(self[n], cl, grid) for n, cl in controllers.items()}
        if math.prod(len(v) for v in reps.values()) > MAX_CONDITION_SCENARIOS:
            return
        reached: set[str] = set()
        order = list(self.order)

        def walk(i: int, assigned: dict[str, Any]) -> None:
            if i == len(order) or len(reached) == len(order):
                return
            name = order[i]
            if not self.is_active(name, assigned):
                return walk(i + 1, assigned)
            reached.add(name)
            for v in reps.get(name, [None]):
                walk(i + 1, {**assigned, name: v} if name in reps else assigned)

        walk(0, {})
        for name in order:
            if name not in reached:
                where = " in the grid (grid search takes only the `grid:` values)" if grid else ""
                raise ConfigError(
                    f"search_space.{name}.when: {self.conditions[name].text()} can never hold{where}: no combination of "
                    f"{', '.join(self.conditions[name].parents)} makes {name} active; fix or remove the condition"
                )

    def least_value(self, name: str, cond: Condition | None) -> Scalar | None:
        """The smallest value numeric parameter ``name`` takes where ``cond``'s clauses on it hold
        (None: none, or not numeric)."""
        clauses = [c for c in (cond.clauses if cond else ()) if c.param == name]
        values = [v for v in _representatives(self[name], clauses, grid=False) if all(c.holds(v) for c in clauses)]
        return min(values) if values and all(_is_number(v) for v in values) else None

    def grid_size(self) -> int:
        if not self.conditions:
            return math.prod(len(p.grid_values()) for p in self.params)
        # Only the parameters conditions name need enumerating: the others multiply.
        controllers = {q for cond in self.conditions.values() for q in cond.parents}
        order = [self[n] for n in self.order]

        def count(i: int, assigned: dict[str, Any]) -> int:
            if i == len(order):
                return 1
            p = order[i]
            if not self.is_active(p.name, assigned):
                return count(i + 1, assigned)
            values = p.grid_values()
            if p.name in controllers:
                return sum(count(i + 1, {**assigned, p.name: v}) for v in values)
            return len(values) * count(i + 1, assigned)

        return count(0, {})

    def grid(self) -> list[dict[str, Scalar]]:
        """Every combination, in config order (the last parameter varies fastest); with conditions,
        every combination of the active parameters (an inactive one takes no value, so no two
        points differ only in one)."""
        if not self.conditions:
            values = [p.grid_values() for p in self.params]
            size = math.prod(len(v) for v in values)
        else:
            size = self.grid_size()
        if size > MAX_GRID_SIZE:
            raise ConfigError(f"search_space: the grid has {size} combinations (more than {MAX_GRID_SIZE}); narrow it")
        if not self.conditions:
            return [dict(zip(self.names, combo)) for combo in itertools.product(*values)]
        order = [self[n] for n in self.order]
        points: list[dict[str, Scalar]] = []

        def walk(i: int, assigned: dict[str, Any]) -> None:
            if i == len(order):
                points.append({n: assigned[n] for n in self.names if n in assigned})
                return
            p = order[i]
            if not self.is_active(p.name, assigned):
                return walk(i + 1, assigned)
            for v in p.grid_values():
                walk(i + 1, {**assigned, p.name: v})

        walk(0, {})
        return points

    def sample(self, seed: int, index: int) -> dict[str, Scalar]:
        """The random-search trial ``index``: drawn from its own seed, so it never depends on n_trials.
        Every parameter is drawn, in config order, and the inactive ones dropped: an active
        parameter's value never depends on the conditions."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
        drawn = {p.name: p.sample(rng) for p in self.params}
        return self.active(drawn) if self.conditions else drawn

    def searched(self) -> list[Param]:
        """The parameters that vary (not Fixed)."""
        return [p for p in self.params if not isinstance(p, Fixed)]


def _sample_values(p: Param) -> list[Scalar]:
    """A few of ``p``'s values, enough to tell their kind (numbers or not)."""
    if isinstance(p, IntRange | FloatRange):
        return [p.low, p.high]
    return p.grid_values()
