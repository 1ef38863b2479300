"""Flag values no command can use are one-line usage errors naming the flag, before any work.

Each case here used to be accepted (an empty `-f` read the working directory, `--threshold
nan` passed every run, `--revision -1` was stamped as is, `--method ''` was answered as GET) or
was blamed on a manifest (`-n Bad_NS` as `file:3: metadata.namespace`, exit 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smi.cli import main

ROOT = Path(__file__).resolve().parents[3]
MESH = str(ROOT / "examples" / "mesh")
POLICIES = str(ROOT / "policies" / "admission")

NO_NAMESPACE = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: s
spec:
  service: web
  backends:
  - service: web-v1
    weight: 100
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """(exit code, standard output, standard error lines) of `smictl ARGV`."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def usage_error(err: list[str], flag: str, text: str) -> bool:
    """argparse's error line (after its usage lines) names `flag` and says `text`."""
    return f"argument {flag}: " in err[-1] and text in err[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "-f", ""],
        ["compile", "-f", ""],
        ["access-matrix", "-f", ""],
        ["explain", "-f", "", "--from", "shop/web", "--to", "shop/api"],
        ["admit", "-f", ""],
        ["convert", "-f", "", "--to", "split.smi-spec.io/v1alpha4"],
        ["admit", "-f", MESH, "--policies", ""],
        ["admit", "-f", MESH, "--parameters", ""],
        ["admit", "-f", MESH, "-o", ""],
        ["policy", "test", ""],
        ["policy", "test", POLICIES, "--parameters", ""],
        ["policy", "list", "--policies", ""],
    ],
)
def test_an_empty_path_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """`''` is the working directory to the OS: it was read (or, for -o, the report went to
    standard output) as if nothing were wrong."""
    (tmp_path / "stray.yaml").write_text(NO_NAMESPACE)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert "an empty path names no file (SMI1001)" in err[-1]


@pytest.mark.parametrize("command", ["validate", "compile", "access-matrix", "admit"])
@pytest.mark.parametrize("namespace", ["", "Bad_NS", "é", "a/b"])
def test_a_bad_namespace_flag_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, namespace: str
) -> None:
    """Not a problem of the manifest (`file:3: metadata.namespace`, exit 1), nor, when every
    object names its namespace, silently accepted."""
    manifest = tmp_path / "split.yaml"
    manifest.write_text(NO_NAMESPACE)
    code, out, err = run(capsys, command, "-f", str(manifest), "-n", namespace)
    assert (code, out) == (2, "")
    assert usage_error(err, "-n/--namespace", "is not a DNS-1123 label")
    assert err[-1].endswith("(SMI2006)")


@pytest.mark.parametrize("revision", ["-1", str(10**30), str(2**63)])
def test_a_revision_out_of_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], revision: str
) -> None:
    code, out, err = run(capsys, "compile", "-f", MESH, "--revision", revision)
    assert (code, out) == (2, "")
    assert usage_error(err, "--revision", "expected a whole number from 0 to")


@pytest.mark.parametrize("revision", ["0", "7", str(2**63 - 1)])
def test_revisions_in_range_are_stamped(capsys: pytest.CaptureFixture[str], revision: str) -> None:
    code, out, _ = run(capsys, "compile", "-f", MESH, "--revision", revision)
    assert code == 0 and f'"revision": {revision},' in out


@pytest.mark.parametrize("command", ["compile", "access-matrix"])
@pytest.mark.parametrize("trust_domain", ["x..y", "a..b.example"])
def test_a_trust_domain_with_an_empty_label_is_refused(
    capsys: pytest.CaptureFixture[str], command: str, trust_domain: str
) -> None:
    code, out, err = run(capsys, command, "-f", MESH, "--trust-domain", trust_domain)
    assert (code, out) == (2, "")
    assert usage_error(err, "--trust-domain", f"invalid trust domain {trust_domain!r}")


