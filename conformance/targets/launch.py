"""`python -m conformance.targets.launch COMMAND ARGS...`: run one smictl subcommand.

The targets start `smictl serve` and `smictl proxy` through this, calling the very register
functions the `smictl.commands` entry points name, so a stale editable install (entry-point
metadata older than pyproject.toml) cannot make the suite run something else.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import signal
import sys

COMMANDS = {
    "serve": ("webhook.cli", "register_serve"),
    "proxy": ("proxy.cli", "register"),
}

# The pid of the suite that spawned this process (set by `processes.spawn`).
PARENT_ENV = "SMICTL_CONFORMANCE_PARENT"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """Ask Linux to SIGTERM this process when the suite that started it dies.

    The servers lead their own sessions, so nothing else ends them when the suite is killed
    outright (SIGKILL, the OOM killer, a CI job's hard timeout) and its cleanup never runs.
    The setting survives the `exec` into gunicorn. Returns False when the suite is already
    gone (the caller then exits at once) and True otherwise, also where prctl is missing."""
    expected = os.environ.get(PARENT_ENV, "")
    if not (expected.isascii() and expected.isdigit()) or not sys.platform.startswith("linux"):
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return True
    # The suite may have died before prctl took effect: then we were re-parented already.
    return os.getppid() == int(expected)


def main(argv: list[str] | None = None) -> int:
    if not die_with_parent():
        print("launch: the conformance suite that started this process is gone", file=sys.stderr)
        return 1
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: launch {{{','.join(COMMANDS)}}} ARGS...", file=sys.stderr)
        return 2
    module, func = COMMANDS[args[0]]
    parser = argparse.ArgumentParser(prog="smictl")
    sub = parser.add_subparsers(dest="command")
    getattr(importlib.import_module(module), func)(sub)
    ns = parser.parse_args(args)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
