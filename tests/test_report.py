"""The report's figures, the trials table as HTML, the Optuna journal export and the run summary,
on small synthetic studies written to disk the way the workflow writes them."""

from __future__ import annotations

import csv
import statistics
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from snaketune import plots
from snaketune.export import build_study, write_journal
from snaketune.files import write_json
from snaketune.final import summarise_repeats
from snaketune.layout import Layout
from snaketune.records import Objective, best_record, ranked, records_in_completion_order
from snaketune.space import SearchSpace
from snaketune.summary import NOT_THE_ANSWER, answer, answer_html, print_run_summary, run_summary, summary_rows
from snaketune.table import collect, write_table
from snaketune.trial_files import epoch_values

SPACE = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
    "n_layers": {"type": "int", "low": 1, "high": 4},
    "activation": ["relu", "gelu", "tanh"],
    "epochs": 6,
}
HOSTILE = ["$(touch pwned)", "<script>alert(1)</script>", "a'b\"c", "line\nbreak", "$x^2$", "`id`"]
FIGURES = ["history", "parallel", "importances", "slices", "curves"]
ACCURACY = Objective.single("val_accuracy", "maximize")  # what ranks the trials of make_study


def _history(epochs: int, quality: float) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            "val_loss": 2.2 / e + 0.1,
            "val_accuracy": quality * (1 - 0.5 / e),
            "seconds": 0.01,
        }
        for e in range(1, epochs + 1)
    ]


def _write_history(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def make_study(
    root: Path,
    space: dict | None = None,
    *,
    n_ok: int = 8,
    n_failed: int = 2,
    history: bool = True,
    folds: int = 1,
    schedule: bool = False,
    seed: int = 0,
) -> tuple[Path, list[str], SearchSpace]:
    """Trial folders as the workflow writes them; returns (results dir, result files, space)."""
    space_cfg = space if space is not None else SPACE
    parsed = SearchSpace.from_config(space_cfg)
    results = root / "results" / "synth"
    trials = results / "trials"
    rng = np.random.default_rng(seed)
    files: list[str] = []
    for k in range(n_ok + n_failed):
        trial = f"r{k:04d}"
        params = parsed.sample(seed, k)
        ok = k < n_ok
        quality = 0.5 + 0.45 * rng.uniform()
        runs = [(f, trials / trial / f"fold-{f}") for f in range(folds)] if folds > 1 else [(0, trials / trial)]
        if schedule:  # successive halving: budgets 2 and 6; the better half reaches rung 1
            runs = [(0, trials / trial / "rung-0")] + ([(0, trials / trial / "rung-1")] if k % 2 == 0 else [])
        for rung, (fold, out) in enumerate(runs):
            budget = [2, 6][rung] if schedule else None
            epochs = budget or int(parsed["epochs"].value) if "epochs" in parsed.names else 6
            rows = _history(epochs, quality + 0.01 * fold)
            if history and ok:
                _write_history(out / "history.csv", rows)
            record = {
                "trial": trial,
                "status": "ok" if ok else "failed",
                "objective": rows[-1]["val_accuracy"] if ok else None,
                "reason": None if ok else "diverged at epoch 1 (training loss nan)",
                "params": params,
                "metrics": {"val_accuracy": rows[-1]["val_accuracy"], "val_loss": rows[-1]["val_loss"], "best_epoch": epochs}
                if ok
                else {},
                "seconds": 1.5,
                "stage": "search",
                "fold": fold,
                "folds": folds,
                "round": None,
                "log": str(out / "train.log"),
            }
            if schedule:
                record.update(bracket=0, rung=rung, budget=budget, slot=k)
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "result.json", record)
            files.append(str(out / "result.json"))
    rows = collect(files, parsed.names, "val_accuracy", "maximize")
    write_table(results / "trials.tsv", rows, parsed.names)
    return results, files, parsed


def _png_stats(path: Path) -> tuple[tuple[int, int], float, float]:
    """(size, pixel standard deviation, share of non-white pixels)."""
    img = np.asarray(Image.open(path).convert("L"), dtype=float)
    return img.shape, float(img.std()), float((img < 245).mean())


