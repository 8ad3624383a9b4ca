"""The end-of-run summary: best parameters, scores, trial counts, where things are, what to run next.

One function gathers the rows (:func:`summary_rows`); the workflow prints them when a run succeeds
(``onsuccess``), the ``summarise`` job writes them to ``summary.txt``, next to ``best.yaml``
(:func:`answer`: the same facts for programs), and the ``answer_page`` job shows those that are
results on the page the report opens on (:func:`answer_html`). It reads only small files that
exist (``select/winner.yaml``, ``final/metrics.json``, ``trials.tsv``), so it also works on a
half-finished study::

    python workflow/scripts/summarise.py --results results/seed-grid
"""

from __future__ import annotations

import argparse
import base64
import html
import math
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from snaketune.files import read_json, read_yaml
from snaketune.final import shipped_test_metrics
from snaketune.layout import Layout
from snaketune.records import test_metric
from snaketune.table import read_table


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _float(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _test_metrics(metrics: dict[str, Any], metric: str) -> list[str]:
    """The shipped model's test metrics, the objective's counterpart first; with several retrains
    each followed by the mean ± std over them."""
    first = test_metric(metric)
    keys = list(shipped_test_metrics(metrics))
    keys.sort(key=lambda k: (k != first, k))
    out = []
    for k in keys:
        if not isinstance(metrics[k], (int, float)) or isinstance(metrics[k], bool):
            continue
        spread = ""
        if f"{k}_mean" in metrics and f"{k}_std" in metrics:
            spread = f" (retrains: {_num(metrics[f'{k}_mean'])} ± {_num(metrics[f'{k}_std'])})"
        out.append(f"{k} = {_num(metrics[k])}{spread}")
    return out


def answer(winner: dict[str, Any], final: dict[str, Any] | None) -> dict[str, Any]:
    """What ``best.yaml`` holds: the winner (``select/winner.yaml``: its parameters and validation
    score ``value``) and, once the final stage has run (``final``: ``final/metrics.json``), ``test``:
    the shipped model's test score of the objective's counterpart (``value``; with several retrains
    also their ``mean``, ``std`` and per-retrain ``values``), every test metric, how the model was
    made, and ``gap``: test minus validation (how optimistic the search was)."""
    doc = dict(winner)
    if final is None:
        return doc
    name = test_metric(winner.get("metric", "objective"))
    value = final.get(name)
    test: dict[str, Any] = {"metric": name, "value": value}
    if f"{name}_mean" in final:
        test.update(mean=final[f"{name}_mean"], std=final.get(f"{name}_std"), values=final.get(f"{name}_repeats"))
    test["model"] = final_description(final)
    test["metrics"] = shipped_test_metrics(final)
    doc["test"] = test
    if _is_number(value) and _is_number(winner.get("value")):
        doc["gap"] = value - winner["value"]
    return doc


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def final_description(metrics: dict[str, Any]) -> str:
    """How the shipped final model was made, in words."""
    repeats = int(metrics.get("repeats") or 1)
    if repeats == 1:
        return "retrained on train+validation, tested once"
    if metrics.get("ensemble"):
        return f"an ensemble of {repeats} retrains on train+validation, each and the ensemble tested once"
    return f"retrain 0 of {repeats} on train+validation, each tested once"


def val_test_gap(value: Any, metrics: dict[str, Any], metric: str) -> str | None:
    """The winner's validation score minus the final model's test score (how optimistic the search was)."""
    test = metrics.get(test_metric(metric))
    if not isinstance(value, (int, float)) or not isinstance(test, (int, float)):
        return None
    return f"{test_metric(metric)} - {metric} = {_num(test - value)} (test minus validation; the search's optimism shows as a negative gap for a score, a positive one for a loss)"


def packing_tip(rows: Sequence[dict[str, Any]], cores: int | None, sample: int = 30, round_size: int | None = None) -> str | None:
    """A hint to pack trials when their jobs spend longer starting than training, or None.

    Compares, over up to ``sample`` successful trials, Snakemake's wall time of each trial's job
    (its ``benchmark.tsv``, next to its log) with the trial's own ``train_seconds``. The suggested
    pack size shares the runs that can train side by side among the cores: all of them, or with
    ``round_size`` (a Bayesian round's runs; packs never cross a round) one round's.
    """
    jobs, trains = [], []
    for row in rows:
        if len(jobs) >= sample:
            break
        if row.get("status") != "ok" or not row.get("log") or row.get("train_seconds") in (None, ""):
            continue
        bench = Path(row["log"]).parent / "benchmark.tsv"
        try:
            lines = bench.read_text(encoding="utf-8").splitlines()
            jobs.append(float(lines[1].split("\t")[0]))
            trains.append(float(row["train_seconds"]))
        except (OSError, IndexError, ValueError):
            continue
    if len(jobs) < 4:
        return None
    job, train = statistics.median(jobs), statistics.median(trains)
    if job - train < max(train, 0.5):
        return None
    if cores:
        k = math.ceil((round_size or len(rows)) / cores)
        if k < 2:
            return None
        size = f"e.g. search.trials_per_job: {k}"
        if round_size:
            size += f" (packs never cross a round: {round_size} runs a round over {cores} cores)"
    else:  # no --cores (a cluster run): the jobs that run at once are unknown here
        size = "search.trials_per_job: about the trials over the jobs that run at once"
    return (
        f"each trial's job took {job:.1f} s for {train:.2f} s of training (medians of {len(jobs)}): "
        f"trials this short finish sooner packed, {size} (one job's start-up for several trials; "
        "README, Performance)"
    )


def run_summary(results: str | Path, **options: Any) -> str | None:
    """A few lines about the study in ``results`` (``results/<study>``), or None if it has no table yet;
    ``options`` as for :func:`summary_rows`."""
    facts = summary_rows(results, **options)
    if facts is None:
        return None
    results = Path(results)
    return "\n".join([f"snaketune: study {results.name} ({results}/)", *(f"  {label:<12}{text}" for label, text in facts)])


def summary_rows(
    results: str | Path,
    *,
    searched: Sequence[str] | None = None,
    retrain: bool = True,
    configfiles: Sequence[str] = (),
    packable: bool = False,
    cores: int | None = None,
    round_size: int | None = None,
) -> list[tuple[str, str]] | None:
    """The summary of the study in ``results`` as (label, text) rows, or None if it has no table yet:
    :func:`run_summary` prints them, :func:`answer_html` shows those that are the answer.

    ``searched`` names the parameters to show (default: all of best.yaml's); ``configfiles`` are the
    ``--configfile`` arguments the report command needs to find the same study. ``packable``: the
    study runs one job per trial and could pack them (then a tip may suggest it, sized for
    ``cores`` and, in a Bayesian study, its ``round_size``).
    """
    results = Path(results)
    layout = Layout.at(results)
    table_path, winner_path, best_path = Path(layout.table), Path(layout.winner), Path(layout.best)
    if not table_path.is_file() and not winner_path.is_file():
        return None
    rows = read_table(table_path) if table_path.is_file() else []
    best = read_yaml(winner_path) if winner_path.is_file() else None
    facts: list[tuple[str, str]] = []

    def line(label: str, text: str) -> None:
        facts.append((label, text))

    if best:
        metric = best.get("metric", "objective")
        epoch = f"; best epoch {best['best_epoch']}" if best.get("best_epoch") is not None else ""
        spread = ""
        if best.get("seeds") is not None:  # select.top_k: chosen by the mean over extra seeds
            top = len(best.get("reevaluated") or [])
            spread = f", mean ± {_num(best.get('objective_std'))} over {best['seeds']} seeds of the top {top}"
        line("best trial", f"{best['trial']}: {metric} = {_num(best.get('value'))} (validation{spread}{epoch})")
        if best.get("objectives"):
            values = ", ".join(f"{m} = {_num(v)}" for m, v in best["objectives"].items())
            line("objectives", f"{values} ({best.get('chosen_by', 'the table first row')})")
        params = best.get("params") or {}
        names = [n for n in (searched if searched is not None else params) if n in params]
        shown = "  ".join(f"{n}={params[n]!r}" if isinstance(params[n], str) else f"{n}={_num(params[n])}" for n in names)
        line("parameters", f"{shown or '(none searched)'}   (every parameter: {best_path})")
        final_metrics = Path(layout.final_file("metrics.json"))
        if not retrain:
            line("test score", "not measured (final.retrain: false)")
        elif final_metrics.is_file():
            final = read_json(final_metrics)
            scores = _test_metrics(final, metric)
            line("test score", f"{', '.join(scores) or 'no test_ metrics reported'} ({final_description(final)})")
            gap = val_test_gap(best.get("value"), final, metric)
            if gap:
                line("gap", gap)
        else:
            line("test score", "not yet: the final retrain has not run")
    elif rows and rows[0].get("status") == "ok":  # trials.tsv lists the best first
        top = rows[0]
        line(
            "best trial",
            f"{top['trial']}: objective = {_num(_float(top.get('objective')))} (validation; not yet selected: select_best makes {winner_path})",
        )
    elif rows:
        line("best trial", "none: every trial failed (see the error column of trials.tsv)")
    if rows:
        n_ok = sum(r.get("status") == "ok" for r in rows)
        n_infeasible = sum(r.get("status") == "infeasible" for r in rows)
        n_failed = len(rows) - n_ok - n_infeasible
        beyond = f", {n_infeasible} beyond a limit (objective.constraints)" if n_infeasible else ""
        failed = f", {n_failed} failed (their reasons: the error column)" if n_failed else ", 0 failed"
        line("trials", f"{len(rows)}: {n_ok} ok{beyond}{failed} -> {table_path}")
        if Path(layout.pareto).is_file():
            front = read_table(layout.pareto)
            line("front", f"{len(front)} trials on the Pareto front of {', '.join(_objectives(best))} -> {layout.pareto}")
        best_log = rows[0].get("log") if rows[0].get("status") == "ok" else None
        line("logs", f"{best_log or results / 'trials/<trial>/train.log'} (each trial's: the log column), {results}/logs/")
        tip = packing_tip(rows, cores, round_size=round_size) if packable else None
        if tip:
            line("tip", tip)
    outputs = ["trials.tsv", "best.yaml"] + (["pareto.tsv"] if Path(layout.pareto).is_file() else [])
    if retrain:
        outputs += ["final/"] + (["final/front.tsv"] if Path(layout.front_table).is_file() else [])
    outputs += ["report/ (plots)", "optuna.journal"]
    line("outputs", f"{results}/: {', '.join(outputs)}")
    extra = "".join(f" --configfile {shlex.quote(str(c))}" for c in configfiles)
    line("report", f"snakemake --report {results}/report.html{extra}")
    line("dashboard", f"optuna-dashboard {results}/optuna.journal   (pip install optuna-dashboard)")
    return facts


# Summary rows that say where things are or what to run next: for the terminal, not the report.
NOT_THE_ANSWER = frozenset({"logs", "outputs", "report", "dashboard", "tip"})


def answer_html(study: str, facts: Sequence[tuple[str, str]], figure: str | Path | None = None) -> str:
    """The study's answer as a small HTML page: the summary rows (:func:`summary_rows`) that are
    results (the winner, its parameters and validation score, the test score, the gap, the trial
    counts) as a table, then ``figure`` (a PNG, embedded as a data URI, so that the page stands
    alone). The report opens on it: ``report/workflow.rst`` includes it."""
    body = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
        for label, text in facts
        if label not in NOT_THE_ANSWER
    )
    img = ""
    if figure is not None:
        data = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
        alt = f"{Path(figure).stem.replace('_', ' ')} of {study}"
        img = f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width: 100%"></p>\n'
    return (
        '<!DOCTYPE html>\n<meta charset="utf-8">\n<div class="snaketune-answer">\n'
        "<style>.snaketune-answer { font-family: sans-serif; } .snaketune-answer table { border-collapse: collapse; }"
        " .snaketune-answer th { text-align: left; vertical-align: top; white-space: nowrap; padding: 0.2em 1em 0.2em 0; }"
        " .snaketune-answer td { padding: 0.2em 0; }"
        # Snakemake's report centres its landing page in the window, which cuts off (unscrollably)
        # the top of a page taller than the window: this one starts at the top, the answer first.
        " #app .h-screen:has(.snaketune-answer) { align-items: flex-start; }</style>\n"
        f"<h2>{html.escape(study)}: the answer</h2>\n<table>\n{body}\n</table>\n{img}</div>\n"
    )