EXPLAIN = ["explain", "-f", MESH, "--from", "shop/web", "--to", "shop/api"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", ""], "--method '': not an HTTP method (SMI2203)"),
        (["--method", "GE T"], "--method 'GE T': not an HTTP method (SMI2203)"),
        (["--path", ""], "--path '': an HTTP path starts with / and has no spaces (SMI2004)"),
        (["--path", "books"], "--path 'books': an HTTP path starts with /"),
        (["--path", "/a b"], "--path '/a b': an HTTP path starts with /"),
        (["--header", "a b=x"], "--header 'a b=x': write it as NAME=VALUE (SMI2205)"),
        (["--header", "é=x"], "--header 'é=x': write it as NAME=VALUE (SMI2205)"),
        (["--header", "x=a\nb"], "--header 'x=a\\nb': write it as NAME=VALUE (SMI2205)"),
        (
            ["--protocol", "tcp", "--method", "GET"],
            "--method: ask about an HTTP request, not --protocol tcp (SMI2407)",
        ),
        (
            ["--protocol", "udp", "--path", "/", "--header", "a=b"],
            "--path, --header: ask about an HTTP request, not --protocol udp (SMI2407)",
        ),
        (["--port", "0"], "--port 0: ports are 1-65535 (SMI2301)"),
        (["--port", str(10**30)], f"--port {10**30}: ports are 1-65535 (SMI2301)"),
    ],
)
def test_explain_refuses_a_request_no_client_sends(
    capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, out, err = run(capsys, *EXPLAIN, *extra)
    assert (code, out) == (2, "")
    assert err == [f"smictl explain: {message}".replace("\n", "\\n")] or message in err[0]
    assert len(err) == 1


def test_explain_identity_errors_carry_a_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", "-f", MESH, "--from", "", "--to", "shop/api")
    assert code == 2 and len(err) == 1
    assert err[0].startswith("smictl explain: --from: ") and err[0].endswith("(SMI2006)")


@pytest.mark.parametrize(
    "extra",
    [
        ["--method", "GET", "--path", "/books/1?page=2", "--header", "x-user=a=b"],
        ["--method", "PROPFIND", "--path", "/é"],
        ["--protocol", "tcp", "--port", "9090"],
    ],
)
def test_explain_still_answers_good_requests(
    capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    code, out, _ = run(capsys, *EXPLAIN, *extra)
    assert code in (0, 1) and ("ALLOW" in out or "DENY" in out)


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf", "-5", "100.5", "abc", ""])
def test_a_coverage_threshold_is_a_percentage(
    capsys: pytest.CaptureFixture[str], threshold: str
) -> None:
    """`nan` passed every run and `inf` or 101 failed every one, after the whole (slow)
    coverage measurement."""
    code, out, err = run(capsys, "policy", "test", POLICIES, f"--threshold={threshold}")
    assert (code, out) == (2, "")
    assert usage_error(err, "--threshold", "expected a percentage from 0 to 100")


@pytest.mark.parametrize("url", ["", "notaurl", "ftp://x", "http://", "http://h:99999"])
def test_admit_opa_url_is_a_usage_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """It was exit 1 and `not an http(s) URL: '' (SMI5006)`, naming no flag."""
    code, out, err = run(capsys, "admit", "-f", MESH, "--opa-url", url)
    assert (code, out) == (2, "")
    assert usage_error(err, "--opa-url", "is not an http(s) URL with a host (SMI5006)")


def test_explain_code_with_a_code_and_list_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--list` used to win silently over the code asked for."""
    code, out, err = run(capsys, "explain-code", "SMI2103", "--list")
    assert (code, out) == (2, "")
    assert err == ["smictl explain-code: give a code or --list, not both"]


def test_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    """The whole path, argparse to exit code, in a real `smictl` process."""
    done = subprocess.run(
        [sys.executable, "-m", "smi.cli", "compile", "-f", MESH, "--revision", "-1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("smictl compile: error: argument --revision")
