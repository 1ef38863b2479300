"""Fixtures for the compiler and its commands (`compile`, `explain`, `access-matrix`)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
from compiler_fixtures import MANIFESTS, RunCli

from smi.commands import access_matrix, explain
from smi.commands import compile as compile_cmd


@pytest.fixture
def bookstore_dir(tmp_path: Path) -> Path:
    """A private copy of the bookstore manifests, so a test may add or change files."""
    return Path(shutil.copytree(MANIFESTS / "bookstore", tmp_path / "bookstore"))


@pytest.fixture
def run_cli(capsysbinary: pytest.CaptureFixture[bytes]) -> RunCli:
    """Run one of these subcommands as `smictl` would: (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="smictl")
        sub = parser.add_subparsers()
        for module in (compile_cmd, explain, access_matrix):
            module.register(sub)
        args = parser.parse_args(list(argv))
        code = args.func(args)
        out, err = capsysbinary.readouterr()
        return code, out.decode(), err.decode()

    return run