def print_run_summary(
    results: str | Path,
    config: dict[str, Any],
    configfiles: Sequence[str] | None = None,
    file=None,
    cores: int | None = None,
) -> None:
    """The workflow's ``onsuccess`` handler (Snakemake calls it after a run, never after a dry run):
    print the summary of the study in ``results`` that ``config`` describes. A summary that cannot
    be made says why and does not turn a successful run into a failed one."""
    from snaketune.space import SearchSpace

    out = file or sys.stdout
    try:
        text = run_summary(
            results,
            searched=[p.name for p in SearchSpace.from_config(config["search_space"]).searched()],
            retrain=bool(config["final"]["retrain"]),
            configfiles=list(configfiles or []),
            packable=_packable(config),
            cores=cores,
            round_size=_round_size(config),
        )
    except Exception as e:  # noqa: BLE001 (the run itself succeeded)
        text = f"snaketune: no summary ({type(e).__name__}: {e})"
    if text:
        print(f"\n{text}\n", file=out, flush=True)


def _objectives(best: dict[str, Any] | None) -> list[str]:
    """ "val_accuracy (max)", "n_parameters (min)": the objectives best.yaml names."""
    directions = (best or {}).get("directions") or {}
    return [f"{m} ({d[:3]})" for m, d in directions.items()] or ["several objectives"]


