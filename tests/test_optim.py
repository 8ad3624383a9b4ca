"""The foreach optimisers compute what torch.optim computes."""

import pytest
import torch

from snaketune.optim import make_optimizer


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


@pytest.mark.parametrize(
    "name, ref",
    [
        ("adam", lambda p, wd: torch.optim.Adam(p, lr=0.01, weight_decay=wd)),
        ("adamw", lambda p, wd: torch.optim.AdamW(p, lr=0.01, weight_decay=wd)),
        ("sgd", lambda p, wd: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=wd)),
    ],
)
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_matches_torch_optim(name, ref, wd):
    ours, theirs = _model(), _model()
    opt = make_optimizer(name, ours.parameters(), lr=0.01, weight_decay=wd, momentum=0.9)
    opt_ref = ref(theirs.parameters(), wd)
    gen = torch.Generator().manual_seed(1)
    for _ in range(25):
        x = torch.randn(32, 8, generator=gen)
        y = torch.randint(0, 3, (32,), generator=gen)
        for model, o in ((ours, opt), (theirs, opt_ref)):
            o.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            o.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
