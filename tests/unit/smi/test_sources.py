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


NEGATIVE_SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: -1}
"""
NOT_ENTERED = "warning: symbolic link to a directory, not entered (name it with -f to read it)"


@pytest.fixture
def linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`apps/svc.yaml`, `apps/shared` a symlink to `real/` (which holds a broken split) and
    `apps/one.yaml` a symlink to a file; run from `tmp_path`."""
    (tmp_path / "apps").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "apps" / "svc.yaml").write_text(SERVICE)
    (tmp_path / "real" / "split.yaml").write_text(NEGATIVE_SPLIT)
    (tmp_path / "apps" / "shared").symlink_to("../real")
    (tmp_path / "apps" / "one.yaml").symlink_to("../real/split.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_symlinked_directory_is_not_entered_but_said_so(
    linked: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not entered, as kubectl -R and kubeconform do not enter one; but its manifests went
    unread without a word (exit 0, nothing on stderr) while a linked file beside it was read."""
    loaded = load_paths(["apps"])
    assert loaded.files == ["apps/one.yaml", "apps/svc.yaml"]
    assert [d.format() for d in loaded.diagnostics if not d.is_error] == [
        f"apps/shared: {NOT_ENTERED} (SMI1014)"
    ]
    (linked / "apps" / "one.yaml").unlink()
    code = main(["validate", "-f", "apps"])
    out, err = capsys.readouterr()
    assert (code, out.splitlines()) == (0, [f"apps/shared: {NOT_ENTERED} (SMI1014)"])
    assert err == "valid: 0 SMI objects in 1 file; 0 errors, 1 warning\n"


@pytest.mark.parametrize("command", ["admit", "compile", "convert"])
def test_every_command_says_so_and_passes(
    linked: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    (linked / "apps" / "one.yaml").unlink()
    (linked / "apps" / "tt.yaml").write_text(NEGATIVE_SPLIT.replace("-1", "1"))
    extra = ["--to", "split.smi-spec.io/v1alpha3"] if command == "convert" else []
    code = main([command, "-f", "apps", *extra])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"apps/shared: {NOT_ENTERED} (SMI1014)" in (out + err).splitlines()


def test_naming_the_linked_directory_reads_it_without_the_warning(
    linked: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (linked / "apps" / "one.yaml").unlink()
    code = main(["validate", "-f", "apps", "-f", "apps/shared/"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[0] == (
        "apps/shared/split.yaml:7: spec.backends[0].weight: must be an integer >= 0 (got -1) "
        "(SMI2103)"
    )
    assert "SMI1014" not in out


def test_a_directory_holding_only_a_linked_directory_holds_nothing(linked: Path) -> None:
    (linked / "only").mkdir()
    (linked / "only" / "shared").symlink_to("../real")
    assert [d.format() for d in load_paths(["only"]).diagnostics] == [
        "only: directory holds no .yaml, .yml or .json files (SMI1001)",
        f"only/shared: {NOT_ENTERED} (SMI1014)",
    ]


def test_policy_directories_list_no_linked_directory(linked: Path) -> None:
    """`smi.policy.modules` reads every listed problem as an error: it asks for none."""
    assert manifests_under("apps") == [("apps/one.yaml", None), ("apps/svc.yaml", None)]