def _packable(config: dict[str, Any]) -> bool:
    """One job per trial of the built-in trainer, without a schedule: packs would be allowed and pay."""
    search = config.get("search", {})
    return (
        search.get("trials_per_job", 1) == 1
        and search.get("schedule", "none") == "none"
        and config.get("trainer", {}).get("command") is None
    )


def _round_size(config: dict[str, Any]) -> int | None:
    """The runs of a Bayesian round after the first (search.batch trials, each with its folds);
    None for the other methods, whose trials all train side by side."""
    search = config.get("search", {})
    if search.get("method") != "bayes":
        return None
    return int(search.get("batch", 1)) * int(config.get("cv", {}).get("folds", 1))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="summarise", description="Print the summary of a snaketune study.")
    ap.add_argument("--results", required=True, help="the study's folder, results/<study>")
    ap.add_argument("--searched", default=None, help="comma-separated names of the searched parameters to show")
    ap.add_argument("--configfile", action="append", default=[], help="the --configfile the report command needs")
    ap.add_argument("--no-retrain", action="store_true", help="the study has final.retrain: false")
    args = ap.parse_args(argv)
    searched = [n for n in args.searched.split(",") if n] if args.searched is not None else None
    text = run_summary(args.results, searched=searched, retrain=not args.no_retrain, configfiles=args.configfile)
    print("\n" + (text or f"snaketune: {args.results} has no trials.tsv yet"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
