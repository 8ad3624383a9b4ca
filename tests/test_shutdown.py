"""The SIGTERM workaround applies to the Snakemake releases known to need it, and only to them.

The deadlock itself, and that the deferred handler avoids it, is tested in tests/test_resilience.py.
"""

import signal

import pytest

from snaketune.shutdown import (
    defer_sigterm_handler,
    has_sigterm_deadlock,
    release,
)


@pytest.mark.parametrize(
    "snakemake, affected",
    [
        ("9.0.0", True),
        ("9.3.0", True),
        ("9.27.1", True),
        ("9.28.0", True),  # a later 9.x is assumed to keep the same lock
        ("10.0.0", False),
        ("8.30.0", False),
        ("9.5.0.dev3+g1234", True),
        ("", False),
        (None, False),
    ],
)
def test_the_workaround_is_for_the_checked_releases(snakemake, affected):
    assert has_sigterm_deadlock(snakemake) is affected


def test_release_reads_what_snakemake_and_pip_print():
    assert release("9.27.1") == (9, 27, 1)
    assert release("9.3") == (9, 3, 0)
    assert release("unknown") is None


@pytest.fixture
def sigterm_handler():
    def snakemakes(signum, frame):
        pass

    old = signal.signal(signal.SIGTERM, snakemakes)
    yield snakemakes
    signal.signal(signal.SIGTERM, old)


def test_an_unaffected_snakemake_keeps_its_own_handler(sigterm_handler):
    assert not defer_sigterm_handler("10.0.0")
    assert signal.getsignal(signal.SIGTERM) is sigterm_handler


def test_an_affected_snakemake_gets_its_handler_deferred_once(sigterm_handler):
    assert defer_sigterm_handler("9.27.1")
    wrapped = signal.getsignal(signal.SIGTERM)
    assert wrapped is not sigterm_handler and getattr(wrapped, "_snaketune_deferred", False)
    assert not defer_sigterm_handler("9.27.1"), "wrapping twice would add a thread per signal"
