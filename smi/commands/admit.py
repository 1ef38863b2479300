"""`smictl admit -f PATH... [--policies DIR]... [--strict] [--format text|json|junit|sarif|github]`

The admission chain of the webhook, offline, as a CI gate: every SMI object in the files is
admitted as a CREATE (smi.policy.admission.admit_loaded) against the other objects of the files,
through built-in validation and the Rego policies (the shipped ones in policies/admission, plus
each --policies DIR). The report goes to standard output (or -o FILE) in the chosen format, a
one-line summary to standard error. Exit 0 when every object is admitted (warnings allowed),
1 when any object is denied or invalid or a file cannot be loaded, or a policy is broken.
Policies or --parameters that cannot be loaded are said on standard error and still make a
report (in every format but text on standard output, which would repeat the line): one that
holds the error as a load error and admits no object, so a CI step never reads a stale one.
An input that holds no object at all fails too (SMI1012, a load error in the report); one of
only objects that are not SMI resources passes, with `0 objects` admitted.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smi import atomicfile
from smi.commands import flags
from smi.commands.policy_cmd import empty_policy_dirs
from smi.commands.validate import STRICT_HELP, plural, service_notes
from smi.errors import Diagnostic, SMIError, escaped_line
from smi.policy.report import FORMATS

if TYPE_CHECKING:
    from smi.policy.report import AdmitReport
    from smi.resources import LoadResult


def register(sub: Any) -> None:
    p = sub.add_parser(
        "admit",
        help="run the admission chain (validation + Rego policies) on manifests, as a CI gate",
        description="Admit every SMI object of the files as a CREATE through built-in validation "
        "and the Rego policies; exit 1 when any object is denied (403) or invalid (422).",
    )
    flags.add_filenames(p)
    p.add_argument(
        "--policies",
        action="append",
        default=[],
        type=flags.path_text,
        metavar="DIR",
        help="a directory of Rego policies (<area>/<policy>/policy.rego); repeatable",
    )
    p.add_argument(
        "--no-shipped-policies",
        action="store_true",
        help="do not load the policies that ship with smictl",
    )
    p.add_argument(
        "--parameters",
        type=flags.path_text,
        metavar="FILE",
        help="YAML/JSON mapping: data.parameters",
    )
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="report format: text, json, junit (XML), sarif (2.1.0) or github (annotations)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=_report_file,
        metavar="FILE",
        help="write the report to FILE (the format is --format's)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="text/github: errors only")
    p.add_argument(
        "--opa-url",
        type=_opa_url,
        metavar="URL",
        help="evaluate the policies on this OPA Data API (it must hold the same policies)",
    )
    p.add_argument(
        "--opa-ca",
        type=_opa_ca,
        metavar="FILE",
        help="CA certificate(s) (PEM) to verify an https --opa-url with, e.g. the ca.crt of "
        "the `smictl serve` it names (default: the system's CAs)",
    )
    p.add_argument(
        "--opa-token-file",
        type=_opa_token_file,
        metavar="FILE",
        help="a bearer token to send to an https --opa-url (OPA's token authentication; "
        "`smictl serve` answers the admin token or a workload's token), "
        "default: $SMICTL_OPA_TOKEN_FILE",
    )
    p.add_argument(
        "-n",
        "--namespace",
        default="default",
        type=flags.namespace,
        help="namespace of objects that name none (default: %(default)s)",
    )
    p.set_defaults(func=run)


def _report_file(text: str) -> str:
    """argparse type of -o: a file name. Every other command's `-o` picks the format, so
    `admit -o json` wrote the text report into a file named `json` and passed; a format name
    is refused, and `-o ./json` still names such a file."""
    flags.path_text(text)
    if text in FORMATS:
        raise argparse.ArgumentTypeError(
            f"{text}: admit writes its report to the file -o names; for the format use "
            f"--format {text} (or -o ./{text} for a file of that name)"
        )
    return text


def _opa_url(text: str) -> str:
    """argparse type of --opa-url: an http(s) URL with a host. The policy set refused others
    too, but as exit 1 and without naming the flag (`not an http(s) URL: '' (SMI5006)`)."""
    from smi.urls import http_url

    if http_url(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL with a host (SMI5006)")
    return text


def _opa_ca(text: str) -> Path:
    """argparse type of --opa-ca: a file of PEM certificates, loaded as the TLS client will.
    Unchecked, a bad one surfaced as an SSLError for every policy, each a denial."""
    from smi.policy.remote import ca_file_problem

    path = flags.path(text)
    problem = ca_file_problem(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text}: {problem} (SMI7003)")
    return path


def _opa_token_file(text: str) -> str:
    """argparse type of --opa-token-file: a file holding one token (one word of printable
    ASCII, as every bearer token is), read now, once, so a bad one is one line naming the
    flag (and a pipe, `<(cat tok)`, is read before anything else could)."""
    return _read_token(flags.path(text))


def _read_token(path: Path) -> str:
    """smi.tokens' rule for a token file (as the proxy reads its own), a pipe allowed."""
    from smi.tokens import TokenContentError, TokenError, read_token

    try:
        return read_token(path, pipe=True)
    except TokenContentError as exc:
        raise argparse.ArgumentTypeError(
            f"{path}: a token is one word of printable ASCII characters (SMI7003)"
        ) from exc
    except TokenError as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc} (SMI7003)") from exc


