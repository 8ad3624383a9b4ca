"""What a trainer writes is untrusted input: any metrics.json, any trainer.command that reaches the
runner, becomes a recorded failure with a reason, never a runner crash; and collecting the
results stays linear in what the trials report."""

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_spec
from snaketune.records import test_metric
from snaketune.runner import (
    METRIC_NAME_MAX,
    METRICS_MAX_BYTES,
    METRICS_MAX_DEPTH,
    METRICS_MAX_KEYS,
    CommandTemplateError,
    read_metrics,
    render_command,
    run_trial,
)
from snaketune.table import columns_for, table_rows
from snaketune.trial_files import epoch_values, read_history

# (metrics.json's text, or bytes; a fragment the reason must contain). None: the file is usable.
PATHOLOGICAL = {
    "an objective too large for a float": ('{"score": 1' + "0" * 400 + "}", "(401 digits) is too large for a float"),
    "an integer of 5000 digits": ('{"score": 1, "n": ' + "9" * 5000 + "}", "(5000 digits) is too large for a float"),
    "an integer just past float's range": ('{"score": 2' + "0" * 308 + "}", "(309 digits) is too large for a float"),
    "nested 100,000 deep": (
        '{"score": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        f"more than {METRICS_MAX_DEPTH} levels deep",
    ),
    "nested a little too deep": ('{"score": 1, "x": ' + "[" * 20 + "]" * 20 + "}", f"more than {METRICS_MAX_DEPTH} levels deep"),
    "NaN objective": ('{"score": NaN}', "objective score is nan"),
    "-Infinity objective": ('{"score": -Infinity}', "objective score is -inf"),
    "1e999 objective": ('{"score": 1e999}', "objective score is inf"),
    "a top-level NaN": ("NaN", 'must hold a JSON object ({"score": ...}), but holds a number'),
    "a top-level string": ('"0.9"', "but holds a string"),
    "a top-level null": ("null", "but holds null"),
    "a top-level array": ("[0.9]", "but holds an array"),
    "a top-level boolean": ("true", "but holds a boolean"),
    "a duplicate objective": ('{"score": 0.1, "score": 0.9}', "key 'score' appears twice in one object"),
    "a duplicate nested key": ('{"score": 1, "cm": {"a": 1, "a": 2}}', "key 'a' appears twice"),
    "too many keys": (
        json.dumps({"score": 1, **{f"m{i}": i for i in range(METRICS_MAX_KEYS)}}),
        f"{METRICS_MAX_KEYS + 1} keys, more than the {METRICS_MAX_KEYS} a trial may report",
    ),
    "a key too long": (json.dumps({"score": 1, "k" * 5000: 1}), f"is 5000 characters long, more than {METRIC_NAME_MAX}"),
    "a key with a tab": ('{"score": 1, "a\\tb": 1}', "key 'a\\tb' holds a tab, newline or other non-printable character"),
    "a key with a newline": ('{"score": 1, "a\\nb": 1}', "non-printable character"),
    "a blank key": ('{"score": 1, " ": 1}', "has a blank key ' '"),
    "an unpaired surrogate": ('{"score": 1, "s": "\\ud800"}', "unpaired \\u surrogate"),
    "a file over the size limit": (
        '{"score": 1, "x": "' + "x" * METRICS_MAX_BYTES + '"}',
        f"larger than the limit of {METRICS_MAX_BYTES:,} bytes",
    ),
    "bytes that are not UTF-8": (b'{"score": 1, "\xe9": 2}', "is not UTF-8 text (byte 14)"),
    "an empty file": ("", "metrics.json is empty"),
    "a truncated file": ('{"score": 0.9', "is not valid JSON"),
    "an objective of the wrong type": ('{"score": [0.9]}', "objective score is not a number: [0.9]"),
    "a boolean objective": ('{"score": true}', "objective score is not a number: True"),
    "a long text objective": ('{"score": "' + "x" * 10_000 + '"}', "not a number: 'xxxx"),
    # Usable: other metrics may be non-finite (Python's json writes NaN), a UTF-8 BOM is tolerated.
    "NaN in another metric": ('{"score": 1, "val_loss": NaN}', None),
    "a byte-order mark": ("\ufeff" + '{"score": 1}', None),
    "nested values within the limit": (json.dumps({"score": 1, "cm": [[1, 2], [3, 4]], "env": {"a": "b"}}), None),
    "exactly the key limit": (json.dumps({"score": 1, **{f"m{i}": i for i in range(METRICS_MAX_KEYS - 1)}}), None),
    "a large integer that fits a float": ('{"score": 1' + "0" * 300 + "}", None),
}


