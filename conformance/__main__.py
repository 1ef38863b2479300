"""`python -m conformance run ...`: the same as `smictl conformance run ...`.

Run by `smictl`'s own `main`, so its usage errors, help and exit codes are that command's: the
parser of its own once printed argparse's usage block above each mistake and named itself
`python -m conformance conformance run`, a command that does not exist."""

from __future__ import annotations

import sys

from smi.cli import main as smictl


def main(argv: list[str] | None = None) -> int:
    return smictl(["conformance", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