def draw(name: str, path: Path, records, space: SearchSpace, results: Path):
    if name == "history":
        plots.plot_optimisation_history(path, records, study="synth", objective=ACCURACY)
    elif name == "parallel":
        plots.plot_parallel_coordinates(path, records, space, objective=ACCURACY)
    elif name == "importances":
        plots.plot_importances(path, records, space, objective=ACCURACY)
    elif name == "slices":
        plots.plot_slices(path, records, space, objective=ACCURACY)
    elif name == "curves":
        curves = plots.learning_curves(Layout.at(results), records, final=True, objective=ACCURACY)
        plots.plot_learning_curves(path, curves, metric=ACCURACY.metric)


def assert_not_blank(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 2000, path
    (h, w), std, ink = _png_stats(path)
    assert h > 100 and w > 200 and std > 5 and ink > 0.005, (path, h, w, std, ink)


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_a_png_that_is_not_blank(tmp_path, monkeypatch, name):
    results, files, space = make_study(tmp_path)
    records = records_in_completion_order(files)
    out = tmp_path / f"{name}.png"
    messages = []
    monkeypatch.setattr(plots, "message_figure", lambda *a: messages.append(a))
    draw(name, out, records, space, results)
    assert not messages, f"{name} drew a message instead of the plot: {messages}"
    assert_not_blank(out)


EDGE_CASES = {
    "all failed but one": ({}, {"n_ok": 1, "n_failed": 5}),
    "all failed": ({}, {"n_ok": 0, "n_failed": 4}),
    "one parameter": ({"space": {"lr": SPACE["lr"], "epochs": 4}}, {}),
    "categorical only": ({"space": {"activation": ["relu", "gelu"], "optimizer": ["adam", "sgd", "adamw"], "epochs": 3}}, {}),
    "nothing searched": ({"space": {"lr": 0.01, "epochs": 3}}, {}),
    "no history.csv (custom trainer)": ({}, {"history": False}),
    "hostile categorical values": ({"space": {"name": HOSTILE, "epochs": 3}}, {"n_ok": 5, "n_failed": 1}),
    "cross-validation": ({}, {"folds": 3}),
    "schedule": ({}, {"schedule": True, "n_ok": 8, "n_failed": 1}),
    "no trials": ({}, {"n_ok": 0, "n_failed": 0}),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_draw_a_figure_never_an_error(tmp_path, case):
    space_kw, kw = EDGE_CASES[case]
    results, files, space = make_study(tmp_path, **space_kw, **kw)
    records = records_in_completion_order(files)
    for name in FIGURES:
        out = tmp_path / f"{name}.png"
        draw(name, out, records, space, results)
        assert_not_blank(out)
    plots.write_trials_html(
        results / "trials.tsv", tmp_path / "trials.html", study="synth", metric="val_accuracy", direction="maximize"
    )


def test_a_figure_that_fails_says_so_and_the_others_are_still_drawn(tmp_path, monkeypatch):
    paths = {"broken": tmp_path / "broken.png", "fine": tmp_path / "fine.png"}

    def broken(out):
        raise ValueError("no such axis")

    said = []
    monkeypatch.setattr(plots, "message_figure", lambda *a: said.append(a))
    with open(tmp_path / "plot.log", "w") as log:
        plots.draw_or_explain({"broken": broken, "fine": lambda out: Path(out).write_text("drawn")}, paths, log)
    assert said == [(paths["broken"], "broken", f"This figure failed: ValueError: no such axis\nSee {log.name}.")]
    assert paths["fine"].read_text() == "drawn"
    text = (tmp_path / "plot.log").read_text()
    assert "Traceback" in text and "ValueError: no such axis" in text
    assert f"{paths['broken']}: " in text and f"{paths['fine']}: " in text  # each figure's time


def test_log_parameters_get_log_axes_and_choices_get_one_tick_each(tmp_path, monkeypatch):
    results, files, space = make_study(tmp_path)
    records = records_in_completion_order(files)
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_slices(tmp_path / "s.png", records, space, objective=ACCURACY)
    lr, n_layers, activation = figures[0].axes[:3]
    assert lr.get_xscale() == "log" and n_layers.get_xscale() == "linear"
    assert [t.get_text() for t in activation.get_xticklabels()] == ["relu", "gelu", "tanh"]

    lr_axis = plots.param_axis(space["lr"], [r["params"]["lr"] for r in records])
    assert lr_axis.name == "lr (log)"
    positions = dict((label, y) for y, label in lr_axis.ticks)
    # Decades are equally spaced on a log axis: 1e-4, 1e-3, 1e-2, 1e-1 at 0, 1/3, 2/3, 1.
    assert [positions[k] for k in ("0.0001", "0.001", "0.01", "0.1")] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    act = plots.param_axis(space["activation"], ["gelu"])
    assert [label for _, label in act.ticks] == ["relu", "gelu", "tanh"]


def test_slices_label_integers_as_whole_numbers_and_narrow_log_ranges_without_crowding(tmp_path, monkeypatch):
    space = SearchSpace.from_config(
        {"n_layers": {"type": "int", "low": 1, "high": 3}, "width": {"type": "float", "low": 30, "high": 40, "log": True}}
    )
    records = [
        {"trial": f"t{i}", "status": "ok", "objective": 0.5 + i / 20, "params": {"n_layers": 1 + i % 3, "width": 30 + i}}
        for i in range(10)
    ]
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_slices(tmp_path / "s.png", records, space, objective=ACCURACY)
    n_layers, width = figures[0].axes[:2]
    figures[0].canvas.draw()
    assert [t.get_text() for t in n_layers.get_xticklabels()] == ["1", "2", "3"]  # no 1.5, 2.5
    assert width.get_xscale() == "log" and [t.get_text() for t in width.get_xticklabels()] == ["30", "40"]
    assert all(t.get_text() == "" for t in width.get_xticklabels(minor=True))  # no 3×10¹4×10¹


def test_importances_come_from_both_optuna_evaluators(tmp_path):
    _, files, space = make_study(tmp_path, n_ok=12, n_failed=0)
    records = records_in_completion_order(files)
    importances, errors = plots.param_importances(records, space, metric="val_accuracy", direction="maximize")
    assert not errors and set(importances) == {"fANOVA", "PED-ANOVA"}
    for imp in importances.values():
        assert set(imp) == {"lr", "n_layers", "activation"} and sum(imp.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("space_kw", "kw", "why"),
    [
        ({}, {"n_ok": 3, "n_failed": 3}, "need at least 5"),
        ({"space": {"lr": SPACE["lr"], "epochs": 4}}, {}, "Only one parameter is searched (lr)"),
    ],
)
def test_importances_say_why_they_are_missing(tmp_path, monkeypatch, space_kw, kw, why):
    _, files, space = make_study(tmp_path, **space_kw, **kw)
    said = []
    monkeypatch.setattr(plots, "message_figure", lambda path, title, message: said.append(message))
    plots.plot_importances(tmp_path / "i.png", records_in_completion_order(files), space, objective=ACCURACY)
    assert len(said) == 1 and why in said[0]


def test_learning_curves_of_the_best_trials_and_the_final_retrain(tmp_path):
    results, files, _ = make_study(tmp_path, folds=3)
    _write_history(results / "final" / "history.csv", [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "test_accuracy": 0.7}])
    records = records_in_completion_order(files)
    curves = plots.learning_curves(Layout.at(results), records, objective=ACCURACY, top=2, final=True)
    best_two = [r["trial"] for r in ranked(records, "val_accuracy", "maximize")[:2]]
    assert [(c.name, c.fold) for c in curves[:-1]] == [(t, f) for t in best_two for f in range(3)]
    assert curves[-1].final and curves[-1].history["test_accuracy"] == [0.7]
    assert curves[0].label.startswith(best_two[0]) and curves[0].label.endswith(", all folds")
    assert curves[1].label is None and curves[2].label is None  # one legend entry per trial


def records_by(records):
    return {r["trial"]: r for r in records}


def test_schedule_curves_come_from_the_highest_rung_and_mark_where_rungs_ended(tmp_path):
    results, files, _ = make_study(tmp_path, schedule=True)
    records = records_in_completion_order(files)
    promoted = records_by(records)["r0000"]
    assert promoted["rung"] == 1 and Layout.at(results).trial_history_files(promoted) == [
        results / "trials/r0000/rung-1/history.csv"
    ]
    curves = plots.learning_curves(Layout.at(results), records, objective=ACCURACY, top=8)
    assert all(c.rung_ends == [2.0] for c in curves if c.name == "r0000")
    # The best trial is one that reached the largest budget, as in trials.tsv.
    assert best_record(records, "val_accuracy", "maximize")["budget"] == 6


def test_completion_order_follows_the_result_files_times(tmp_path):
    import os

    _, files, _ = make_study(tmp_path, n_ok=4, n_failed=0)
    for i, f in enumerate(reversed(files)):
        os.utime(f, (1_000_000 + i, 1_000_000 + i))
    assert [r["trial"] for r in records_in_completion_order(files)] == ["r0003", "r0002", "r0001", "r0000"]


def test_cross_validation_intermediate_values_are_the_mean_over_folds(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_history(a, [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}, {"epoch": 3, "val_accuracy": 0.8}])
    _write_history(b, [{"epoch": 1, "val_accuracy": 0.7}, {"epoch": 2, "val_accuracy": 0.9}])
    assert epoch_values([a, b], "val_accuracy") == pytest.approx({1: 0.6, 2: 0.8})
    assert epoch_values([a], "val_loss") == {}


class _Table(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.cells, self.scripts = 0, [], 0

    def handle_starttag(self, tag, attrs):
        self.rows += tag == "tr"
        self.scripts += tag == "script"

    def handle_data(self, data):
        self.cells.append(data)


def test_trials_html_holds_every_row_and_escapes_values(tmp_path):
    results, _, _ = make_study(tmp_path, {"name": HOSTILE, "epochs": 3}, n_ok=5, n_failed=1, seed=3)
    out = tmp_path / "trials.html"
    plots.write_trials_html(results / "trials.tsv", out, study="synth", metric="val_accuracy", direction="maximize")
    parser = _Table()
    parser.feed(out.read_text())
    assert parser.rows == 1 + 6 and parser.scripts == 0
    names = {row["name"] for row in _table(results).values()}
    assert len(names) > 1 and names <= set(parser.cells)  # shown as text, not markup
    assert 'class="failed"' in out.read_text() and 'class="best"' in out.read_text()


# -- the Optuna journal ---------------------------------------------------------------------------


def _load(path: Path, name: str = "synth"):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def _table(results: Path) -> dict[str, dict[str, str]]:
    with open(results / "trials.tsv", newline="") as fh:
        return {r["trial"]: r for r in csv.DictReader(fh, delimiter="\t")}


def test_journal_round_trip_matches_the_table(tmp_path):
    import optuna

    results, files, space = make_study(tmp_path, n_ok=6, n_failed=2)
    records = records_in_completion_order(files)
    journal = results / "optuna.journal"
    kw = {"metric": "val_accuracy", "direction": "maximize", "study_name": "synth", "layout": Layout.at(results)}
    write_journal(journal, records, space, **kw)
    write_journal(journal, records, space, **kw)  # a rerun replaces the file, never appends to it
    study = _load(journal)
    table = _table(results)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and study.metric_names == ["val_accuracy"]
    assert len(study.trials) == len(table) == 8
    assert [t.user_attrs["trial"] for t in study.trials] == [r["trial"] for r in records]  # completion order
    for t in study.trials:
        row = table[t.user_attrs["trial"]]
        if row["status"] == "ok":
            assert t.state == optuna.trial.TrialState.COMPLETE and t.value == float(row["objective"])
            assert sorted(t.intermediate_values) == [1, 2, 3, 4, 5, 6]  # one per epoch of history.csv
            assert t.intermediate_values[6] == pytest.approx(float(row["val_accuracy"]))
        else:
            assert t.state == optuna.trial.TrialState.FAIL and t.value is None and "diverged" in t.user_attrs["error"]
        for name in space.names:
            assert str(t.params[name]) == row[name]
        assert t.distributions["lr"].log and t.distributions["epochs"].choices == (6,)
    assert study.user_attrs["best_trial"] == next(iter(table))  # the table's first row
    assert not list(results.glob(".optuna.journal*"))  # no temporary file left behind


def test_schedule_trials_stopped_early_are_pruned(tmp_path):
    import optuna

    results, files, space = make_study(tmp_path, schedule=True, n_failed=0)
    records = records_in_completion_order(files)
    study = build_study(records, space, metric="val_accuracy", direction="maximize", study_name="s", layout=Layout.at(results))
    states = {t.user_attrs["trial"]: t.state for t in study.trials}
    assert {k for k, s in states.items() if s == optuna.trial.TrialState.COMPLETE} == {f"r{k:04d}" for k in range(0, 8, 2)}
    assert {k for k, s in states.items() if s == optuna.trial.TrialState.PRUNED} == {f"r{k:04d}" for k in range(1, 8, 2)}
    pruned = next(t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    assert pruned.value is not None and sorted(pruned.intermediate_values) == [1, 2] and pruned.user_attrs["budget"] == 2
    assert study.best_trial.user_attrs["budget"] == 6


def test_values_outside_todays_space_are_kept_as_user_attributes(tmp_path):
    _, files, _ = make_study(tmp_path, n_ok=3, n_failed=0)
    narrowed = SearchSpace.from_config({**SPACE, "lr": {"type": "float", "low": 0.5, "high": 1.0}})
    study = build_study(records_in_completion_order(files), narrowed, metric="val_accuracy", direction="maximize", study_name="n")
    assert all("lr" not in t.params and "param_lr" in t.user_attrs for t in study.trials)


# -- the run summary -------------------------------------------------------------------------------


def _finished(tmp_path: Path, retrain: bool = True) -> Path:
    results, files, _ = make_study(tmp_path, n_ok=5, n_failed=2)
    best_row = next(iter(_table(results).values()))
    best = {
        "study": "synth",
        "trial": best_row["trial"],
        "metric": "val_accuracy",
        "direction": "maximize",
        "value": float(best_row["objective"]),
        "best_epoch": 6,
        "params": {"lr": 0.0123, "n_layers": 2, "activation": "gelu", "epochs": 6},
    }
    (results / "select").mkdir(exist_ok=True)
    (results / "select" / "winner.yaml").write_text(yaml.safe_dump(best))
    if retrain:
        write_json(results / "final" / "metrics.json", {"test_accuracy": 0.9321, "test_loss": 0.25, "epochs_run": 6})
    return results


def test_summary_names_parameters_scores_counts_and_commands(tmp_path):
    results = _finished(tmp_path)
    text = run_summary(results, searched=["lr", "n_layers", "activation"], configfiles=["my study.yaml"])
    assert "lr=0.0123  n_layers=2  activation='gelu'" in text and "epochs=" not in text.split("(every")[0]
    assert f"val_accuracy = {float(next(iter(_table(results).values()))['objective']):.4g} (validation; best epoch 6)" in text
    assert "test_accuracy = 0.9321, test_loss = 0.25" in text
    assert "7: 5 ok, 2 failed" in text
    assert f"snakemake --report {results}/report.html --configfile 'my study.yaml'" in text
    assert f"optuna-dashboard {results}/optuna.journal" in text
    assert f"{results}/trials/" in text and "train.log" in text


def test_summary_of_a_study_without_final_retrain_or_table(tmp_path):
    results = _finished(tmp_path, retrain=False)
    assert "not measured (final.retrain: false)" in run_summary(results, retrain=False)
    assert "not yet: the final retrain has not run" in run_summary(results, retrain=True)
    assert run_summary(tmp_path / "results" / "nothing") is None


def test_the_answer_page_is_the_summarys_results_without_its_commands(tmp_path):
    """The report opens on answer.html: the same rows as the printed summary, less where things are."""
    import base64
    import html

    results = _finished(tmp_path)
    facts = summary_rows(results, searched=["lr", "n_layers", "activation"], configfiles=["my study.yaml"])
    printed = run_summary(results, searched=["lr", "n_layers", "activation"], configfiles=["my study.yaml"])
    assert printed.splitlines()[1:] == [f"  {label:<12}{text}" for label, text in facts]
    figure = tmp_path / "optimisation_history.png"
    figure.write_bytes(b"\x89PNG not really")
    page = answer_html("synth <1>", facts, figure)
    assert "<h2>synth &lt;1&gt;: the answer</h2>" in page
    assert f'<img src="data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode()}"' in page
    assert page.index("</table>") < page.index("<img")  # the answer, then the figure
    assert "<img" not in answer_html("synth", facts)
    labels = [label for label, _ in facts]
    assert {"best trial", "parameters", "test score", "trials"} <= set(labels) and {"logs", "report"} <= set(labels)
    for label, text in facts:
        row = f"<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>"
        assert (row in page) == (label not in NOT_THE_ANSWER), label
    assert "activation=&#x27;gelu&#x27;" in page and "7: 5 ok, 2 failed" in page


def test_best_yaml_is_the_winner_with_its_test_score_and_the_gap():
    winner = {"trial": "g3", "metric": "val_accuracy", "value": 0.98, "params": {"lr": 0.01}}
    one = answer(winner, {"test_accuracy": 0.95, "test_loss": 0.2, "epochs_run": 6, "repeats": 1})
    assert one["trial"] == "g3" and one["value"] == 0.98 and one["params"] == {"lr": 0.01}
    assert one["test"]["metric"] == "test_accuracy" and one["test"]["value"] == 0.95 and "mean" not in one["test"]
    assert one["test"]["metrics"] == {"test_accuracy": 0.95, "test_loss": 0.2}
    assert one["gap"] == pytest.approx(-0.03) and one["test"]["model"] == "retrained on train+validation, tested once"
    final = {"test_accuracy": 0.97, "repeats": 3, "ensemble": True}
    final.update(summarise_repeats([{"test_accuracy": a} for a in (0.95, 0.96, 0.94)], ["test_accuracy"]))
    three = answer(winner, final)["test"]
    assert three["value"] == 0.97 and three["mean"] == pytest.approx(0.95) and three["values"] == [0.95, 0.96, 0.94]
    assert three["std"] == pytest.approx(statistics.pstdev([0.95, 0.96, 0.94])) and "ensemble of 3" in three["model"]
    # a custom metric that is no val_ name: its test counterpart is test_<metric>
    assert answer({"metric": "score", "value": 2.0}, {"test_score": 1.5})["gap"] == -0.5
    # final.retrain: false, or not yet retrained: the winner alone, no test score
    assert answer(winner, None) == winner


def test_print_run_summary_never_fails_a_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _finished(tmp_path)
    print_run_summary("results/synth", {"study": "synth", "search_space": SPACE, "final": {"retrain": True}}, [])
    assert "snaketune: study synth" in capsys.readouterr().out
    print_run_summary(
        "results/synth", {"study": "synth", "search_space": {"lr": {"type": "float"}}, "final": {"retrain": True}}, []
    )
    assert "snaketune: no summary (ConfigError" in capsys.readouterr().out


def test_plots_never_import_torch_and_the_trainer_never_imports_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys; import snaketune.plots, snaketune.export, snaketune.summary, snaketune.runner;"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)"
    )
    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=scripts)


def test_the_summary_suggests_packing_only_when_jobs_start_longer_than_they_train(tmp_path, monkeypatch):
    from snaketune.summary import _round_size, packing_tip

    monkeypatch.chdir(tmp_path)

    def trials(n, job_s, train_s):
        rows = []
        for i in range(n):
            log = Path(f"results/s/trials/t{i}/train.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            (log.parent / "benchmark.tsv").write_text(f"s\th:m:s\tmax_rss\n{job_s}\t0:00:01\t240\n")
            rows.append({"trial": f"t{i}", "status": "ok", "train_seconds": str(train_s), "log": str(log)})
        return rows

    tip = packing_tip(trials(27, 1.2, 0.1), cores=2)
    assert "took 1.2 s for 0.10 s of training (medians of 27)" in tip and "search.trials_per_job: 14" in tip
    assert packing_tip(trials(27, 31.0, 30.0), cores=2) is None, "start-up is small next to training"
    assert packing_tip(trials(3, 1.2, 0.1), cores=2) is None, "too few trials to judge"
    assert packing_tip(trials(8, 1.2, 0.1), cores=8) is None, "one trial per core: nothing to pack"
    assert "about the trials over the jobs that run at once" in packing_tip(trials(27, 1.2, 0.1), cores=None)
    # Bayesian rounds of 4: packs never cross a round, so 2 cores share 4 runs, not 27
    tip = packing_tip(trials(27, 1.2, 0.1), cores=2, round_size=4)
    assert "search.trials_per_job: 2 (packs never cross a round: 4 runs a round over 2 cores)" in tip
    assert packing_tip(trials(27, 1.2, 0.1), cores=4, round_size=4) is None, "one run of a round per core"
    assert _round_size({"search": {"method": "bayes", "batch": 4}, "cv": {"folds": 2}}) == 8
    assert _round_size({"search": {"method": "grid"}}) is None
    rows = trials(27, 1.2, 0.1)
    (Path("results/s/trials.tsv")).write_text(
        "trial\tstatus\tobjective\ttrain_seconds\tlog\n" + "".join(f"{r['trial']}\tok\t0.9\t0.1\t{r['log']}\n" for r in rows)
    )
    assert "tip         each trial's job took" in run_summary("results/s", packable=True, cores=2)
    assert "tip" not in run_summary("results/s", packable=False, cores=2)
    assert "t0: objective = 0.9 (validation; not yet selected" in run_summary("results/s")
