"""The report's figures: pure functions from trial records to PNG files.

Each function takes the records of ``records.records_in_completion_order`` (typed parameters,
``status``, ``objective``, ``budget`` ...), draws with matplotlib's Agg backend and writes one PNG
atomically. A figure that cannot be drawn meaningfully (every trial failed, one parameter, a custom
trainer without ``history.csv``) becomes a figure that says why, never an error. matplotlib is
imported inside the functions: the trial runner and the trainer never pay for it.
"""

from __future__ import annotations

import html
import io
import math
import os
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from snaketune.files import atomic_write_bytes, atomic_write_text, read_json
from snaketune.layout import Layout, run_name
from snaketune.records import Objective, best_record, is_ok, rank_budget, ranked
from snaketune.space import Categorical, FloatRange, IntRange, Param, SearchSpace
from snaketune.trial_files import read_history

DPI = 110
MIN_IMPORTANCE_TRIALS = 5  # fewer successful trials say nothing about importance
FAILED_COLOUR = "#d62728"
LABEL_CHARS = 24  # longer categorical values are shortened on axes


# -- helpers ---------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": DPI, "axes.titlesize": 11, "axes.labelsize": 10})
    return plt


def _save(fig, path: str | os.PathLike) -> None:
    plt = _pyplot()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tight layout on odd figure sizes
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def message_figure(path: str | os.PathLike, title: str, message: str) -> None:
    """A figure that says why the plot it stands for cannot be drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10, color="#444444", transform=ax.transAxes)
    _save(fig, path)


def draw_or_explain(
    figures: Mapping[str, Callable[[str | os.PathLike], None]], paths: Mapping[str, str | os.PathLike], log: TextIO
) -> None:
    """Draw each of ``figures`` (name: a function that draws to a path) to its path in ``paths``
    (a job's ``snakemake.output``), and write to ``log`` how long each took. A figure whose drawing
    raises becomes a message figure that names the error and the log, which gets the traceback: a
    figure never stops the report."""
    for name, draw in figures.items():
        t0 = time.perf_counter()
        try:
            draw(paths[name])
        except Exception as e:  # a figure must never stop the report: say what went wrong instead
            traceback.print_exc(file=log)
            where = getattr(log, "name", "the job's log")
            message_figure(paths[name], name, f"This figure failed: {type(e).__name__}: {e}\nSee {where}.")
        print(f"{paths[name]}: {time.perf_counter() - t0:.2f} s", file=log)


def _text(v: Any) -> str:
    """User data (a value, a class name, a metric) as plain text: "$(x)" must not become mathtext."""
    return str(v).replace("\n", " ").replace("$", r"\$")


def _label(v: Any) -> str:
    s = str(v).replace("\n", " ")
    return _text(s if len(s) <= LABEL_CHARS else s[: LABEL_CHARS - 1] + "…")


def _num(v: float) -> str:
    return f"{v:.3g}"


def _ok(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if is_ok(r)]


def _failed(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if not is_ok(r)]


def _is_log(p: Param) -> bool:
    return isinstance(p, (FloatRange, IntRange)) and p.log


def _mark_failed(ax, xs: Sequence[float], n_failed_label: bool = True) -> None:
    """Failed trials as red crosses along the bottom edge: they have no objective."""
    if not xs:
        return
    import matplotlib.transforms as mtransforms

    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ax.scatter(
        xs,
        [0.03] * len(xs),
        marker="x",
        color=FAILED_COLOUR,
        transform=trans,
        clip_on=False,
        zorder=5,
        label=f"failed ({len(xs)})" if n_failed_label else None,
    )


# -- optimisation history ----------------------------------------------------------------------------


def plot_optimisation_history(
    path: str | os.PathLike,
    records: Sequence[Mapping[str, Any]],
    *,
    objective: Objective,
    study: str = "",
) -> None:
    """The objective of every trial in completion order, the best-so-far line, failed trials marked.

    Under a multi-fidelity schedule points are coloured by budget and the best-so-far line follows
    the trials at the largest budget (only they can win)."""
    title = f"Optimisation history{f' of {_text(study)}' if study else ''}"
    if not records:
        message_figure(path, title, "The study has no trials yet.")
        return
    plt = _pyplot()
    import matplotlib as mpl

    fig, ax = plt.subplots(figsize=(8, 4.5))
    better = max if objective.direction == "maximize" else min
    budgets = sorted({r["budget"] for r in records if r.get("budget") is not None})
    top = budgets[-1] if budgets else None
    xs_failed = []
    best_so_far: list[tuple[int, float]] = []
    best_value: float | None = None
    cmap = plt.get_cmap("viridis")
    ok_ids = {id(r) for r in _ok(records)}
    for b_index, budget in enumerate(budgets or [None]):
        pts = [(i + 1, r) for i, r in enumerate(records) if r.get("budget") == budget and id(r) in ok_ids]
        if not pts:
            continue
        colour = cmap(b_index / max(len(budgets) - 1, 1)) if budgets else "#1f77b4"
        label = f"budget {budget:g} epochs" if budget is not None else "trial"
        stds = [r.get("objective_std") for _, r in pts]
        if any(s is not None for s in stds):
            ax.errorbar(
                [x for x, _ in pts],
                [r["objective"] for _, r in pts],
                yerr=[s or 0.0 for s in stds],
                fmt="o",
                color=colour,
                ecolor="#999999",
                elinewidth=1,
                capsize=2,
                markersize=5,
                label=f"{label} (± std over {'folds' if any((r.get('folds') or 1) > 1 for _, r in pts) else 'seeds'})",
                zorder=3,
            )
        else:
            ax.scatter([x for x, _ in pts], [r["objective"] for _, r in pts], color=colour, s=22, label=label, zorder=3)
    for i, r in enumerate(records):
        if id(r) not in ok_ids:
            xs_failed.append(i + 1)
            continue
        if top is not None and r.get("budget") != top:
            continue
        value = float(r["objective"])
        best_value = value if best_value is None else better(best_value, value)
        best_so_far.append((i + 1, best_value))
    if best_so_far:
        xs = [x for x, _ in best_so_far] + [len(records)]
        ys = [y for _, y in best_so_far] + [best_so_far[-1][1]]
        suffix = f" at {top:g} epochs" if top is not None else ""
        ax.step(xs, ys, where="post", color="#ff7f0e", linewidth=2, label=f"best so far{suffix}", zorder=4)
    best = best_record(records, objective)
    if best is not None:
        x = next(i for i, r in enumerate(records) if r is best) + 1
        ax.scatter([x], [best["objective"]], marker="*", s=220, color="#ff7f0e", edgecolor="black", zorder=6)
        ax.annotate(f"best: {best['trial']}", (x, best["objective"]), textcoords="offset points", xytext=(8, -14), fontsize=9)
    _mark_failed(ax, xs_failed)
    if best is None:
        ax.text(0.5, 0.5, "no trial succeeded", ha="center", va="center", transform=ax.transAxes, color=FAILED_COLOUR)
        ax.set_yticks([])
    ax.set_xlim(0.5, len(records) + 0.5)
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("trial, in order of completion")
    ax.set_ylabel(f"{_text(objective.metric)} ({objective.direction})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


# -- parallel coordinates ------------------------------------------------------------------------------


@dataclass
class _Axis:
    """One vertical axis: where a value sits in [0, 1] and the labelled ticks."""

    name: str
    position: Any  # value -> float in [0, 1]
    ticks: list[tuple[float, str]] = field(default_factory=list)


def _numeric_marks(p: Param, values: Sequence[float]) -> tuple[list[float], bool, Any]:
    """The labelled ticks of a numeric parameter's axis (over its range and the values tried), whether
    the axis is log, and the position of a value on it in [0, 1]. Log axes: the decades inside, and
    the ends where they are not crowded by one; linear: five steps, whole numbers for an integer."""
    lo = min([p.low, *values]) if isinstance(p, (FloatRange, IntRange)) else min(values)
    hi = max([p.high, *values]) if isinstance(p, (FloatRange, IntRange)) else max(values)
    log = _is_log(p) and lo > 0
    f = math.log10 if log else float
    a, b = f(lo), f(hi)

    def position(v: Any) -> float:
        return 0.5 if b == a else (f(float(v)) - a) / (b - a)

    if b == a:
        return [lo], log, position
    if log:
        decades = [10.0**k for k in range(math.ceil(a - 1e-9), math.floor(b + 1e-9) + 1)]
        ends = [v for v in (lo, hi) if all(abs(position(v) - position(d)) >= 0.12 for d in decades)]
        return sorted({*ends, *decades}), log, position
    marks = [lo + (hi - lo) * k / 4 for k in range(5)]
    if isinstance(p, IntRange):
        marks = sorted({round(m) for m in marks})
    return marks, log, position


def _numeric_axis(p: Param, values: Sequence[float]) -> _Axis:
    marks, log, position = _numeric_marks(p, values)
    return _Axis(f"{p.name} (log)" if log else p.name, position, [(position(v), _num(v)) for v in marks])


def _categorical_axis(name: str, choices: Sequence[Any]) -> _Axis:
    index = {repr(c): i for i, c in enumerate(choices)}
    n = len(choices)

    def position(v: Any) -> float:
        return 0.5 if n == 1 else index[repr(v)] / (n - 1)

    return _Axis(name, position, [(position(c), _label(c)) for c in choices])


# A conditional parameter's value in a trial where it is inactive (absent from the trial's params).
INACTIVE = object()


def _conditional_axis(p: Param, records: Sequence[Mapping[str, Any]]) -> _Axis:
    """The axis of a conditional parameter: its values above, ``inactive`` at the bottom."""
    values = [r["params"][p.name] for r in records if p.name in r["params"]]
    if not values:
        return _Axis(p.name, lambda v: 0.0, [(0.0, "inactive")])
    inner = param_axis(p, values)

    def position(v: Any) -> float:
        return 0.0 if v is INACTIVE else 0.15 + 0.85 * inner.position(v)

    return _Axis(inner.name, position, [(0.0, "inactive")] + [(0.15 + 0.85 * y, t) for y, t in inner.ticks])


def param_axis(p: Param, values: Sequence[Any]) -> _Axis:
    """The axis of a searched parameter: log for log ranges, one tick per choice for categoricals."""
    if isinstance(p, Categorical) or not _all_numbers(values):  # (a value that is not a number: show them as they are)
        return _categorical_axis(p.name, _categories(p, values))
    return _numeric_axis(p, [float(v) for v in values])


def plot_parallel_coordinates(
    path: str | os.PathLike,
    records: Sequence[Mapping[str, Any]],
    space: SearchSpace,
    *,
    objective: Objective,
) -> None:
    """One line per trial through every searched parameter and the objective, coloured by the
    objective (the best trials drawn last, on top). Failed trials are grey dashed lines. A
    conditional parameter's axis has an ``inactive`` mark at the bottom for the trials without it."""
    title = "Parallel coordinates"
    params = space.searched()
    if not params:
        message_figure(path, title, "No parameter is searched: every value in search_space is fixed.")
        return
    always = [p for p in params if p.name not in space.conditions]
    with_params = [r for r in records if all(p.name in (r.get("params") or {}) for p in always)]
    if not with_params:
        message_figure(path, title, "No trial has results yet.")
        return
    plt = _pyplot()
    import matplotlib as mpl

    axes = [
        _conditional_axis(p, with_params)
        if p.name in space.conditions
        else param_axis(p, [r["params"][p.name] for r in with_params])
        for p in params
    ]
    ok = _ok(with_params)
    objectives = [float(r["objective"]) for r in ok]
    if objectives:
        lo, hi = min(objectives), max(objectives)
        obj = _Axis(_text(objective.metric), lambda v: 0.5 if hi == lo else (float(v) - lo) / (hi - lo))
        obj.ticks = [(obj.position(v), _num(v)) for v in sorted({lo + (hi - lo) * k / 4 for k in range(5)})]
        axes.append(obj)
    n = len(axes)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.7 * n + 1.5), 4.8))
    cmap = plt.get_cmap("viridis" if objective.direction == "maximize" else "viridis_r")
    norm = mpl.colors.Normalize(vmin=min(objectives), vmax=max(objectives)) if objectives else None
    if norm is not None and norm.vmin == norm.vmax:
        norm = mpl.colors.Normalize(vmin=norm.vmin - 0.5, vmax=norm.vmax + 0.5)
    for r in _failed(with_params):
        ys = [a.position(r["params"].get(p.name, INACTIVE)) for a, p in zip(axes, params)]
        ax.plot(range(len(ys)), ys, color="#bbbbbb", linestyle="--", linewidth=1, marker="x", markersize=5, zorder=1)
    # Worst first, best last: the lines that matter end up on top.
    for r in reversed(ranked(ok, objective)):
        ys = [a.position(r["params"].get(p.name, INACTIVE)) for a, p in zip(axes, params)]
        ys.append(axes[-1].position(r["objective"]))
        ax.plot(range(n), ys, color=cmap(norm(float(r["objective"]))), linewidth=1.6, alpha=0.85, zorder=2)
    for i, a in enumerate(axes):
        ax.axvline(i, color="black", linewidth=1, zorder=3)
        for y, text in a.ticks:
            ax.text(
                i - 0.04,
                y,
                text,
                ha="right",
                va="center",
                fontsize=8,
                zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1},
            )
            ax.plot([i - 0.02, i], [y, y], color="black", linewidth=1, zorder=3)
    ax.set_xticks(range(n))
    ax.set_xticklabels([a.name for a in axes], fontsize=9)
    ax.set_xlim(-0.6, n - 0.6)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    failed = len(_failed(with_params))
    ax.set_title(f"{title}: {len(ok)} trials" + (f", {failed} failed (grey, dashed)" if failed else ""))
    if norm is not None:
        fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02, label=_text(objective.metric))
    _save(fig, path)


