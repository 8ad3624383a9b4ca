"""Config checks: errors name the key and what would be valid; one config file = one study."""

import pytest
import yaml

from conftest import REPO
from snaketune.config import load_schema, one_study, resolve_config, schema_path
from snaketune.errors import ConfigError

REPO_DEFAULT = REPO / "config" / "config.yaml"


def base(**over):
    cfg = {"data": {"source": "synthetic"}, "search_space": {"lr": [0.01, 0.1], "epochs": 2}}
    cfg.update(over)
    return cfg


def error_of(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        resolve_config(cfg)
    return str(e.value)


def test_defaults_are_filled_from_the_schema():
    cfg = resolve_config(base())
    assert cfg["study"] == "seed-grid"
    assert cfg["objective"] == {"metric": "val_accuracy", "direction": "maximize", "also": {}, "constraints": {}}
    assert cfg["early_stopping"]["patience"] == 5
    assert cfg["data"]["val_fraction"] == 0.2 and cfg["data"]["source"] == "synthetic"
    assert cfg["final"]["retrain"] is True


def test_the_shipped_default_config_is_valid_and_is_the_seed_grid():
    with open(REPO_DEFAULT) as fh:
        cfg = resolve_config(yaml.safe_load(fh))
    from snaketune.plan import plan_trials

    assert len(plan_trials(cfg)) == 27


@pytest.mark.parametrize(
    "cfg, fragments",
    [
        (base(serch={"method": "grid"}), ["`serch` is not known", "did you mean `search`"]),
        (base(search={"methd": "grid"}), ["`search.methd` is not known", "did you mean `method`"]),
        (base(search={"method": "bayesian"}), ["`search.method`", "Valid: grid, random"]),
        (base(search={"method": "random", "n_trials": 0}), ["`search.n_trials`: must be >= 1, but got 0"]),
        (base(search={"n_trials": "ten"}), ["`search.n_trials`: must be an integer, but got 'ten'"]),
        (base(trainer={"timeout": "soon"}), ["`trainer.timeout`: must be a number or null, but got 'soon'"]),
        (base(data={"source": "synthetic", "image_size": [1, 2, 3]}), ["`data.image_size`: must be a list of 2 values"]),
        (base(search_space={}), ["`search_space`: must name at least 1 key(s), but got {}"]),
        (base(data={"source": "cifar"}), ["`data.source`", "digits, mnist1d, synthetic, csv, npz"]),
        (base(data={"source": "synthetic", "val_fraction": 1.0}), ["`data.val_fraction`"]),
        (base(data={"source": "synthetic", "val_fraction": 0.5, "test_fraction": 0.48}), ["leave less than 5%"]),
        (base(data={"source": "csv"}), ["`data.path` is required"]),
        (base(data={"source": "csv", "path": "nowhere.csv"}), ["`data.path`", "'nowhere.csv' does not exist"]),
        (
            base(search_space={"lr": {"type": "float", "low": 0.001, "high": 0.1}}),
            ["search_space.lr", "grid search cannot enumerate"],
        ),
        (base(search_space={"learning_rate": [0.1]}), ["no parameter(s) learning_rate", "it knows"]),
        (base(search_space={"lr": [0.1], "activation": ["relu", "swish"]}), ["search_space.activation", "must be one of"]),
        (base(search_space={"dropout": [0.1, 1.5]}), ["search_space.dropout: must be in [0, 1), but got 1.5"]),
        (base(search_space={"n_layers": {"type": "float", "low": 1, "high": 3, "grid": [1.0]}}), ["must be `type: int`"]),
        (base(objective={"metric": "val_acc"}), ["`objective.metric`", "did you mean `val_accuracy`"]),
        (base(objective={"metric": "val_loss"}), ["`objective.direction`", "val_loss should be minimized"]),
        (base(trainer={"command": "python t.py {param}"}), ["unknown placeholder {param}", "did you mean `params`"]),
        (base(study="../escape"), ["`study`: '../escape' is not allowed (it must match", "Letters, digits"]),
        (base(early_stopping={"patience": -1}), ["`early_stopping.patience`"]),
    ],
)
def test_errors_name_the_key(cfg, fragments):
    msg = error_of(cfg)
    for f in fragments:
        assert f in msg, msg


def test_custom_trainer_may_use_any_parameter_and_metric():
    cfg = resolve_config(
        base(
            trainer={"command": "./train.sh {params} {out}"},
            objective={"metric": "loss", "direction": "minimize"},
            search_space={"x": [1, 2], "whatever": "a"},
        )
    )
    assert cfg["objective"]["metric"] == "loss"


def test_search_space_of_the_study_file_replaces_the_default(tmp_path):
    default = {"study": "seed-grid", "search_space": {"lr": [0.1], "n_layers": [1, 3, 5]}, "data": {"source": "digits"}}
    study_file = tmp_path / "mystudy.yaml"
    study_file.write_text(yaml.safe_dump({"search_space": {"hidden_units": [8, 16]}, "data": {"source": "synthetic"}}))
    # What Snakemake hands the workflow: the recursive merge of both files.
    merged = {
        "study": "seed-grid",
        "search_space": {"lr": [0.1], "n_layers": [1, 3, 5], "hidden_units": [8, 16]},
        "data": {"source": "synthetic"},
    }
    cfg = one_study(merged, [str(study_file)])
    assert cfg["search_space"] == {"hidden_units": [8, 16]}
    assert cfg["study"] == "mystudy"  # named after the file, not the default study
    assert default["search_space"]["lr"] == [0.1]
    # Without --configfile nothing changes.
    assert one_study(merged, []) == merged


def test_one_study_reports_a_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        one_study({}, [str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        one_study({}, [str(bad)])


def test_numbers_in_exponent_notation_are_numbers_where_numbers_belong():
    """PyYAML (Snakemake's loader) reads `1e-4` as text; YAML 1.2 and every user read a number."""
    text = """
study: 1e5
early_stopping: {min_delta: 1e-4}
search_space:
  lr: {type: float, low: 1e-4, high: 1E-1, log: true, grid: [1e-3, 1.5e-2]}
  weight_decay: [0, 1e-5, 1.0e-4]
  epochs: 2
"""
    raw = yaml.safe_load(text)
    assert raw["search_space"]["lr"]["low"] == "1e-4", "PyYAML still reads it as text"
    cfg = resolve_config({**raw, "data": {"source": "synthetic"}})
    lr = cfg["search_space"]["lr"]
    assert (lr["low"], lr["high"], lr["grid"]) == (1e-4, 0.1, [1e-3, 0.015])
    assert cfg["search_space"]["weight_decay"] == [0, 1e-5, 1e-4]
    assert cfg["early_stopping"]["min_delta"] == 1e-4
    assert cfg["study"] == "1e5", "a name stays text"


def test_the_schema_ships_with_the_package_and_loads_the_same_from_either_end():
    assert schema_path().is_file()
    assert load_schema() == load_schema(schema_path())
    assert load_schema()["properties"]["search"]["properties"]["method"]["enum"] == ["grid", "random", "bayes"]


def test_every_schema_key_has_a_description_and_a_default():
    """The schema is the documentation and the source of defaults (STYLE.md): a key without
    either would be undocumented or missing from resolve_config's result."""

    def walk(node, key):
        yield key, node
        for name, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{key}.{name}" if key else name)

    for key, node in walk(load_schema(), ""):
        if key:
            assert node.get("description"), f"{key} has no description"
            assert "default" in node, f"{key} has no default"


def test_a_resolved_config_resolves_to_itself():
    """Validated once: what resolve_config returns passes again unchanged (the workflow may check it twice)."""
    cfg = resolve_config(base())
    assert resolve_config(cfg) == cfg


# -- issue 14: bad input of every kind is a clear error before any job runs ---------------------------

CUSTOM = {"command": "python train.py {params} {out}"}


def custom(search_space, metric="score", **over):
    return base(trainer=CUSTOM, objective={"metric": metric, "direction": "maximize"}, search_space=search_space, **over)


@pytest.mark.parametrize(
    "name, metric, why",
    [
        ("objective", "score", "is a column of trials.tsv"),
        ("status", "score", "is a column of trials.tsv"),
        ("trial", "score", "is a column of trials.tsv"),
        ("seconds", "score", "is a column of trials.tsv"),
        ("budget", "score", "is a column of trials.tsv"),
        ("epochs_run", "score", "is a column of trials.tsv"),
        ("score", "score", "is the name of a metric (the objective 'score'"),
        ("test_score", "score", "is the name of a metric"),
        ("val_accuracy", "val_accuracy", "is the name of a metric"),
        ("val_loss", "val_accuracy", "is the name of a metric"),  # the tie-break of val_accuracy
        ("test_loss", "val_accuracy", "is the name of a metric"),
        ("val_f1", "score", "is the name of a metric"),  # val_*: a metric's name, whatever the objective
    ],
)
def test_a_parameter_never_takes_the_place_of_a_column_or_a_metric(name, metric, why):
    msg = error_of(custom({name: [1, 2], "x": [1, 2, 3]}, metric=metric))
    assert f"search_space.{name}: the parameter name {name!r} {why}" in msg, msg
    assert f"Rename the parameter (e.g. `p_{name}`)" in msg


def test_a_parameter_named_like_no_column_or_metric_is_fine():
    cfg = resolve_config(custom({"train_steps": [1, 2], "x": [1], "p_objective": 3, "_private": 0}))
    assert list(cfg["search_space"]) == ["train_steps", "x", "p_objective", "_private"]


def study_as_the_workflow_reads_it(tmp_path, text: str) -> dict:
    """What common.smk does with `snakemake --configfile study.yaml`: Snakemake's loader, then
    one_study (which reads the file itself), then resolve_config."""
    from snakemake.common.configfile import load_configfile

    path = tmp_path / "study.yaml"
    path.write_text(text)
    return resolve_config(one_study(load_configfile(str(path)), [str(path)]))


def test_quoted_numbers_reach_a_custom_trainer_as_text_and_plain_ones_as_numbers(tmp_path):
    cfg = study_as_the_workflow_reads_it(
        tmp_path,
        """
trainer: {command: "python train.py {params} {out}"}
objective: {metric: score}
data: {source: synthetic}
search_space:
  code: ["1e3", '1E-2', 1e-3, 1.5e3, 2, "7"]
  tag: "2e5"
  width: 1e3
""",
    )
    assert cfg["search_space"] == {"code": ["1e3", "1E-2", 0.001, 1500.0, 2, "7"], "tag": "2e5", "width": 1000.0}
    from snaketune.plan import plan_trials

    assert {type(t.params["code"]) for t in plan_trials(cfg)} == {str, float, int}
    assert {t.params["tag"] for t in plan_trials(cfg)} == {"2e5"}


def test_numbers_are_numbers_where_the_built_in_trainer_or_a_range_declares_them(tmp_path):
    """Quoted or not: the built-in trainer's lr is a number, and so is a range's bound."""
    cfg = study_as_the_workflow_reads_it(
        tmp_path,
        "data: {source: synthetic}\nsearch: {method: random}\nsearch_space: {lr: ['1e-3', 1e-2], weight_decay: '1e-4', dropout: {type: float, low: 0, high: 5e-1, step: 1e-1}, epochs: 2}\n",
    )
    assert cfg["search_space"]["lr"] == [0.001, 0.01]
    assert cfg["search_space"]["weight_decay"] == 1e-4
    assert cfg["search_space"]["dropout"]["high"] == 0.5


def test_a_custom_trainers_text_stays_text_and_snakemake_loaded_text_is_read_as_yaml_1_2():
    """A Python str is text; a search space only Snakemake read (the default study's, a module's)
    cannot tell `1e-3` from `"1e-3"`, and reads both as the number."""
    assert resolve_config(custom({"code": ["1e3", "x"]}))["search_space"]["code"] == ["1e3", "x"]
    assert one_study({"search_space": {"code": ["1e3", "x"], "n": "1e-3"}}, [])["search_space"] == {
        "code": [1000.0, "x"],
        "n": 0.001,
    }


@pytest.mark.parametrize(
    "over",
    [
        {"search": {"method": "random", "n_trials": 2.0}},
        {"search": {"method": "bayes", "n_trials": 3.0, "batch": 1.0, "n_startup": 2.0}},
        {"search": {"method": "random", "n_trials": 4.0, "trials_per_job": 2.0}},
        {"cv": {"folds": 2.0}},
        {"data": {"source": "synthetic", "n_samples": 300.0, "seed": 1.0}},
        {"early_stopping": {"patience": 2.0}},
        {"select": {"top_k": 2.0, "seeds": 1.0}, "final": {"repeats": 2.0}},
        {"search": {"method": "grid", "seed": 3.0}, "data": {"source": "images", "image_size": [8.0, 8.0]}},
        {
            "search": {"method": "random", "n_trials": 9.0, "schedule": "hyperband", "min_epochs": 1.0, "eta": 3.0},
            "search_space": {"lr": [0.01, 0.1], "epochs": 9.0},
        },
        {"search": {"method": "random", "n_trials": "1e1"}},  # PyYAML's text for 1e1
    ],
)
def test_whole_floats_in_integer_keys_are_ints(over, tmp_path):
    """JSON Schema counts 2.0 as an integer; after resolve_config every integer key holds an int,
    so that range(), slicing and the plan work."""
    if over.get("data", {}).get("source") == "images":
        over["data"]["path"] = str(tmp_path)
    cfg = resolve_config(base(**over))

    def ints(node, schema, key=""):
        if "properties" in schema and isinstance(node, dict):
            for k, sub in schema["properties"].items():
                if k in node:
                    yield from ints(node[k], sub, f"{key}.{k}")
        elif "integer" in str(schema.get("type")) and node is not None:
            for v in node if isinstance(node, list) else [node]:
                yield key, v

    found = list(ints(cfg, load_schema()))
    assert found and all(type(v) is int for _, v in found), [(k, v) for k, v in found if type(v) is not int]
    if "epochs" in over.get("search_space", {}):
        assert cfg["search_space"]["epochs"] == 9 and type(cfg["search_space"]["epochs"]) is int
    from snaketune.plan import StudyPlan

    StudyPlan(cfg)  # builds


def test_whole_floats_are_ints_where_the_built_in_trainer_declares_ints_and_stay_as_written_for_a_custom_one():
    cfg = resolve_config(
        base(search_space={"hidden_units": [32.0, 64], "n_layers": {"type": "int", "low": 1.0, "high": 3}, "epochs": 2.0})
    )
    ss = cfg["search_space"]
    assert ss["hidden_units"] == [32, 64] and type(ss["hidden_units"][0]) is int
    assert type(ss["n_layers"]["low"]) is int and type(ss["epochs"]) is int
    assert type(resolve_config(custom({"x": [1.0, 2]}))["search_space"]["x"][0]) is float


@pytest.mark.parametrize(
    "over, fragment",
    [
        (
            {"trainer": {"timeout": float("inf")}},
            "config key `trainer.timeout`: must be a finite number (not .inf or .nan), but got inf",
        ),
        ({"data": {"source": "synthetic", "val_fraction": float("nan")}}, "config key `data.val_fraction`: must be a finite"),
        ({"early_stopping": {"min_delta": float("inf")}}, "config key `early_stopping.min_delta`: must be a finite"),
        ({"data": {"source": "synthetic", "max_memory_mb": float("inf")}}, "config key `data.max_memory_mb`: must be a finite"),
        (
            {"search": {"n_trials": float("inf")}},
            "config key `search.n_trials`: must be a finite number (not .inf or .nan), but got inf",
        ),
        (
            {"search_space": {"lr": float("inf"), "epochs": 2}},
            "search_space.lr: must be a finite number (not .inf or .nan), but got inf",
        ),
        (
            {"search_space": {"lr": [0.1, float("nan")], "epochs": 2}},
            "search_space.lr: every choice must be a finite number (not .inf or .nan)",
        ),
        (
            {"search_space": {"lr": {"type": "float", "low": 0.1, "high": 1, "grid": [0.5, float("inf")]}, "epochs": 2}},
            "search_space.lr.grid: every value must be a finite number (not .inf or .nan), but got inf",
        ),
        ({"search_space": {"lr": {"type": "float", "low": 0.1, "high": float("inf")}}}, "search_space.lr.high: must be a finite"),
        (
            {
                "search": {"method": "random"},
                "search_space": {"lr": {"type": "float", "low": 0.1, "high": 1, "step": float("inf")}},
            },
            "search_space.lr.step: must be a positive number, but got inf",
        ),
    ],
)
def test_infinity_and_nan_are_rejected_everywhere(over, fragment):
    msg = error_of(base(**over))
    assert fragment in msg, msg


@pytest.mark.parametrize(
    "over, fragment",
    [
        ({"search": {"seed": -5}}, "`search.seed`: must be >= 0, but got -5"),
        ({"data": {"source": "synthetic", "seed": -1}}, "`data.seed`: must be >= 0, but got -1"),
        ({"search": {"seed": 2**31}}, "`search.seed`: must be <= 2147483647"),
        (
            {"study": "a" * 101},
            "`study`: must be at most 100 characters long, but got 101 characters ('aaaaaaaaaaaaaaaaaaaa...')",
        ),
        ({"study": "my study"}, "`study`: 'my study' is not allowed"),
        ({"data": {"source": "synthetic", "n_samples": 10**10}}, "`data.n_samples`: must be <= 1000000, but got 10000000000"),
        ({"search": {"method": "random", "n_trials": True}}, "`search.n_trials`: must be an integer, but got True"),
        ({"trainer": {"timeout": 0.5}}, "`trainer.timeout`: must be >= 1, but got 0.5"),
        ({"search_space": {"activation": ["relu", "relu"]}}, "search_space.activation: 'relu' is listed twice"),
        ({"search_space": {"n_layers": {"type": "int", "low": 1, "high": 6, "step": 2}}}, "`step` 2 must divide high - low = 5"),
    ],
)
def test_seeds_names_sizes_and_values_out_of_range_name_the_key(over, fragment):
    msg = error_of(base(**over))
    assert fragment in msg, msg


def test_a_seed_of_zero_and_a_100_character_name_are_fine():
    cfg = resolve_config(base(study="a" * 100, search={"seed": 0}, data={"source": "synthetic", "seed": 2**31 - 1}))
    assert cfg["study"] == "a" * 100


SIZES = [
    {"search": {"method": "grid"}},
    {"search": {"method": "grid"}, "cv": {"folds": 3}},
    {"search": {"method": "grid", "trials_per_job": 3}, "cv": {"folds": 2}},
    {"search": {"method": "random", "n_trials": 11, "trials_per_job": 4}},
    {"search": {"method": "bayes", "n_trials": 13, "n_startup": 4, "batch": 3}},
    {"search": {"method": "bayes", "n_trials": 13, "n_startup": 4, "batch": 3, "trials_per_job": 2}, "cv": {"folds": 2}},
    {"search": {"method": "bayes", "n_trials": 3, "n_startup": 8}},
    {"search": {"method": "random", "n_trials": 5}, "select": {"top_k": 2, "seeds": 3}, "cv": {"folds": 2}},
    {"search": {"method": "random", "n_trials": 5}, "final": {"retrain": False}},
    *[
        {
            "search": {"method": method, "n_trials": 40, "n_startup": 4, "batch": 3, "schedule": schedule, "min_epochs": 1},
            "search_space": {"lr": [0.001, 0.01, 0.1], "n_layers": [1, 2], "epochs": 27},
        }
        for method in ("grid", "random", "bayes")
        for schedule in ("successive_halving", "hyperband")
    ],
]


@pytest.mark.parametrize("over", SIZES)
def test_plan_size_counts_what_the_plan_builds(over):
    """The size check counts trials and jobs from the config alone; it must agree with the plan."""
    from snaketune.plan import StudyPlan, plan_size

    cfg = resolve_config(base(**over))
    plan, size = StudyPlan(cfg), plan_size(cfg)
    assert size.trials == len(plan.trials)
    assert size.search_jobs == len(plan.study_results())
    rounds = len({t.round for t in plan.trials if t.round is not None})
    promotes = sum(len(b.bracket.rungs) - 1 for b in plan.brackets)
    finals = plan.final_repeats if cfg["final"]["retrain"] else 0
    assert size.other_jobs == rounds + promotes + len(plan.reeval_files()) + finals


def test_a_study_too_large_to_plan_is_rejected_before_it_is_planned():
    """10^9 trials: the check counts, it does not sample (a plan of that size would never finish)."""
    import time

    t0 = time.perf_counter()
    msg = error_of(base(search={"method": "random", "n_trials": 10**9}, cv={"folds": 5}))
    assert time.perf_counter() - t0 < 10
    assert "config key `search.n_trials`: the study has 1,000,000,000 trials, more than the 100,000" in msg
    msg = error_of(base(search={"method": "random", "n_trials": 50_000, "trials_per_job": 1}, cv={"folds": 3}))
    assert (
        "config keys `search.n_trials`, `cv.folds`: the study has 50,000 trials × 3 folds: 150,003 jobs, more than the 100,000"
        in msg
    )
    assert "lower search.n_trials, use fewer cv.folds, or pack more trials into one job with search.trials_per_job (now 1)" in msg


def test_a_large_study_warns_and_packing_its_trials_silences_the_warning():
    from snaketune.config import StudySizeWarning

    with pytest.warns(StudySizeWarning, match="the study has 6,000 trials × 2 folds: 12,003 jobs. Snakemake plans them"):
        resolve_config(base(search={"method": "random", "n_trials": 6000}, cv={"folds": 2}))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_config(base(search={"method": "random", "n_trials": 6000, "trials_per_job": 10}, cv={"folds": 2}))