@pytest.mark.parametrize("text, fragment", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_any_metrics_file_is_read_or_a_reason(tmp_path, text, fragment):
    path = tmp_path / "metrics.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    metrics, reason = read_metrics(path, "score")
    if fragment is None:
        assert reason is None and metrics["score"] == json.loads(text.lstrip("\ufeff"))["score"]
        return
    assert fragment in reason
    assert len(reason) < 400, reason  # a reason is one readable line, whatever the trainer wrote
    json.dumps({"reason": reason}).encode("utf-8")  # and it fits result.json and trials.tsv


def test_metrics_that_are_not_a_regular_file(tmp_path):
    assert read_metrics(tmp_path / "metrics.json", "score") == (None, "the trainer wrote no metrics.json")
    (tmp_path / "metrics.json").mkdir()
    assert read_metrics(tmp_path / "metrics.json", "score") == (None, "metrics.json is not a regular file")


def test_a_missing_objective_lists_a_bounded_number_of_keys(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({f"m{i:03}": i for i in range(300)}))
    metrics, reason = read_metrics(path, "score")
    assert reason.startswith("metrics.json has no objective `score` (it has: m000, m001,")
    assert reason.endswith("... (300 keys))") and len(metrics) == 300


def trainer(tmp_path, text: str) -> str:
    """A trainer command that writes ``text`` as metrics.json (bytes, exactly)."""
    (tmp_path / "payload").write_bytes(text.encode("utf-8", "surrogatepass"))
    body = "import os, shutil, sys; shutil.copyfile(sys.argv[1], os.path.join(sys.argv[2], 'metrics.json'))"
    (tmp_path / "trainer.py").write_text(body)
    return f"{sys.executable} {tmp_path / 'trainer.py'} {tmp_path / 'payload'} {{out}}"


@pytest.mark.parametrize(
    "case",
    ["an objective too large for a float", "nested 100,000 deep", "a duplicate objective", "too many keys", "a top-level NaN"],
)
def test_the_runner_records_pathological_metrics_as_a_failure(tmp_path, case):
    text, fragment = PATHOLOGICAL[case]
    out = tmp_path / "trial"
    r = run_trial(run_spec(out, trainer(tmp_path, text), data=tmp_path / "d.npz", params={"x": 1}, metric="score"), lease=False)
    assert r["status"] == "failed" and fragment in r["reason"] and r["metrics"] == {}
    saved = json.loads((out / "result.json").read_text())  # a result exists: a re-run does not fail again
    assert saved["status"] == "failed" and saved["reason"] == r["reason"]


@pytest.mark.parametrize(
    "content",
    [b"epoch,val_loss\n1,\xff\xfe\n", b"epoch,val_loss\n1," + b"9" * 200_000 + b"\n", None],
    ids=["not UTF-8", "a field over csv's limit", "a folder"],
)
def test_an_unreadable_history_is_left_out_with_a_warning(tmp_path, content):
    path = tmp_path / "history.csv"
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.warns(UserWarning, match="history.csv: not read as a training history"):
        assert read_history(path) == {}
    with pytest.warns(UserWarning):
        assert epoch_values([path], "val_loss") == {}


# -- trainer.command ------------------------------------------------------------------------------------

VALUES = {"params": "/p/params.yaml", "out": "/o", "seed": "7"}


@pytest.mark.parametrize(
    "template, fragment",
    [
        ("t {foo}", "unknown placeholder {foo}; valid: {params}, {out}, {seed}"),
        ("t {}", "unknown placeholder {}"),
        ("t {0}", "unknown placeholder {0}"),
        ("t {out.real}", "unknown placeholder {out.real}"),
        ("t {params[0]}", "unknown placeholder {params[0]}"),
        ("t {out!r}", "placeholder {out!r} has a conversion or format spec; write it as {out}"),
        ("t {seed:d}", "placeholder {seed:d} has a conversion or format spec"),
        ("t {out:>99999999999}", "has a conversion or format spec"),
        ("t {out:{seed}}", "placeholder {out:{seed}} has a conversion or format spec"),
        ("t {out", "cannot parse it (expected '}' before end of string); write a literal brace as {{ or }}"),
        ("t }", "cannot parse it (Single '}' encountered in format string)"),
    ],
)
def test_a_malformed_template_is_a_clear_error(template, fragment):
    with pytest.raises(CommandTemplateError) as e:
        render_command(template, VALUES)
    assert fragment in str(e.value)


def test_a_template_fills_bare_placeholders_and_literal_braces():
    assert render_command("awk '{{print $1}}' {out} {params}", VALUES) == "awk '{print $1}' /o /p/params.yaml"


def test_a_malformed_template_is_a_failed_trial_not_a_crash(tmp_path):
    out = tmp_path / "trial"
    r = run_trial(run_spec(out, "python t.py {out!r}", data=tmp_path / "d.npz", params={"x": 1}, metric="score"), lease=False)
    assert r["status"] == "failed" and r["exit_code"] is None
    assert (
        r["reason"]
        == "trainer.command cannot be filled in: placeholder {out!r} has a conversion or format spec; write it as {out}"
    )
    assert json.loads((out / "result.json").read_text())["reason"] == r["reason"]


# -- collect is linear in the metrics a trial reports ------------------------------------------------


class CountingKey(str):
    """A metric name that counts its comparisons: membership in a list compares with every element;
    in a dict or set, only with an equal hash."""

    calls = 0

    def __eq__(self, other):
        CountingKey.calls += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_the_table_compares_each_metric_name_a_bounded_number_of_times():
    n = 3000
    records = [
        {
            "trial": f"t{t}",
            "status": "ok",
            "objective": t,
            "params": {"x": t},
            "metrics": {CountingKey(f"m{i}"): i for i in range(n)},
        }
        for t in range(3)
    ]
    CountingKey.calls = 0
    rows = table_rows(records, ["x"], "score", "maximize")
    columns = columns_for(rows, ["x"])
    assert len(columns) == 3 + 1 + n + 3
    assert CountingKey.calls < 10 * n  # quadratic code compares about n * n / 2 = 4,500,000 times


def test_a_metric_named_like_a_table_column_does_not_take_its_place():
    """A trainer reporting `budget` (a schedule's column: a larger one outranks) cannot jump the ranking."""
    records = [
        {"trial": "good", "status": "ok", "objective": 0.9, "params": {}, "metrics": {"score": 0.9}},
        {"trial": "sly", "status": "ok", "objective": 0.1, "params": {}, "metrics": {"score": 0.1, "budget": 1e9, "error": ""}},
    ]
    rows = table_rows(records, [], "score", "maximize")
    assert [r["trial"] for r in rows] == ["good", "sly"]
    assert "budget" not in rows[1] and "budget" not in columns_for(rows, [])


# -- the documented contract is the code's -------------------------------------------------------------


def contract_text() -> str:
    return (REPO / "README.md").read_text() + (REPO / "config" / "README.md").read_text()


def test_the_documented_test_metric_names_are_the_rule():
    pairs = re.findall(r"`([a-z_]+)`\s*→\s*`(test_[a-z_]+)`", contract_text())
    assert {"val_accuracy", "score"} <= {a for a, _ in pairs}
    for metric, final in pairs:
        assert test_metric(metric) == final, (metric, final)


def test_the_documented_metrics_limits_are_the_codes():
    text = contract_text()
    for number in (f"{METRICS_MAX_BYTES:,}", str(METRICS_MAX_KEYS), str(METRIC_NAME_MAX), str(METRICS_MAX_DEPTH)):
        assert number in text


def test_a_trainer_following_the_readme_example_passes_the_final_stage(tmp_path):
    """The README's example trainer, for a custom objective `score` in the final stage."""
    (tmp_path / "t.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys
            key = "test_score" if os.environ["SNAKETUNE_STAGE"] == "final" else "score"
            json.dump({key: 0.5}, open(os.path.join(sys.argv[1], "metrics.json"), "w"))
            """
        )
    )
    cmd = f"{sys.executable} {tmp_path / 't.py'} {{out}}"
    for stage in ("search", "final"):
        spec = run_spec(Path(tmp_path / stage), cmd, data=tmp_path / "d.npz", params={"x": 1}, metric="score", stage=stage)
        assert run_trial(spec, lease=False)["status"] == "ok"