# -- importances --------------------------------------------------------------------------------------


def importance_records(records: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], Any]:
    """The successful records whose objectives are comparable, and their budget: under a schedule
    those of ``records.rank_budget(records, MIN_IMPORTANCE_TRIALS)``, else all (budget None)."""
    ok = _ok(records)
    budget = rank_budget(records, MIN_IMPORTANCE_TRIALS)
    return (ok, None) if budget is None else ([r for r in ok if r.get("budget") == budget], budget)


def param_importances(
    records: Sequence[Mapping[str, Any]], space: SearchSpace, *, metric: str, direction: str
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Importances by Optuna's fANOVA and PED-ANOVA evaluators: ({evaluator: {param: importance}},
    {evaluator: why it failed})."""
    import optuna

    from snaketune.export import build_study

    varying = [p.name for p in space.searched() if len({repr(r["params"].get(p.name)) for r in records}) > 1]
    study = build_study(records, space, metric=metric, direction=direction, study_name="importances")
    evaluators = {
        "fANOVA": optuna.importance.FanovaImportanceEvaluator(seed=0),
        "PED-ANOVA": optuna.importance.PedAnovaImportanceEvaluator(),
    }
    # fANOVA fits one forest on the trials that hold every parameter asked for: given a conditional
    # one it would see only the trials where that one is active. It ranks the parameters active in
    # every trial; PED-ANOVA compares each parameter's values where it is present (measured with
    # Optuna 5.1).
    asked = {"fANOVA": [n for n in varying if n not in space.conditions]}
    out: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    for name, evaluator in evaluators.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(study, evaluator=evaluator, params=asked.get(name, varying))
            out[name] = {k: float(v) for k, v in imp.items()}
        except Exception as e:  # an evaluator's limits (too few trials, ...) must not stop the report
            errors[name] = f"{type(e).__name__}: {e}"
    return out, errors


def plot_importances(
    path: str | os.PathLike,
    records: Sequence[Mapping[str, Any]],
    space: SearchSpace,
    *,
    objective: Objective,
) -> None:
    """Horizontal bars: how much of the objective's variation each parameter explains (fANOVA) and
    how much it matters among the top trials (PED-ANOVA), both normalised to sum to 1."""
    title = "Parameter importances"
    subset, budget = importance_records(records)
    searched = [p.name for p in space.searched()]
    varying = [n for n in searched if len({repr(r["params"].get(n)) for r in subset}) > 1]
    if len(searched) < 2:
        why = f"Only one parameter is searched ({searched[0]})" if searched else "No parameter is searched"
        message_figure(path, title, f"{why}: importances compare two or more searched parameters.")
        return
    if len(subset) < MIN_IMPORTANCE_TRIALS:
        message_figure(
            path,
            title,
            f"{len(subset)} successful trial(s){f' at budget {budget:g}' if budget is not None else ''}: "
            f"importances need at least {MIN_IMPORTANCE_TRIALS}.",
        )
        return
    if len(varying) < 2:
        message_figure(path, title, f"Among the successful trials only {', '.join(varying) or 'no parameter'} varies.")
        return
    importances, errors = param_importances(subset, space, metric=objective.metric, direction=objective.direction)
    if not importances:
        message_figure(path, title, "Optuna's evaluators failed:\n" + "\n".join(f"{k}: {v}" for k, v in errors.items()))
        return
    plt = _pyplot()
    first = next(iter(importances.values()))
    names = sorted(varying, key=lambda n: first.get(n, 0.0))
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.55 * len(names) * len(importances)))
    height = 0.8 / len(importances)
    colours = ["#1f77b4", "#ff7f0e"]
    for k, (evaluator, imp) in enumerate(importances.items()):
        ys = [i + (k - (len(importances) - 1) / 2) * height for i in range(len(names))]
        vals = [imp.get(n, 0.0) for n in names]
        ax.barh(ys, vals, height=height, color=colours[k % 2], label=evaluator)
        for y, v in zip(ys, vals):
            ax.text(v + 0.01, y, f"{v:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("importance (normalised: sums to 1 per evaluator)")
    at = f" at budget {budget:g}" if budget is not None else ""
    conditional = "fANOVA" in importances and any(n in space.conditions for n in names)
    below = "\n(fANOVA: only the parameters active in every trial; PED-ANOVA: each where it is active)" if conditional else ""
    ax.set_title(f"{title} for {_text(objective.metric)}: {len(subset)} trials{at}{below}")
    note = "; ".join(f"{k} failed: {v}" for k, v in errors.items())
    ax.legend(loc="lower right", fontsize=8, title=_label(note) if note else None)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


# -- slices ---------------------------------------------------------------------------------------------


def plot_slices(
    path: str | os.PathLike,
    records: Sequence[Mapping[str, Any]],
    space: SearchSpace,
    *,
    objective: Objective,
) -> None:
    """The objective against each searched parameter (log x axis for log ranges; categorical values
    side by side), coloured by completion order; failed trials as red crosses at the bottom."""
    title = f"{_text(objective.metric)} against each parameter"
    params = space.searched()
    if not params:
        message_figure(path, "Slices", "No parameter is searched: every value in search_space is fixed.")
        return
    if not records:
        message_figure(path, "Slices", "The study has no trials yet.")
        return
    plt = _pyplot()
    import matplotlib as mpl
    import numpy as np

    ncols = min(3, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), sharey=True, squeeze=False)
    order = {id(r): i for i, r in enumerate(records)}
    cmap = plt.get_cmap("Blues")
    norm = mpl.colors.Normalize(vmin=-0.3 * len(records), vmax=max(len(records) - 1, 1))
    ok = _ok(records)
    best = best_record(records, objective)
    rng = np.random.default_rng(0)
    for k, p in enumerate(params):
        ax = axs[k // ncols][k % ncols]
        values = [r["params"][p.name] for r in records if p.name in (r.get("params") or {})]
        if not values:  # a conditional parameter no trial has had yet
            ax.text(0.5, 0.5, "inactive in every trial", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel(p.name)
            ax.set_xticks([])
            continue
        categorical = isinstance(p, Categorical) or not _all_numbers(values)
        if categorical:
            categories = _categories(p, values)
            labels = [_label(v) for v in categories]
            slot = {repr(v): i for i, v in enumerate(categories)}

            def x_of(v, slot=slot):
                return slot[repr(v)] + rng.uniform(-0.15, 0.15)

            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(
                labels, rotation=30 if max(map(len, labels)) > 6 else 0, ha="right" if len(labels) > 3 else "center"
            )
            ax.set_xlim(-0.5, len(labels) - 0.5)
        else:

            def x_of(v):
                return float(v)

            marks, log, _ = _numeric_marks(p, [float(v) for v in values])
            if log:
                ax.set_xscale("log")
            # The same ticks as the parallel coordinates: plain numbers, no crowded minor labels
            # (3×10¹4×10¹), whole numbers for an integer parameter.
            ax.set_xticks(marks, [_num(m) for m in marks])
            ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
        pts = [(x_of(r["params"][p.name]), float(r["objective"]), order[id(r)]) for r in ok if p.name in r["params"]]
        if pts:
            ax.scatter(
                [x for x, _, _ in pts],
                [y for _, y, _ in pts],
                c=[c for _, _, c in pts],
                cmap=cmap,
                norm=norm,
                s=24,
                edgecolor="#333333",
                linewidth=0.4,
                zorder=3,
            )
        if best is not None and p.name in best["params"]:
            ax.scatter(
                [x_of(best["params"][p.name])],
                [best["objective"]],
                marker="*",
                s=200,
                color="#ff7f0e",
                edgecolor="black",
                zorder=4,
            )
        _mark_failed(ax, [x_of(r["params"][p.name]) for r in _failed(records) if p.name in (r.get("params") or {})], k == 0)
        active = f" (in {len(values)} of {len(records)} trials)" if len(values) < len(records) else ""
        ax.set_xlabel((f"{p.name} (log)" if _is_log(p) and not categorical else p.name) + active)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel(_text(objective.metric))
    for k in range(len(params), nrows * ncols):
        axs[k // ncols][k % ncols].set_axis_off()
    if not ok:
        axs[0][0].text(
            0.5, 0.5, "no trial succeeded", ha="center", va="center", transform=axs[0][0].transAxes, color=FAILED_COLOUR
        )
    if _failed(records):
        axs[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{title} (darker = later; star = best)")
    fig.tight_layout()
    _save(fig, path)


def _all_numbers(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _categories(p: Param, values: Sequence[Any]) -> list[Any]:
    choices = list(p.choices) if isinstance(p, Categorical) else []
    seen = {repr(c) for c in choices}
    for v in values:
        if repr(v) not in seen:
            seen.add(repr(v))
            choices.append(v)
    return choices


# -- learning curves ----------------------------------------------------------------------------------


@dataclass
class Curve:
    """One run's history.csv: a trial (one fold of it with cross-validation) or the final retrain."""

    name: str  # the trial id, or "final retrain"
    history: dict[str, list[float]]
    objective: float | None = None
    fold: int | None = None  # with cross-validation
    rung_ends: list[float] = field(default_factory=list)  # schedules: epochs at which a rung ended
    final: bool = False
    best_epoch: float | None = None  # the epoch whose weights early stopping kept

    @property
    def label(self) -> str | None:
        """The legend entry: one per trial (its first fold stands for all)."""
        if self.final:
            return f"{self.name} (train+val; tested once, after training)" if self.fold in (None, 0) else None
        if self.fold not in (None, 0):
            return None
        score = f" ({_num(self.objective)})" if self.objective is not None else ""
        return f"{self.name}{score}{', all folds' if self.fold == 0 else ''}"


