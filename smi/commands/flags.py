"""argparse types for flag values the commands share.

A value is checked where argparse reads it, so a bad one is a usage error (exit 2) that names
its flag (`argument -n/--namespace: ...`) before any file is read or any work is done. Checked
later, it came back as a problem of a manifest (`file:3: metadata.namespace: ...`, exit 1), or
not at all: an empty path is the current directory to `pathlib` and the OS, so `-f ''` loaded
(and `apply -f ''` sent) every manifest of the working directory.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def path_text(text: str) -> str:
    """A file or directory name (or `-`), as the loaders take it: anything but empty."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no file (SMI1001)")
    return text


FILENAMES_HELP = "files, directories (recursive) or - for standard input; repeatable"


def add_filenames(p: argparse.ArgumentParser, *, help: str = FILENAMES_HELP) -> None:
    """`-f/--filename PATH [PATH ...]` (repeatable, required) into `paths`: how every command
    that reads manifests takes them, as kubectl's `-f a -f b` and as a shell glob gives them
    (`-f *.yaml`)."""
    p.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="extend",
        nargs="+",
        required=True,
        type=path_text,
        metavar="PATH",
        help=help,
    )


def path(text: str) -> Path:
    """`path_text` as a `Path`."""
    return Path(path_text(text))


def namespace(text: str) -> str:
    """A namespace given to objects that name none: a DNS-1123 label, as Kubernetes requires."""
    from smi.identity import MAX_LABEL
    from smi.validation.names import is_label

    if not is_label(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a DNS-1123 label (lowercase letters, digits and '-', starting and "
            f"ending alphanumeric, at most {MAX_LABEL} characters) (SMI2006)"
        )
    return text


def trust_domain_problem(text: str) -> str | None:
    """Why `text` cannot be a SPIFFE trust domain (smi.identity's rule), or None."""
    from smi.identity import IdentityError, check_trust_domain

    try:
        check_trust_domain(text)
    except IdentityError as exc:
        return str(exc)
    return None


def percent(text: str) -> float:
    """A percentage, 0 to 100: `nan` passed every threshold, `inf` or 101 failed every one."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(
            f"expected a percentage from 0 to 100, not {text!r} (SMI5009)"
        )
    return value
