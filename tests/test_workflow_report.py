"""The real snakemake CLI: a tiny study's plots, Optuna journal and end-of-run summary, then
`snakemake --report`, rendered in headless Chromium to check that every plot shows and is not blank."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, Study, tiny_config

pytestmark = pytest.mark.workflow

CHROMIUM = "/usr/bin/chromium"
PROBE = Path(__file__).with_name("report_probe.js")
PLOTS = {
    "optimisation_history.png",
    "parallel_coordinates.png",
    "param_importances.png",
    "slices.png",
    "learning_curves.png",
    "confusion_matrix.png",
}


def report_config() -> dict:
    """Random search over a log-scale float and a choice: enough trials for importances."""
    return tiny_config(
        study="tiny-report",
        search={"method": "random", "n_trials": 6, "seed": 0},
        search_space={
            "lr": {"type": "float", "low": 0.003, "high": 0.3, "log": True},
            "n_layers": [1, 2],
            "hidden_units": 16,
            "batch_size": 32,
            "epochs": 3,
        },
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One run of the tiny study and its report, shared by the tests of this module."""
    s = Study(tmp_path_factory.mktemp("report"), report_config())
    proc = s.run()
    report = s.path / "report.html"
    s.run("--report", str(report))
    return s, proc.stdout + proc.stderr, report


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def test_a_run_ends_with_the_summary_and_the_summary_job_writes_it(finished):
    s, output, _ = finished
    best = s.results / "best.yaml"
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    summary = output[output.index("snaketune: study tiny-report") :]
    assert "best trial" in summary and "parameters  lr=" in summary and "n_layers=" in summary
    assert f"test_accuracy = {final['test_accuracy']:.4g}" in summary
    assert "6: 6 ok, 0 failed" in summary
    assert f"snakemake --report results/tiny-report/report.html --configfile {s.config_path}" in summary
    assert "optuna-dashboard results/tiny-report/optuna.journal" in summary
    written = (s.results / "summary.txt").read_text()
    assert "snaketune: study tiny-report" in written and f"test_accuracy = {final['test_accuracy']:.4g}" in written
    assert f"--configfile {s.config_path}" in written
    answer = yaml.safe_load(best.read_text())  # the same answer for programs
    assert answer["test"]["value"] == final["test_accuracy"] and answer["test"]["metric"] == "test_accuracy"
    assert answer["gap"] == pytest.approx(final["test_accuracy"] - answer["value"])


def landing_html(report: Path) -> str:
    """The report's landing text (the Snakefile's `report:` directive), as the page holds it."""
    page = report.read_text(encoding="utf-8")
    found = re.search(r"^\s*var workflow_desc = (.*);\s*$", page, re.M)
    assert found, "the report has no workflow_desc"
    return json.loads(found.group(1))


def test_the_report_opens_on_the_answer_and_the_optimisation_history(finished):
    """The landing text is the study's answer, from its own files: the winner, its parameters and
    validation score, the test score, the trial counts, then the optimisation history, embedded."""
    s, _, report = finished
    landing = landing_html(report)
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    _, rows = read_tsv(s.results / "trials.tsv")
    answer = landing.index(f"{s.config['study']}: the answer")
    facts = [
        f"{best['trial']}: val_accuracy = {best['value']:.4g} (validation",
        f"lr={best['params']['lr']:.4g}  n_layers={best['params']['n_layers']}",
        f"test_accuracy = {final['test_accuracy']:.4g}",
        f"{len(rows)}: {sum(r['status'] == 'ok' for r in rows)} ok, 0 failed",
    ]
    for fact in facts:
        assert landing.index(html.escape(fact)) > answer, fact
    assert "snakemake --report" not in landing and "train.log" not in landing  # commands and logs: the terminal's
    plot = base64.b64encode((s.results / "report" / "optimisation_history.png").read_bytes()).decode()
    figure = landing.index(plot)
    assert answer < figure < landing.index("snaketune tuned")  # the answer, the figure, then the prose
    assert "System Message" not in landing  # rendered without a docutils complaint


