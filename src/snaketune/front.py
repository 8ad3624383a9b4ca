"""More members of the Pareto front, retrained (``final.front``): the trade-off measured on the test set.

With several objectives (objective.also) the winner is one point of the front. With
``final.front: k`` the ``choose_front`` job writes ``select/front.yaml``: k more configurations,
spread along the front (:func:`front_members`: the order in which a rung promotes them, so
the front's ends first, then its widest gaps, then the next fronts when it is short), each with
its parameters, best epoch and objectives. Job (slot s) retrains the s-th of them exactly as the
winner is retrained (stage final: train+validation, its best epoch count, the test set read once)
in ``final/front/s<s>/``; a slot beyond the members is recorded as ``skipped``. ``front_table``
then writes ``final/front.tsv``: the winner and each member, their validation objectives and
test metrics, side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snaketune.files import atomic_write_text, read_json, read_yaml
from snaketune.plan import trial_seed
from snaketune.records import FEASIBLE, Objective, is_test_metric, rank_budget, test_metric
from snaketune.runner import run_into_slot
from snaketune.schedule import spread_order
from snaketune.specs import FrontSpec, RunSpec


def front_members(records: Sequence[Mapping[str, Any]], k: int, objective: Objective, winner: str) -> list[dict[str, Any]]:
    """The ``k`` configurations to retrain besides ``winner``: the trials within the limits in the
    order a rung promotes them (snaketune.schedule.spread_order): the winner's front first, spread
    along it (its ends, then its widest gaps), then the next fronts,
    with what the retrain needs (parameters, best epoch) and their validation objectives."""
    budget = rank_budget(records)
    if budget is not None:  # a schedule: only trials trained to the ranked budget are comparable
        records = [r for r in records if r.get("budget") == budget]
    by_trial = {r["trial"]: r for r in records}
    order = [t for t in spread_order(records, objective) if t != winner]
    members = []
    for t in order:
        r = by_trial[t]
        standing = objective.standing(r)
        if standing.status != FEASIBLE:
            continue  # never a trial beyond a limit
        members.append(
            {
                "trial": t,
                "params": r["params"],
                "best_epoch": (r.get("metrics") or {}).get("best_epoch"),
                "objectives": dict(zip(objective.metrics, standing.values)),
            }
        )
        if len(members) == k:
            break
    return members


def front_run(spec: FrontSpec) -> RunSpec | None:
    """The retrain of the spec's slot, or None when choose_front wrote fewer members than slots."""
    members = read_yaml(spec.front)["members"]
    if spec.slot >= len(members):
        return None
    m = members[spec.slot]
    params = m["params"]
    return RunSpec(
        trial=m["trial"],
        dir=spec.dir,
        log=spec.log,
        stage="final",
        # The member's own seed, whichever slot it lands in: the retrain of a trial is the same
        # run whatever else the front holds.
        seed=trial_seed(spec.search_seed, f"final-{m['trial']}"),
        trainer=spec.trainer,
        params=params,
        budget=m.get("best_epoch") or params.get("epochs"),
    )


def run_front(spec: FrontSpec, **kw: Any) -> dict[str, Any]:
    """Retrain the slot's member and write its record (the run's result, or ``skipped``)."""
    return run_into_slot(front_run(spec), spec.file, {"slot": spec.slot}, "fewer front members than final.front", **kw)


def front_rows(
    winner: Mapping[str, Any], final_metrics: Mapping[str, Any], members: Sequence[Mapping[str, Any]], objective: Objective
) -> list[dict[str, Any]]:
    """The rows of ``final/front.tsv``: the winner (``final/metrics.json``), then each retrained
    member (its record: ``final/front/s<k>.json``; skipped slots left out), with their validation
    objectives and every test metric of their retrain."""
    rows = [_row(winner["trial"], "winner", winner.get("objectives") or {objective.metric: winner.get("value")}, final_metrics)]
    for m in members:
        if m.get("status") == "skipped":
            continue
        metrics = m.get("metrics") or {}
        row = _row(m["trial"], "front" if m.get("status") == "ok" else "failed", m.get("objectives") or {}, metrics)
        row["error"] = m.get("reason") or ""
        rows.append(row)
    return rows


def _row(trial: str, role: str, objectives: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": trial, "role": role}
    row.update(objectives)
    for name in objectives:  # the test-set counterpart of each validation objective, where there is one
        if test_metric(name) in metrics:
            row[test_metric(name)] = metrics[test_metric(name)]
    row.update({k: v for k, v in metrics.items() if is_test_metric(k) and isinstance(v, (int, float)) and k not in row})
    return row


def write_front_table(
    path: str | Path,
    winner_file: str,
    final_metrics_file: str,
    member_files: Sequence[str],
    front_file: str,
    objective: Objective,
) -> list[dict[str, Any]]:
    """Read the winner, the final metrics, choose_front's members and their retrains' records, and
    write ``final/front.tsv``."""
    chosen = {m["trial"]: m for m in read_yaml(front_file)["members"]}
    members = []
    for f in member_files:
        r = read_json(f)
        if r.get("trial") in chosen:
            r = {**r, "objectives": chosen[r["trial"]]["objectives"]}
        members.append(r)
    rows = front_rows(read_yaml(winner_file), read_json(final_metrics_file), members, objective)
    columns = list(dict.fromkeys(k for row in rows for k in row if k != "error"))
    if any(row.get("error") for row in rows):
        columns.append("error")
    text = "\t".join(columns) + "\n"
    text += "".join("\t".join(_cell(row.get(c)) for c in columns) + "\n" for row in rows)
    atomic_write_text(path, text)
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else str(v).replace("\t", " ").replace("\n", " ")
