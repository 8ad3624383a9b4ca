"""Atomic writes: complete files only, with the permissions an ordinary write would give."""

import os
import stat

import pytest

from snaketune.files import atomic_write_text, read_json, write_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    # A group sharing a results folder on a cluster must be able to read the table and results.
    old = os.umask(umask)
    try:
        write_json(tmp_path / "result.json", {"status": "ok"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == mode
    assert read_json(tmp_path / "result.json") == {"status": "ok"}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "trials.tsv"
    atomic_write_text(target, "old\n")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # fails after the temporary file was written
    with pytest.raises(OSError):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["trials.tsv"]
