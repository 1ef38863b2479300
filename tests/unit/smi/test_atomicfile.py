"""smi.atomicfile: files replaced whole, through a temporary file nobody else could have made.
A predictable `<name>.tmp` opened with O_TRUNC was written through when another user had made
it a symlink, or made it and kept it open."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from smi import atomicfile


def test_a_symlink_at_the_old_temporary_name_is_left_alone(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("important\n")
    target = tmp_path / "report.json"
    (tmp_path / "report.json.tmp").symlink_to(victim)
    atomicfile.write_atomically(target, b"new\n", mode=0o644)
    assert victim.read_text() == "important\n"
    assert target.read_bytes() == b"new\n" and not target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.json",
        "report.json.tmp",
        "victim",
    ]


def test_a_name_taken_by_someone_else_is_not_followed_and_another_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a guessed name (here forced) is never opened: O_EXCL | O_NOFOLLOW."""
    draws = itertools.chain([b"\x00" * 6], itertools.repeat(b"\x01" * 6))
    monkeypatch.setattr(atomicfile.os, "urandom", lambda n: next(draws))
    victim = tmp_path / "victim"
    victim.write_text("important\n")
    target = tmp_path / "web.key"
    (tmp_path / f".web.key.{'00' * 6}.tmp").symlink_to(victim)
    atomicfile.write_atomically(target, b"KEY\n", mode=0o600)
    assert victim.read_text() == "important\n"
    assert target.read_bytes() == b"KEY\n"
    assert target.stat().st_mode & 0o777 == 0o600


def test_the_mode_is_the_one_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomicfile.write_atomically(tmp_path / "ca.crt", b"x", mode=0o644)
    finally:
        os.umask(old)
    assert (tmp_path / "ca.crt").stat().st_mode & 0o777 == 0o644


def test_a_failed_rename_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        atomicfile.write_atomically(target, b"data", mode=0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "keep").read_text() == "x"