def learning_curves(
    layout: Layout,
    records: Sequence[Mapping[str, Any]],
    *,
    objective: Objective,
    top: int = 5,
    final: bool = False,
) -> list[Curve]:
    """The curves of the ``top`` best trials (every fold with cross-validation) and, with ``final``,
    of the final retrain, from their ``history.csv`` files; runs without one are left out."""
    curves = []
    for r in ranked(records, objective, ok_only=True)[:top]:
        files = layout.trial_history_files(r)
        rung_ends = []
        if r.get("rung"):
            for i in range(int(r["rung"])):
                f = Path(layout.result(run_name(str(r["trial"]), rung=i)))
                if f.is_file() and read_json(f).get("budget") is not None:
                    rung_ends.append(float(read_json(f)["budget"]))
        for k, f in enumerate(files):
            fold = k if len(files) > 1 else None
            # Early stopping kept the best epoch's weights (not under a schedule, which keeps the last).
            kept = fold is None and r.get("rung") is None
            best_epoch = (r.get("metrics") or {}).get("best_epoch") if kept else None
            curves.append(Curve(str(r["trial"]), read_history(f), float(r["objective"]), fold, rung_ends, best_epoch=best_epoch))
    if final:
        histories = layout.final_history_files()
        for k, f in enumerate(histories):  # one per retrain (final.repeats): the first stands for all
            name = "final retrain" if len(histories) == 1 else f"final retrains ({len(histories)})"
            curves.append(Curve(name, read_history(f), fold=k if len(histories) > 1 else None, final=True))
    return curves