def _remote_token(args: argparse.Namespace) -> str | None:
    """The --opa-token-file's token, sent over https only: in clear it would be a credential
    for anyone on the path."""
    from smi.urls import http_url

    url: str | None = args.opa_url
    token: str | None = args.opa_token_file  # read by the flag's type
    env = os.environ.get("SMICTL_OPA_TOKEN_FILE")
    if token is None and (not env or url is None):
        # The variable is for CI jobs that set it once: a run on the embedded engine has
        # nothing to send it to.
        return None
    parts = http_url(url) if url is not None else None
    if url is None or parts is None or parts.scheme != "https":
        raise SMIError(
            Diagnostic(
                "SMI7003",
                "needs an https --opa-url (a token is not sent in clear)",
                path="--opa-token-file",
            )
        )
    if token is not None:
        return token
    try:
        return _read_token(Path(str(env)))
    except argparse.ArgumentTypeError as exc:  # SMICTL_OPA_TOKEN_FILE: not read by type=
        raise SMIError(Diagnostic("SMI7003", str(exc).removesuffix(" (SMI7003)"),
                                  path="--opa-token-file")) from exc  # fmt: skip


def _remote_ca(args: argparse.Namespace) -> Path | None:
    """--opa-ca, which only an https --opa-url can use."""
    from smi.urls import http_url

    if args.opa_ca is None:
        return None
    url: str | None = args.opa_url
    parts = http_url(url) if url is not None else None
    if url is None or parts is None or parts.scheme != "https":
        raise SMIError(Diagnostic("SMI7003", "needs an https --opa-url to verify", path="--opa-ca"))
    ca: Path = args.opa_ca
    return ca


def run(args: argparse.Namespace) -> int:
    from smi.loading import load_paths, nothing_to_do
    from smi.policy.admission import admit_loaded
    from smi.policy.policyset import PolicySet, read_parameters
    from smi.policy.report import AdmitReport, render

    try:
        parameters = read_parameters(args.parameters) if args.parameters else {}
        policies = PolicySet.load(
            args.policies,
            include_shipped=not args.no_shipped_policies,
            parameters=parameters,
            remote=args.opa_url,
            remote_ca=_remote_ca(args),
            remote_token=_remote_token(args),
        )
    except SMIError as exc:
        return _report_unloaded(args, exc)
    for line in empty_policy_dirs(args.policies, policies.policies):
        print(line, file=sys.stderr)
    loaded = load_paths(args.paths, default_namespace=args.namespace)
    if args.output:
        loaded = _without_file(loaded, args.output)
    results, notes = admit_loaded(loaded, policies, strict=args.strict)
    empty = nothing_to_do(loaded, args.paths)
    report = AdmitReport(
        results=tuple(results),
        load_diagnostics=(*notes, *([] if empty is None else [empty])),
        policies=policies.policies,
    )
    if not _emit(args, render(report, args.format, quiet=args.quiet)):
        return 1
    if args.strict:
        for note in service_notes(loaded.resources, loaded.context):
            print(note, file=sys.stderr)
    print(summary_line(report), file=sys.stderr)
    return 0 if report.ok else 1


