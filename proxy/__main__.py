"""`python -m proxy ...`: the same as `smictl proxy ...`, without going through entry points.

Not `smi.cli.main`, which builds the parsers of every smictl command: this builds only the
proxy's, with smictl's parser class (one-line flag errors), and `python -m proxy` is the process
whose idle memory the benchmark holds to 30 MB."""

from __future__ import annotations

import sys

from proxy.cli import register
from smi.cli import HelpFormatter, _Parser


def main(argv: list[str] | None = None) -> int:
    # smictl's parser class, so a flag mistake is the one line `smictl proxy` prints (exit 2).
    parser = _Parser(prog="smictl", formatter_class=HelpFormatter)
    sub = parser.add_subparsers(parser_class=_Parser)
    register(sub)
    # Parsed by the proxy's own parser: through the top one, an unknown argument is reported
    # as `smictl: error: ...`, which does not say whose flags to look up.
    args = sub.choices["proxy"].parse_args(sys.argv[1:] if argv is None else argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