def test_the_readmes_samples_have_the_shape_of_a_real_runs_output(finished):
    """README's samples come from a real run (docs/readme_samples.py); a real run of today's code
    must still print the same lines and write the columns the README lists."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_samples", REPO / "docs" / "readme_samples.py")
    samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(samples)
    s, _, _ = finished
    readme = (REPO / "README.md").read_text(encoding="utf-8")

    def labels(text):
        return [line[2:14].strip() for line in text.splitlines() if line.startswith("  ")]

    sample = labels(samples.sample_blocks(readme)["summary"])
    real = labels((s.results / "summary.txt").read_text())
    assert [x for x in sample if x != "tip"] == [x for x in real if x != "tip"]  # the tip shows only when it pays

    listing = readme[readme.index("trials.tsv            one row per trial, best first:") : readme.index("  trials.json")]
    listed = {c.split("(")[0].strip() for c in re.sub(r"\s+", " ", listing.split(":", 1)[1]).split(",")}
    columns, _ = read_tsv(s.results / "trials.tsv")
    params = set(yaml.safe_load((s.results / "best.yaml").read_text())["params"])
    assert listed - {"every parameter"} == set(columns) - params


def test_a_report_never_lands_in_another_studys_folder(finished):
    """Run as printed but without the study's --configfile, `snakemake --report results/<other>/...`
    would write the loaded study's report into the other study's folder: refused, nothing written."""
    s, _, _ = finished
    proc = s.run("--report", "results/other-study/report.html", check=False)
    assert proc.returncode != 0 and "is in the folder of study 'other-study'" in proc.stderr
    assert "--configfile" in proc.stderr and not (s.path / "results" / "other-study").exists()


def test_a_dry_run_prints_no_summary(study):
    out = study(report_config()).run("-n")
    assert "snaketune: study" not in out.stdout + out.stderr


def test_the_run_writes_every_figure_the_table_and_the_journal(finished):
    s, _, _ = finished
    for name in PLOTS | {"trials.html"}:
        assert (s.results / "report" / name).stat().st_size > 1000, name
    assert "WARNING" not in (s.results / "logs" / "plot_confusion_matrix.log").read_text()  # matrix agrees with test_accuracy
    assert "Traceback" not in (s.results / "logs" / "plot_study.log").read_text()
    assert "Traceback" not in (s.results / "logs" / "plot_curves.log").read_text()


def test_the_optuna_journal_loads_back_and_matches_trials_tsv(finished):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    s, _, _ = finished
    storage = JournalStorage(JournalFileBackend(str(s.results / "optuna.journal")))
    study = optuna.load_study(study_name="tiny-report", storage=storage)
    _, rows = read_tsv(s.results / "trials.tsv")
    assert len(study.trials) == len(rows) == 6
    by_id = {t.user_attrs["trial"]: t for t in study.trials}
    assert set(by_id) == {r["trial"] for r in rows}
    for row in rows:
        t = by_id[row["trial"]]
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == float(row["objective"])
        assert t.params["lr"] == float(row["lr"]) and t.params["n_layers"] == int(row["n_layers"])
        assert t.params["epochs"] == 3 and t.distributions["lr"].log
        assert sorted(t.intermediate_values) == list(range(1, 4))  # val_accuracy per epoch
        assert t.intermediate_values[int(row["best_epoch"])] == pytest.approx(float(row["objective"]))  # weights kept
    assert study.user_attrs["best_trial"] == rows[0]["trial"] and study.best_value == float(rows[0]["objective"])


def chromium_or_skip() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("SNAKETUNE_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{CHROMIUM} is missing but SNAKETUNE_REQUIRE_CHROMIUM=1 (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (Debian: apt-get install chromium)")


def chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=30000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def with_probe(report: Path, out: Path) -> Path:
    """A copy of the report with tests/report_probe.js injected before </body>."""
    page = report.read_text(encoding="utf-8")
    end = page.rindex("</body>")
    out.write_text(page[:end] + f"<script>\n{PROBE.read_text()}\n</script>\n" + page[end:], encoding="utf-8")
    return out


# A laptop's screen: headless Chromium's page is this window less about 140 pixels of height (the
# probe reports what it got), about what a browser's toolbars leave on a 1366 x 768 screen.
WINDOW = (1366, 800)


def keep_screenshot(shot: Path, name: str, capsys) -> None:
    """Say where a screenshot is, and copy it into $SNAKETUNE_SCREENSHOT_DIR if set (for CI to keep)."""
    where = [shot]
    if folder := os.environ.get("SNAKETUNE_SCREENSHOT_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        where.append(Path(shutil.copy(shot, Path(folder) / name)))
    with capsys.disabled():
        print(f"\nscreenshot of the report ({name}): {', '.join(map(str, where))}")


@pytest.mark.browser
def test_the_report_renders_in_chromium_with_every_plot_and_the_table(finished, tmp_path, capsys):
    exe = chromium_or_skip()
    s, _, report = finished
    assert report.stat().st_size > 100_000  # self-contained: scripts and plots embedded
    page = with_probe(report, tmp_path / "probe.html")
    window = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    dom = chromium(exe, tmp_path / "profile", window, "--dump-dom", page.as_uri()).stdout
    found = re.findall(r'<pre id="snaketune-probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not finish; the page's DOM begins:\n{dom[:2000]}"
    probe = json.loads(html.unescape(found[-1]))
    assert probe["app"] and not probe["errors"], probe
    assert probe["categories"] == ["tiny-report"]  # one category per study

    # The landing page, before any click: the answer's table, then the optimisation history, both
    # within the window (no scrolling: a landing taller than the window would lose its top).
    landing = probe["landing"]
    assert landing and landing["view"] == "rulegraph", landing
    best = yaml.safe_load((s.results / "best.yaml").read_text())
    final = json.loads((s.results / "final" / "metrics.json").read_text())
    rows = dict(landing["rows"])
    assert landing["heading"]["text"] == "tiny-report: the answer" and landing["heading"]["top"] >= 0, landing
    assert rows["best trial"].startswith(f"{best['trial']}: val_accuracy = {best['value']:.4g}"), rows
    assert f"n_layers={best['params']['n_layers']}" in rows["parameters"], rows
    assert rows["test score"].startswith(f"test_accuracy = {final['test_accuracy']:.4g}"), rows
    assert rows["trials"].startswith("6: 6 ok, 0 failed"), rows
    (figure,) = landing["images"]
    assert figure["alt"].startswith("optimisation history") and figure["src"].startswith("data:image/png"), figure
    assert figure["width"] > 300 and figure["std"] > 10 and figure["nonwhite"] > 0.01 and figure["colours"] > 20, figure
    assert figure["top"] > landing["heading"]["bottom"] and figure["bottom"] <= landing["window"][1], (figure, landing["window"])
    assert figure["right"] - figure["left"] > 400, figure  # the column's width, readable

    # What a person sees first, as pixels: the report as it opens.
    shot = tmp_path / "report-landing.png"
    chromium(exe, tmp_path / "profile", window, f"--screenshot={shot}", report.as_uri())
    keep_screenshot(shot, "report-landing.png", capsys)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (WINDOW[1], WINDOW[0]), pixels.shape
    drawn = pixels[int(figure["top"]) : int(figure["bottom"]), int(figure["left"]) : int(figure["right"])]
    assert drawn.std() > 10 and (drawn < 200).mean() > 0.01, (drawn.std(), (drawn < 200).mean())
    heading = pixels[int(landing["heading"]["top"]) : int(landing["heading"]["bottom"]), int(landing["heading"]["left"]) :]
    assert (heading < 128).mean() > 0.005, (heading < 128).mean()  # the heading's text is on screen
    shown = {img["name"]: img for img in probe["images"]}
    assert set(shown) == PLOTS
    for img in shown.values():
        # Shown by the report's own <img>, decoded, and not blank: varied pixels, some ink.
        assert img["shown"] and img["width"] > 300 and img["height"] > 200, img
        assert img["std"] > 10 and img["nonwhite"] > 0.01 and img["colours"] > 20, img
        assert img["rendered"][0] > 100, img
    header, rows = read_tsv(s.results / "trials.tsv")
    tables = {table["name"]: table for table in probe["tables"]}
    assert set(tables) == {"trials.html", "answer.html"}
    assert tables["trials.html"]["shown"] and tables["answer.html"]["shown"]
    assert tables["trials.html"]["rows"] == len(rows) and tables["trials.html"]["columns"] == header

    # What a person sees after a click: the report's page showing a plot, as pixels.
    shot = tmp_path / "report-plot.png"
    chromium(
        exe,
        tmp_path / "profile",
        "--window-size=1400,1000",
        f"--screenshot={shot}",
        page.as_uri() + "#show=parallel_coordinates.png",
    )
    keep_screenshot(shot, "report-plot.png", capsys)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    content = pixels[:, 320:]  # right of the report's navigation bar
    assert content.std() > 10 and (content < 200).mean() > 0.01, (content.std(), (content < 200).mean())