def plot_learning_curves(path: str | os.PathLike, curves: Sequence[Curve], *, metric: str, top: int = 5) -> None:
    """Left: the objective metric per epoch; right: the training (solid) and evaluation (dashed)
    losses. Dotted vertical lines mark where a schedule's rungs ended (the trial resumed there)."""
    title = "Learning curves"
    if not curves:
        message_figure(
            path,
            title,
            "No history.csv to plot: the trainer writes none (custom trainers may, one row per epoch), or no trial succeeded.",
        )
        return
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.get_cmap("tab10")
    seen_trials: dict[str, Any] = {}
    shown_rung = shown_best = False
    for c in curves:
        colour = "black" if c.final else seen_trials.setdefault(c.name, colours(len(seen_trials) % 10))
        if c.final:  # training metrics only: the final stage reads the test set once, after training
            if "train_loss" in c.history:
                right.plot(c.history.get("epoch", []), c.history["train_loss"], color=colour, linewidth=1.3, label=c.label)
            continue
        label = c.label
        epochs = c.history.get("epoch", [])
        column = metric
        if column in c.history:
            marker = "." if len(epochs) < 30 and c.fold is None else None  # folds: thin lines, no dots
            left.plot(
                epochs, c.history[column], color=colour, linewidth=1.5 if c.fold is None else 0.9, label=label, marker=marker
            )
            if c.best_epoch in epochs:
                y = c.history[column][epochs.index(c.best_epoch)]
                left.scatter([c.best_epoch], [y], s=90, facecolor="none", edgecolor=colour, linewidth=1.5, zorder=5)
                shown_best = True
        eval_loss = "val_loss"
        if "train_loss" in c.history:
            right.plot(epochs, c.history["train_loss"], color=colour, linewidth=1.3, label=label)
        if eval_loss in c.history:
            right.plot(epochs, c.history[eval_loss], color=colour, linewidth=1.3, linestyle="--")
        for x in c.rung_ends:
            for ax in (left, right):
                ax.axvline(x + 0.5, color=colour, linestyle=":", linewidth=1, label=None)
            shown_rung = True
    left.set_title(f"{_text(metric)} per epoch")
    left.set_xlabel("epoch")
    left.set_ylabel(_text(metric))
    right.set_title("loss per epoch: training (solid), validation (dashed); final retrain: black")
    right.set_xlabel("epoch")
    right.set_ylabel("loss")
    if any("train_loss" in c.history and c.history["train_loss"] and min(c.history["train_loss"]) > 0 for c in curves):
        right.set_yscale("log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if shown_rung:
        left.plot([], [], color="grey", linestyle=":", label="rung ended (resumed from checkpoint)")
    if shown_best:
        left.scatter([], [], s=90, facecolor="none", edgecolor="grey", label="best epoch (its weights were kept)")
    left.legend(fontsize=7, loc="best")
    fig.suptitle(f"{title}: the {top} best trials and the final retrain")
    fig.tight_layout()
    _save(fig, path)


# -- confusion matrix --------------------------------------------------------------------------------


def plot_confusion_matrix(
    path: str | os.PathLike, matrix: Sequence[Sequence[int]], classes: Sequence[str], *, title: str
) -> None:
    """Counts of (true class, predicted class) on the test set; colour = share of the true class."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    if m.size == 0 or m.sum() == 0:
        message_figure(path, "Confusion matrix", "The test set is empty.")
        return
    plt = _pyplot()
    n = len(classes)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = min(max(4.5, 0.45 * n + 2.5), 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        f"{int(m[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black",
                    )
    labels = [_label(c) for c in classes]
    step = max(1, n // 40)
    ax.set_xticks(range(0, n, step))
    ax.set_xticklabels(labels[::step], rotation=45 if max(map(len, labels)) > 2 else 0, ha="right", fontsize=8)
    ax.set_yticks(range(0, n, step))
    ax.set_yticklabels(labels[::step], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    _save(fig, path)


def plot_predictions(path: str | os.PathLike, true: Sequence[float], predicted: Sequence[float], *, title: str) -> None:
    """A regression model's predicted values against the true ones on the test set, with the diagonal
    (a perfect prediction); the distance of a point from it is its error."""
    import numpy as np

    true, predicted = np.asarray(true, dtype=float), np.asarray(predicted, dtype=float)
    if true.size == 0:
        message_figure(path, "Predicted against true values", "The test set is empty.")
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.5))
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    pad = 0.03 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", linestyle="--", linewidth=1, label="perfect")
    ax.scatter(true, predicted, s=14, alpha=0.7, color="tab:blue", edgecolors="none", label="test example")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted value")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


# -- the trials table -----------------------------------------------------------------------------------


def _cell(column: str, value: str) -> str:
    if value == "":
        return "<td></td>"
    try:
        number = float(value)
    except ValueError:
        return f"<td>{html.escape(value)}</td>"
    if column in ("trial",) or not math.isfinite(number) or value.lstrip("-").isdigit():
        return f'<td class="num">{html.escape(value)}</td>'
    return f'<td class="num" title="{html.escape(value)}">{html.escape(f"{number:.4g}")}</td>'


_TABLE_CSS = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 12px; color: #222; }
h1 { font-size: 17px; margin: 0 0 4px; }
p { margin: 2px 0 10px; color: #555; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; white-space: nowrap; text-align: left; }
th { position: sticky; top: 0; background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #fff4d6; font-weight: 600; }
tr.failed td { color: #a33; background: #fdf0f0; }
"""


def write_trials_html(tsv: str | os.PathLike, out: str | os.PathLike, *, study: str, metric: str, direction: str) -> None:
    """``trials.tsv`` as a self-contained HTML page (best first, the winner highlighted, failed
    trials in red; hover a number for its full precision)."""
    import csv

    with open(tsv, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, [])
        rows = [dict(zip(header, r)) for r in reader]
    n_ok = sum(r.get("status") == "ok" for r in rows)
    n_beyond = sum(r.get("status") == "infeasible" for r in rows)
    counts = f"{n_ok} ok, " + (f"{n_beyond} beyond a limit, " if n_beyond else "") + f"{len(rows) - n_ok - n_beyond} failed"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(study)}: trials</title><style>{_TABLE_CSS}</style></head><body>",
        f"<h1>{html.escape(study)}: {len(rows)} trials, {counts}</h1>",
        f"<p>Best first by {html.escape(metric)} ({html.escape(direction)}); the same rows as "
        f"<code>results/{html.escape(study)}/trials.tsv</code>.</p>",
        "<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in header) + "</tr></thead><tbody>",
    ]
    for i, r in enumerate(rows):
        cls = "failed" if r.get("status") != "ok" else "best" if i == 0 else ""
        cells = "".join(_cell(c, r.get(c, "")) for c in header)
        lines.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    lines += ["</tbody></table>", "</body></html>", ""]
    atomic_write_text(out, "\n".join(lines))


