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
    assert cfg["objective"] == {"metric": "val_accuracy", "direction": "maximize"}
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
