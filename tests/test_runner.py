"""The trial runner: any trainer through the contract; every failure becomes a recorded reason."""

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from conftest import run_spec
from snaketune.runner import failure_reason, render_command, run_trial


def spec(tmp_path, command, **over):
    params = {"x": 1.5, "name": "a b"}
    return run_spec(
        tmp_path / "trials" / "t1", command, data=tmp_path / "data.npz", params=params, metric="score", seed=11, **over
    )


def script(tmp_path, body: str) -> str:
    path = tmp_path / "trainer.py"
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path} {{params}} {{out}}"


def test_custom_trainer_sees_the_contract(tmp_path):
    cmd = script(
        tmp_path,
        """
        import json, os, sys, yaml
        params = yaml.safe_load(open(sys.argv[1]))
        env = {k: v for k, v in os.environ.items() if k.startswith("SNAKETUNE_")}
        json.dump({"score": params["x"] * 2, "env": env, "argv": sys.argv[1:]}, open(os.path.join(sys.argv[2], "metrics.json"), "w"))
        """,
    )
    r = run_trial(spec(tmp_path, cmd))
    assert r["status"] == "ok" and r["objective"] == 3.0 and r["reason"] is None
    env = r["metrics"]["env"]
    out = tmp_path / "trials" / "t1"
    assert env["SNAKETUNE_PARAMS"] == str(out / "params.yaml")
    assert env["SNAKETUNE_OUT"] == str(out)
    assert env["SNAKETUNE_DATA"] == str(tmp_path / "data.npz")
    assert env["SNAKETUNE_STAGE"] == "search" and env["SNAKETUNE_SEED"] == "11" and env["SNAKETUNE_FOLD"] == "0"
    assert env["SNAKETUNE_RESUME"] == ""
    assert yaml.safe_load((out / "params.yaml").read_text()) == {"x": 1.5, "name": "a b"}
    assert json.loads((out / "result.json").read_text())["status"] == "ok"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("import sys; print('boom: bad weights', file=sys.stderr); sys.exit(3)", "exit code 3: boom: bad weights"),
        ("raise ValueError('shape mismatch')", "ValueError: shape mismatch"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "killed by signal SIGSEGV"),
        ("pass", "wrote no metrics.json"),
        ("import sys, os; open(os.path.join(sys.argv[2], 'metrics.json'), 'w').write('{not json')", "not valid JSON"),
        ("import sys, os; open(os.path.join(sys.argv[2], 'metrics.json'), 'w').write('[1, 2]')", "must hold a JSON object"),
        (
            "import sys, os; open(os.path.join(sys.argv[2], 'metrics.json'), 'w').write('{\"loss\": 1}')",
            "has no objective `score` (it has: loss)",
        ),
        (
            "import sys, os; open(os.path.join(sys.argv[2], 'metrics.json'), 'w').write('{\"score\": NaN}')",
            "objective score is nan",
        ),
        ("import sys, os; open(os.path.join(sys.argv[2], 'metrics.json'), 'w').write('{\"score\": \"high\"}')", "not a number"),
    ],
)
def test_failures_are_recorded_with_a_reason(tmp_path, body, fragment):
    r = run_trial(spec(tmp_path, script(tmp_path, body)))
    assert r["status"] == "failed"
    assert fragment in r["reason"]
    assert r["objective"] is None
    saved = json.loads((tmp_path / "trials" / "t1" / "result.json").read_text())
    assert saved["status"] == "failed" and saved["reason"] == r["reason"]


@pytest.mark.parametrize(
    "metric, writes, fragment",
    [
        ("score", {"test_score": 0.5}, None),
        ("val_f1", {"test_f1": 0.5, "val_f1": 0.9}, None),
        (
            "score",
            {"score": 0.5},
            "has no objective `test_score`, the final stage's name for the objective `score` (it has: score)",
        ),
        ("val_f1", {"test_val_f1": 0.5}, "has no objective `test_f1`, the final stage's name for the objective `val_f1`"),
    ],
)
def test_the_final_stage_requires_the_objectives_test_name(tmp_path, metric, writes, fragment):
    """records.test_metric names it: val_<name> -> test_<name>, any other <name> -> test_<name>."""
    body = f"import sys, os, json; json.dump({writes!r}, open(os.path.join(sys.argv[2], 'metrics.json'), 'w'))"
    final = run_spec(
        tmp_path / "final", script(tmp_path, body), data=tmp_path / "d.npz", params={"x": 1}, metric=metric, stage="final"
    )
    r = run_trial(final, lease=False)
    assert r["objective"] is None and r["metrics"] == writes  # the final stage is not ranked; its metrics are kept
    if fragment is None:
        assert r["status"] == "ok" and r["reason"] is None
    else:
        assert r["status"] == "failed" and fragment in r["reason"]


def test_timeout_kills_the_trainer(tmp_path):
    r = run_trial(spec(tmp_path, script(tmp_path, "import time; time.sleep(60)")), timeout=0.5)
    assert r["status"] == "failed" and r["reason"] == "timed out after 0.5 s"
    assert r["seconds"] < 15


def test_stale_metrics_from_an_earlier_attempt_do_not_count(tmp_path):
    out = tmp_path / "trials" / "t1"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text('{"score": 99}')
    r = run_trial(spec(tmp_path, script(tmp_path, "import sys; sys.exit(1)")))
    assert r["status"] == "failed" and not (out / "metrics.json").exists()


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "a'b\"c", "$(touch pwned)", "x; rm -rf ~", "line\nbreak", "`id`"])
def test_substituted_values_are_shell_quoted(tmp_path, hostile):
    cmd = render_command("printf '%s' {params}", {"params": hostile})
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout == hostile
    assert not (tmp_path / "pwned").exists()


def test_failure_reason_prefers_the_trainers_own_words():
    assert failure_reason(2, ["noise\n", "[snaketune] trial failed: diverged at epoch 4\n"]) == "diverged at epoch 4"
    assert failure_reason(1, []) == "exit code 1"