# -- several objectives ------------------------------------------------------------------------------


def _judged(records: Sequence[Mapping[str, Any]], objective: Objective) -> list[tuple[Mapping[str, Any], Any, int | None]]:
    """(record, standing, Pareto rank) of each record at the ranked budget (every record without a
    schedule), in completion order."""
    from snaketune.records import standings

    budget = rank_budget(records)
    if budget is not None:
        records = [r for r in records if r.get("budget") == budget]
    return [(r, s, rank) for r, (_, s, rank) in zip(records, standings(records, objective))]


def plot_pareto_front(
    path: str | os.PathLike, records: Sequence[Mapping[str, Any]], objective: Objective, *, study: str = ""
) -> None:
    """The trials in the plane of two objectives (every pair of them for three or more): the
    Pareto front highlighted and joined, trials beyond a limit as grey crosses, the winner (the
    table's first row) as a star."""
    from snaketune.records import FEASIBLE, INFEASIBLE, best_record

    judged = _judged(records, objective)
    feasible = [(r, s, rank) for r, s, rank in judged if s.status == FEASIBLE]
    if not feasible:
        message_figure(path, "Pareto front", "No trial succeeded within the limits yet: there is no front to draw.")
        return
    beyond = [(r, s) for r, s, _ in judged if s.status == INFEASIBLE]
    best = best_record([r for r, _, _ in judged], objective)
    m = len(objective.metrics)
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.4 * len(pairs), 4.6), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs):
        rest = [(s.values[i], s.values[j]) for _, s, rank in feasible if rank != 0]
        front = sorted((s.values[i], s.values[j]) for _, s, rank in feasible if rank == 0)
        if rest:
            ax.scatter(*zip(*rest), s=22, color="#9ecae1", label=f"dominated ({len(rest)})", zorder=2)
        ax.scatter(*zip(*front), s=40, color="#08519c", label=f"Pareto front ({len(front)})", zorder=4)
        if len(front) > 1:
            ax.plot(*zip(*front), color="#08519c", linewidth=1, zorder=3)
        if beyond:
            ax.scatter(
                [s.values[i] for _, s in beyond],
                [s.values[j] for _, s in beyond],
                marker="x",
                color="#888888",
                label=f"beyond a limit ({len(beyond)})",
                zorder=2,
            )
        if best is not None:
            s = objective.standing(best)
            ax.scatter(
                [s.values[i]],
                [s.values[j]],
                marker="*",
                s=260,
                color="#ff7f0e",
                edgecolor="black",
                zorder=6,
                label=f"chosen: {best['trial']}",
            )
        for axis, k in (("x", i), ("y", j)):
            arrow = "↑" if objective.directions[k] == "maximize" else "↓"
            getattr(ax, f"set_{axis}label")(f"{_text(objective.metrics[k])} ({arrow} better)")
        for lim in objective.limits:  # a limit on a plotted objective: where it lies
            for k, line in ((i, ax.axvline), (j, ax.axhline)):
                if lim.metric == objective.metrics[k]:
                    for bound in (lim.min, lim.max):
                        if bound is not None:
                            line(bound, color="#888888", linestyle="--", linewidth=1, zorder=1)
        values = [s.values[j] for _, s, _ in feasible] + [s.values[j] for _, s in beyond]
        if min(values) > 0 and max(values) / min(values) > 30:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(_text(f"{study}: trials in the objectives' plane" if study else "Pareto front"))
    _save(fig, path)


