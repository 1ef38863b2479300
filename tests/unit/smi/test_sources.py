"""smi.sources: what a walk of `-f DIR` lists, and that it passes nothing over in silence.

A manifest skipped without a word is a TrafficTarget that allows nothing and a CI run that
passes without it: a directory that cannot be listed and a symlink loop named like a manifest
were both skipped (`valid: 0 SMI objects`, exit 0)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from smi.cli import main
from smi.loading import load_paths
from smi.sources import manifests_under

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}]}
"""
DENIED = "cannot read: Permission denied"
LOOP = "cannot read: Too many levels of symbolic links"


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`r1/svc.yaml` and `r1/locked/tt.yaml`, `r1/locked` unreadable (as `chmod 000` makes it
    for anyone but root: the tests run as root, so the listing is refused here instead)."""
    root = tmp_path / "r1"
    (root / "locked").mkdir(parents=True)
    (root / "svc.yaml").write_text(SERVICE)
    (root / "locked" / "tt.yaml").write_text(SERVICE)
    scandir = os.scandir

    def refusing(path: Any = ".") -> Any:
        if path == str(root / "locked"):
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    return root


def test_a_directory_that_cannot_be_listed_is_reported_in_its_place(locked: Path) -> None:
    assert manifests_under(str(locked))[0][0] == f"{locked}/locked"
    loaded = load_paths([str(locked)])
    assert [d.format() for d in loaded.diagnostics] == [f"{locked}/locked: {DENIED} (SMI1001)"]
    assert loaded.files == [f"{locked}/svc.yaml"] and not loaded.ok


def test_naming_it_says_it_cannot_be_read_not_that_it_holds_nothing(locked: Path) -> None:
    loaded = load_paths([str(locked / "locked")])
    assert [d.format() for d in loaded.diagnostics] == [f"{locked}/locked: {DENIED} (SMI1001)"]


@pytest.mark.parametrize("command", ["validate", "admit", "compile"])
def test_every_command_fails_on_it(
    locked: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code = main([command, "-f", str(locked)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{locked}/locked: {DENIED} (SMI1001)" in (out + err).splitlines()


def test_a_symlink_loop_named_like_a_manifest_is_read_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a dangling link is: reading it says why, as naming it with -f does (ELOOP, raised
    by `DirEntry.is_dir`, was caught as a file gone since the listing)."""
    root = tmp_path / "r2"
    root.mkdir()
    (root / "svc.yaml").write_text(SERVICE)
    (root / "tt.yaml").symlink_to("target.yaml")
    (root / "target.yaml").symlink_to("tt.yaml")
    (root / "notes").symlink_to("notes")  # not named like a manifest: not listed
    assert manifests_under(str(root)) == [
        (f"{root}/svc.yaml", None),
        (f"{root}/target.yaml", None),
        (f"{root}/tt.yaml", None),
    ]
    code = main(["validate", "-f", str(root)])
    out, _ = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [
        f"{root}/target.yaml: {LOOP} (SMI1001)",
        f"{root}/tt.yaml: {LOOP} (SMI1001)",
    ]
    code = main(["validate", "-f", str(root / "tt.yaml")])
    assert (code, capsys.readouterr().out.splitlines()) == (
        1,
        [f"{root}/tt.yaml: {LOOP} (SMI1001)"],
    )
