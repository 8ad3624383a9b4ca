"""The trainer's optimisers: torch.optim's update, fused where the parameters allow, no torch._dynamo."""

import subprocess
import sys

import pytest
import torch

from snaketune.errors import ConfigError
from snaketune.train import make_optimizer

REFERENCE = {
    "adam": lambda p, wd, fused: torch.optim.Adam(p, lr=0.01, weight_decay=wd, fused=fused, foreach=not fused),
    "adamw": lambda p, wd, fused: torch.optim.AdamW(p, lr=0.01, weight_decay=wd, fused=fused, foreach=not fused),
    "sgd": lambda p, wd, fused: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=wd, fused=fused, foreach=not fused),
}


def _model(**kw):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16, **kw), torch.nn.ReLU(), torch.nn.Linear(16, 3, **kw))


def _batches(n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(32, 8, generator=gen), torch.randint(0, 3, (32,), generator=gen)) for _ in range(n)]


def _train(model, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_hyperparameters_are_kept(name):
    opt = make_optimizer(name, _model().parameters(), lr=0.03, weight_decay=0.02, momentum=0.8)
    assert (opt.name, opt.lr, opt.weight_decay, opt.momentum) == (name, 0.03, 0.02, 0.8)
    assert len(opt.params) == 4


def test_an_unknown_optimizer_names_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown optimizer 'lamb'; valid: adam, adamw, sgd"):
        make_optimizer("lamb", _model().parameters(), lr=0.01, weight_decay=0.0, momentum=0.0)


def test_fused_kernels_where_the_parameters_allow():
    assert make_optimizer("adam", _model().parameters(), 0.01, 0.0, 0.0).fused  # float32 on the CPU
    assert make_optimizer("sgd", _model(dtype=torch.float64).parameters(), 0.01, 0.0, 0.9).fused
    assert not make_optimizer("adam", _model(device="meta").parameters(), 0.01, 0.0, 0.0).fused  # no fused kernel there
    assert not make_optimizer("adam", _model().parameters(), 0.01, 0.0, 0.0, fused=False).fused


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_kernels_on_cuda():
    opt = make_optimizer("adamw", _model(device="cuda").parameters(), 0.01, 0.01, 0.0)
    assert opt.fused and opt.state["step"][0].is_cuda  # the fused kernel counts steps on the device


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "foreach"])
@pytest.mark.parametrize("wd", [0.0, 0.05])
@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_each_step_is_torch_optims(name, wd, fused):
    """The same hyperparameters mean the same as in torch.optim: adam's weight decay is an L2
    penalty, adamw's is decoupled, sgd has momentum without dampening or Nesterov."""
    ours, theirs = _model(), _model()
    _train(ours, make_optimizer(name, ours.parameters(), lr=0.01, weight_decay=wd, momentum=0.9, fused=fused), _batches(25))
    _train(theirs, REFERENCE[name](theirs.parameters(), wd, fused), _batches(25))
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)  # the same kernels on the same numbers


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_a_saved_and_loaded_state_continues_exactly(name, tmp_path):
    batches = _batches(20)
    whole, halves, forgetful = _model(), _model(), _model()
    _train(whole, make_optimizer(name, whole.parameters(), 0.01, 0.01, 0.9), batches)
    for model, keep_state in ((halves, True), (forgetful, False)):
        first = make_optimizer(name, model.parameters(), 0.01, 0.01, 0.9)
        _train(model, first, batches[:10])
        torch.save(first.state_dict(), tmp_path / "opt.pt")
        second = make_optimizer(name, model.parameters(), 0.01, 0.01, 0.9)
        if keep_state:
            second.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
        _train(model, second, batches[10:])
    assert all(torch.equal(a, b) for a, b in zip(halves.parameters(), whole.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(forgetful.parameters(), whole.parameters()))


def test_a_loaded_state_moves_to_the_parameters_device():
    """A checkpoint made on another device continues on this one: the moments go to the parameters'
    device; the foreach kernels count steps on the CPU, the fused ones on the parameters' device."""
    saved = make_optimizer("adam", _model().parameters(), 0.01, 0.0, 0.0).state_dict()
    for fused, step_device in ((False, "cpu"), (True, "meta")):
        opt = make_optimizer("adam", _model(device="meta").parameters(), 0.01, 0.0, 0.0, fused=fused)
        opt.load_state_dict(saved)
        assert {t.device.type for t in opt.state["exp_avg"] + opt.state["exp_avg_sq"]} == {"meta"}
        assert {t.device.type for t in opt.state["step"]} == {step_device}
    with pytest.raises(ValueError, match="has 4 tensors, the model needs 2"):
        make_optimizer("adam", torch.nn.Linear(2, 2).parameters(), 0.01, 0.0, 0.0).load_state_dict(saved)


def test_a_trial_process_does_not_import_torch_dynamo(tmp_path):
    """Building a torch.optim optimiser imports torch._dynamo (seconds, docs/benchmarks.md); a trial
    trains, checkpoints and resumes without it."""
    code = f"""
import contextlib, io, sys
from pathlib import Path
import yaml
from snaketune.data import prepare
from snaketune.train import TrialSettings, train
root = Path({str(tmp_path)!r})
prepare({{"source": "synthetic", "n_samples": 200, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}}, root / "d.npz")
for name, budget, resume in (("a", 2, None), ("b", 3, root / "a" / "checkpoint.pt")):
    (root / name).mkdir()
    (root / name / "params.yaml").write_text(yaml.safe_dump({{"epochs": 3, "optimizer": "sgd"}}))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        m = train(TrialSettings(params=root / name / "params.yaml", out=root / name, data=root / "d.npz", budget=budget, resume=resume))
assert "resumed from" in out.getvalue() and m["epochs_this_run"] == 1, out.getvalue()
assert "torch._dynamo" not in sys.modules, "a trial imported torch._dynamo"
import torch
torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
assert "torch._dynamo" in sys.modules, "torch.optim no longer imports torch._dynamo: make_optimizer could build torch.optim classes"
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