def plot_hypervolume_history(
    path: str | os.PathLike, records: Sequence[Mapping[str, Any]], objective: Objective, *, study: str = ""
) -> None:
    """The hypervolume dominated by the feasible trials finished so far, against the number of
    trials finished (completion order): how the front grew. The reference point is each
    objective's worst feasible value over the whole study, moved by a tenth of its range
    (:func:`snaketune.pareto.reference_point`), and each objective is scaled from its best value
    (0) to the reference (1), so the curve reads as the share of that box the front dominates."""
    from snaketune.pareto import hypervolume, reference_point
    from snaketune.records import FEASIBLE

    judged = _judged(records, objective)
    points = [(n, objective.losses(s.values)) for n, (_, s, _) in enumerate(judged, 1) if s.status == FEASIBLE]
    if len(points) < 2:
        message_figure(path, "Hypervolume", "Fewer than two trials succeeded within the limits: the front has not grown yet.")
        return
    # Each objective scaled so that its best value is 0 and the reference point 1: the hypervolume
    # is then the share of that box the front dominates, whatever the objectives' units.
    ref = reference_point([p for _, p in points])
    ideal = [min(p[k] for _, p in points) for k in range(len(ref))]
    xs, ys, seen = [], [], []
    for n, p in points:
        seen.append([(v - lo) / (r - lo) for v, lo, r in zip(p, ideal, ref)])
        xs.append(n)
        ys.append(hypervolume(seen, [1.0] * len(ref)))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.step(xs + [len(judged)], ys + ys[-1:], where="post", color="#08519c")
    ax.scatter(xs, ys, s=14, color="#08519c", zorder=3)
    ax.set_xlabel("trials finished")
    ax.set_ylabel("hypervolume of the front so far\n(share of the box from the best values to the reference)")
    ax.set_title(
        _text(f"{study}: hypervolume over trials ({', '.join(objective.metrics)})" if study else "hypervolume over trials")
    )
    ax.grid(alpha=0.3)
    _save(fig, path)
