"""Learning-rate schedules of the built-in trainer: lr_at, the history's lr column, the horizon."""

import csv
import math

import pytest
import torch
import yaml

from snaketune.config import resolve_config
from snaketune.data import prepare
from snaketune.errors import ConfigError
from snaketune.hparams import HParams
from snaketune.train import TrialSettings, lr_at, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare({"source": "synthetic", "n_samples": 600, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, path)
    return path


def run(tmp_path, data, params, name, **kw):
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = train(TrialSettings(params=out / "params.yaml", out=out, data=data, **{"seed": 3, **kw}))
    with open(out / "history.csv") as fh:
        return metrics, list(csv.DictReader(fh))


def torch_lrs(make_scheduler, lr: float, epochs: int) -> list[float]:
    """The lr of each epoch under a torch.optim.lr_scheduler stepped once per epoch (the reference)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return lrs


def test_constant_is_the_lr_every_epoch():
    hp = HParams(lr=0.05, epochs=7)
    assert [lr_at(hp, e) for e in range(1, 8)] == [0.05] * 7
    assert not hp.lr_varies


def test_cosine_and_step_without_warmup_are_torchs_schedulers():
    cosine = HParams(lr=0.1, epochs=12, lr_schedule="cosine")
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12), 0.1, 12)
    assert [lr_at(cosine, e) for e in range(1, 13)] == pytest.approx(expected, rel=1e-12)
    step = HParams(lr=0.1, epochs=25, lr_schedule="step", lr_step_size=4, lr_gamma=0.5)
    expected = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5), 0.1, 25)
    assert [lr_at(step, e) for e in range(1, 26)] == pytest.approx(expected, rel=1e-12)


def test_cosine_decays_to_zero_at_the_horizon_and_the_last_epoch_still_learns():
    hp = HParams(lr=0.2, epochs=10, lr_schedule="cosine")
    lrs = [lr_at(hp, e) for e in range(1, 11)]
    assert lrs[0] == 0.2 and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] > 0
    assert lr_at(hp, 11) == pytest.approx(0, abs=1e-15) and lr_at(hp, 30) == pytest.approx(0, abs=1e-15)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_warmup_rises_linearly_then_the_schedule_starts_at_the_full_lr(schedule):
    hp = HParams(lr=0.4, epochs=20, lr_schedule=schedule, warmup_epochs=3, lr_step_size=5, lr_gamma=0.5)
    assert hp.lr_varies
    assert [lr_at(hp, e) for e in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.3])
    assert lr_at(hp, 4) == 0.4  # the first epoch after the warmup trains at the full lr
    after = [lr_at(hp, e) for e in range(4, 21)]
    if schedule == "constant":
        assert after == [0.4] * 17
    elif schedule == "step":  # steps counted from the end of the warmup
        assert after == pytest.approx([0.4] * 5 + [0.2] * 5 + [0.1] * 5 + [0.05] * 2)
    else:  # the half cosine spans the 17 epochs after the warmup
        assert after == pytest.approx([0.2 * (1 + math.cos(math.pi * t / 17)) for t in range(17)])


def test_the_history_records_a_varying_lr_and_a_constant_one_leaves_it_unchanged(tmp_path, data):
    params = {"lr": 0.02, "epochs": 6, "hidden_units": 16, "lr_schedule": "cosine", "warmup_epochs": 2}
    _, hist = run(tmp_path, data, params, "cosine", patience=0)
    assert list(hist[0]) == ["epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds"]
    assert [float(r["lr"]) for r in hist] == [lr_at(HParams(**params), e) for e in range(1, 7)]
    _, plain = run(tmp_path, data, {"lr": 0.02, "epochs": 2, "hidden_units": 16}, "constant", patience=0)
    assert list(plain[0]) == ["epoch", "train_loss", "val_loss", "val_accuracy", "seconds"]


def test_a_schedule_changes_training_and_constant_equals_no_schedule(tmp_path, data):
    base = {"lr": 0.02, "epochs": 4, "hidden_units": 16}
    default, _ = run(tmp_path, data, base, "default", patience=0)
    constant, _ = run(tmp_path, data, {**base, "lr_schedule": "constant", "warmup_epochs": 0}, "constant", patience=0)
    cosine, _ = run(tmp_path, data, {**base, "lr_schedule": "cosine"}, "cosine", patience=0)
    assert constant["val_loss"] == default["val_loss"] and constant["train_loss"] == default["train_loss"]
    assert cosine["train_loss"] != default["train_loss"]


def test_the_horizon_is_the_epochs_parameter_not_the_budget_nor_early_stopping(tmp_path, data):
    """A search run stopped early and the final retrain for its best epoch follow one lr trajectory."""
    params = {"lr": 0.05, "epochs": 30, "hidden_units": 16, "lr_schedule": "cosine", "warmup_epochs": 2}
    search, hist = run(tmp_path, data, params, "search", patience=2, metric="val_loss", direction="minimize")
    assert search["epochs_run"] < 30, "early stopping must stop before the horizon for this test to mean anything"
    final, final_hist = run(tmp_path, data, params, "final", stage="final", budget=search["best_epoch"])
    assert final["epochs_run"] == search["best_epoch"]
    assert [r["lr"] for r in final_hist] == [r["lr"] for r in hist[: search["best_epoch"]]]
    # A short budget (a multi-fidelity rung) stops inside the same schedule: the lr has not decayed to 0.
    _, rung = run(tmp_path, data, params, "rung", budget=4, patience=0)
    assert [float(r["lr"]) for r in rung] == [lr_at(HParams(**params), e) for e in range(1, 5)]
    assert float(rung[-1]["lr"]) > 0.9 * params["lr"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lr_schedule": "linear"}, "parameter `lr_schedule`: must be one of constant, cosine, step, but got 'linear'"),
        ({"warmup_epochs": -1}, "parameter `warmup_epochs`: must be >= 0, but got -1"),
        ({"warmup_epochs": 1.5}, "parameter `warmup_epochs`: must be an integer, but got 1.5"),
        ({"lr_step_size": 0}, "parameter `lr_step_size`: must be >= 1, but got 0"),
        ({"lr_gamma": 0}, "parameter `lr_gamma`: must be in (0, 1], but got 0"),
        ({"lr_gamma": 1.5}, "parameter `lr_gamma`: must be in (0, 1], but got 1.5"),
        ({"lr_gamma": True}, "parameter `lr_gamma`: must be a number, but got True"),
    ],
)
def test_bad_schedule_parameters_are_named(params, message):
    with pytest.raises(ConfigError) as e:
        HParams.from_params(params)
    assert str(e.value) == message


def test_the_config_knows_the_schedule_parameters():
    space = {
        "lr": [0.01],
        "epochs": 10,
        "lr_schedule": ["constant", "cosine", "step"],
        "warmup_epochs": {"type": "int", "low": 0, "high": 3},
        "lr_step_size": [3, 5],
        "lr_gamma": {"type": "float", "low": 0.1, "high": 1.0},
    }

    def config(**over):
        return {"data": {"source": "synthetic"}, "search": {"method": "random"}, "search_space": {**space, **over}}

    resolve_config(config())
    with pytest.raises(ConfigError, match="search_space.warmup_epochs: must be `type: int`"):
        resolve_config(config(warmup_epochs={"type": "float", "low": 0, "high": 3}))
    with pytest.raises(ConfigError, match="search_space.lr_schedule: must be one of constant, cosine, step"):
        resolve_config(config(lr_schedule=["cosine", "onecycle"]))
    with pytest.raises(ConfigError, match=r"search_space.lr_gamma: must be in \(0, 1\]"):
        resolve_config(config(lr_gamma={"type": "float", "low": 0.1, "high": 2.0}))
