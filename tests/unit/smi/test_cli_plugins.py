"""`smictl` loads only the subcommand it runs: a sidecar started as `smictl proxy` must not
carry the control plane's modules in its memory."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

from smi.cli import SHIPPED, build_parser

PROBE = """
import sys
sys.argv = ["smictl", "proxy", "--help"]
from smi.cli import main
try:
    main()
except SystemExit:
    pass
heavy = ("flask", "webhook", "conformance", "regopy", "cryptography", "importlib.metadata")
loaded = [m for m in heavy if m in sys.modules]
print("LOADED=" + ",".join(loaded), file=sys.stderr)
"""


def test_running_one_command_imports_only_that_command() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert "LOADED=\n" in done.stderr, done.stderr


def test_help_and_unknown_commands_still_list_every_command() -> None:
    every = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"validate", "admit", "serve", "proxy", "conformance"} <= set(every)
    one = build_parser("proxy")._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(one) == {"proxy"}
    unknown = build_parser("nosuch")._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(unknown) == set(every)


def test_the_shipped_table_is_pyprojects_entry_points() -> None:
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"]["smictl.commands"]
    assert declared == SHIPPED
    installed = {ep.name: ep.value for ep in entry_points(group="smictl.commands")}
    assert installed == SHIPPED  # a stale editable install would disagree too