def _without_file(loaded: LoadResult, output: str | os.PathLike[str]) -> LoadResult:
    """`loaded` less what it read from `output`, the report this run replaces: `admit -f .
    --format json -o report.json` read the last run's report as a manifest the second time
    (SMI1004/SMI1005, exit 1) in the same workspace."""
    from smi.resources import LoadResult as Result

    try:
        report = os.path.realpath(output)
    except (OSError, ValueError):
        return loaded
    if report not in {os.path.realpath(f) for f in loaded.files}:
        return loaded

    def other(file: str | None) -> bool:
        return file is None or os.path.realpath(file) != report

    return Result(
        resources=[r for r in loaded.resources if other(r.source.file)],
        context=[c for c in loaded.context if other(c.source.file)],
        diagnostics=[d for d in loaded.diagnostics if other(d.file)],
        files=[f for f in loaded.files if other(f)],
        refused=[r for r in loaded.refused if other(r.source.file)],
    )


def _report_unloaded(args: argparse.Namespace, exc: SMIError) -> int:
    """The policies or the parameters could not be loaded: the error on standard error, as
    every command says it, and a report that holds it as a load error (no object admitted).
    No report was written: a CI step that uploads `-o FILE` published the previous run's, and
    a `--format json|junit|sarif|github` consumer read nothing. The text report on standard
    output would only repeat the line, so it is left out."""
    from smi.policy.report import AdmitReport, render

    for d in exc.diagnostics:
        print(d.format(), file=sys.stderr)
    if args.output or args.format != "text":
        report = AdmitReport(results=(), load_diagnostics=tuple(exc.diagnostics))
        _emit(args, render(report, args.format, quiet=args.quiet))
    return 1


def _emit(args: argparse.Namespace, text: str) -> bool:
    """The report to -o FILE or standard output; False (said on standard error) when the
    file cannot be written."""
    if not args.output:
        sys.stdout.write(text)
        return True
    try:
        write_atomically(Path(args.output), text.encode("utf-8"))
    except OSError as exc:
        # One line, whatever the name holds (a newline, bytes that are not UTF-8).
        where = escaped_line(f"{args.output}: cannot write the report: {exc.strerror}")
        print(where, file=sys.stderr)
        return False
    return True


def summary_line(report: AdmitReport) -> str:
    """The last line on standard error, `smictl admit: ok: 1 object (...)`, counted in words
    as `validate`'s summary is (not `1 objects`)."""
    s = report.summary()
    parts = [f"{s['allowed']} allowed", f"{s['denied']} denied", f"{s['invalid']} invalid"]
    if s["load_errors"]:
        parts.append(plural(s["load_errors"], "load error"))
    verdict = "ok" if report.ok else "FAILED"
    return (
        f"smictl admit: {verdict}: {plural(s['objects'], 'object')} ({', '.join(parts)}), "
        f"{plural(s['warnings'], 'warning')}, {plural(s['policies'], 'policy', 'policies')}"
    )


def write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `target`, then rename it over `target`: a CI
    step that reads the report sees the old one or the whole new one, never half of it, and a
    failed write (disk full, ...) leaves no temporary file behind. A target that is not a
    plain regular file is written in place, since renaming over it would replace the link
    itself: a symlink (`-o /dev/stdout` -> /proc/self/fd/1, a link into a shared directory),
    a device or a FIFO."""
    try:
        plain = stat.S_ISREG(target.lstat().st_mode)
    except FileNotFoundError:
        plain = True
    if not plain:
        with target.open("wb") as out:
            out.write(data)
        return
    # A new report is as readable as any file the user creates; a replaced one keeps its mode.
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else atomicfile.new_file_mode()
    atomicfile.write_atomically(target, data, mode=mode)
