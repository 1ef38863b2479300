"""`smictl validate`, `convert` and `explain-code` through `smi.cli.main`: exit codes, what goes
to stdout and stderr, stdin, JSON output, --strict; and a flag mistake to any command."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from smi.cli import main
from smi.codes import CODES

Capsys = pytest.CaptureFixture[str]
TT_V1ALPHA1 = """\
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: t, namespace: shop}
destination: {kind: ServiceAccount, name: api, namespace: shop, port: 8080}
specs:
- {kind: TCPRoute, name: db}
sources:
- {kind: ServiceAccount, name: web, namespace: shop}
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"


@pytest.fixture
def in_repo(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo_root)
    return repo_root


def test_validate_a_valid_tree_exits_0_with_only_a_summary(in_repo: Path, capsys: Capsys) -> None:
    assert main(["validate", "-f", "examples/mesh", "-f", "examples/legacy"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "valid: 10 SMI objects in 8 files; 0 errors, 0 warnings\n"


def test_validate_broken_tree_prints_every_problem_and_exits_1(
    in_repo: Path, capsys: Capsys
) -> None:
    assert main(["validate", "-f", "examples/broken"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    line_form = re.compile(
        r"^examples/broken/[a-z-]+\.yaml:\d+: (warning: )?([^:]+: )?.+ \(SMI\d{4}\)$"
    )
    assert lines and all(line_form.match(line) for line in lines), lines
    files = {line.split(":")[0] for line in lines}
    assert files == {
        str(p.relative_to(in_repo)) for p in (in_repo / "examples/broken").glob("*.yaml")
    }
    assert "Traceback" not in out + err
    assert err.startswith("INVALID: ")


def test_validate_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: Capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(TT_V1ALPHA1))
    assert main(["validate", "-f", "-"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("<stdin>:6: warning: specs[0].name: TCPRoute shop/db is not in the set")


def test_strict_fails_on_dangling_references(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "tt.yaml"
    path.write_text(TT_V1ALPHA1)
    assert main(["validate", "-f", str(path)]) == 0
    assert main(["validate", "--strict", "-f", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert f"{path}:6: specs[0].name: TCPRoute shop/db is not in the set" in out


def test_json_output_is_one_document_with_every_diagnostic(in_repo: Path, capsys: Capsys) -> None:
    assert main(["validate", "-o", "json", "-f", "examples/broken/route-group.yaml"]) == 1
    out, _ = capsys.readouterr()
    doc = json.loads(out)
    assert (doc["valid"], doc["errors"], doc["warnings"]) == (False, 5, 1)
    assert len(doc["diagnostics"]) == 6
    assert {d["code"] for d in doc["diagnostics"]} == {
        "SMI2202",
        "SMI2203",
        "SMI2204",
        "SMI2205",
        "SMI2206",
    }
    assert all(
        d["line"] and d["object"] == "HTTPRouteGroup/shop/sloppy" for d in doc["diagnostics"]
    )


def test_missing_paths_are_load_errors_not_tracebacks(tmp_path: Path, capsys: Capsys) -> None:
    assert main(["validate", "-f", str(tmp_path / "nope.yaml")]) == 1
    out, _ = capsys.readouterr()
    assert out == f"{tmp_path / 'nope.yaml'}: cannot read: no such file or directory (SMI1001)\n"


def flag_error(capsys: Capsys, argv: list[str]) -> str:
    """The one line `smictl ARGV` prints for a flag mistake (exit 2, nothing on stdout)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert (exc.value.code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip() and err.endswith("\n"), err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "command", "reason"),
    [
        (["validate"], "validate", "the following arguments are required: -f/--filename"),
        (
            ["validate", "-f", "x", "-o", "xml"],
            "validate",
            "argument -o/--output: invalid choice: 'xml' (choose from 'text', 'json')",
        ),
        (["validate", "-f"], "validate", "argument -f/--filename: expected at least one argument"),
        (
            ["validate", "-f", "x", "--format", "nope"],
            "validate",
            "unrecognized arguments: --format nope",
        ),
        (["convert", "-f", "x", "--to"], "convert", "argument --to: expected one argument"),
        (["inject", "-f", "x", "--bogus"], "inject", "required: --mesh-ca-cert"),
        (["explain-code", "--bogus"], "explain-code", "unrecognized arguments: --bogus"),
        (["proxy", "--bogus"], "proxy", "unrecognized arguments: --bogus"),
        (["certs", "workload", "--identity", "shop/web", "-x"], "certs workload", "arguments: -x"),
        (
            ["policy", "test", "policies", "--bogus"],
            "policy test",
            "unrecognized arguments: --bogus",
        ),
        (["certs"], "certs", "the following arguments are required: ACTION"),
        (["nope"], "", "argument COMMAND: invalid choice: 'nope' (choose from 'access-matrix', "),
        (["--bogus"], "", "unrecognized arguments: --bogus"),
    ],
)
def test_a_flag_mistake_is_one_line_naming_the_command(
    capsys: Capsys, argv: list[str], command: str, reason: str
) -> None:
    """kubectl-style: no usage block above the error, and the command the user typed named
    even where argparse reports from the top-level parser (`smictl: error: unrecognized
    arguments`), so the `--help` it points at is the one that lists the flags."""
    prog = f"smictl {command}".rstrip()
    line = flag_error(capsys, argv)
    assert line.startswith(f"{prog}: error: ") and reason in line, line
    assert line.endswith(f" (see `{prog} --help`)")


def test_a_refused_flag_value_keeps_its_code_last(capsys: Capsys) -> None:
    """A value a flag's own check refuses says what it expects; no help pointer after its code,
    which stays last as on every diagnostic line."""
    line = flag_error(capsys, ["compile", "-f", "x", "--revision", "-1"])
    assert line.startswith("smictl compile: error: argument --revision: ")
    assert line.endswith("not '-1' (SMI6003)")


def test_a_newline_in_a_mistaken_argument_stays_on_the_line(capsys: Capsys) -> None:
    line = flag_error(capsys, ["validate", "-f", "x", "-o", "text", "a\nb"])
    assert line.startswith("smictl validate: error: unrecognized arguments: a\\nb (see")


@pytest.mark.parametrize("argv", [["--help"], ["validate", "--help"], ["certs", "workload", "-h"]])
def test_help_is_still_the_whole_help(capsys: Capsys, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert (exc.value.code, err) == (0, "")
    prog = " ".join(["smictl", *argv[:-1]])
    assert out.startswith(f"usage: {prog} [-h]") and "\noptions:\n" in out


def test_no_command_prints_the_command_list(capsys: Capsys) -> None:
    """Not a mistake in a flag but a question (what is there?): the help, to stderr, exit 2."""
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: smictl [-h] [--version] COMMAND ...\n")
    assert all(f"\n    {name}" in err for name in ("validate", "inject", "proxy"))


def test_convert_round_trips_and_passes_other_documents_through(
    tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "tt.yaml"
    path.write_text(TT_V1ALPHA1 + "---\n" + SERVICE)
    assert main(["convert", "-f", str(path), "--to", "access.smi-spec.io/v1alpha3"]) == 0
    out, _ = capsys.readouterr()
    converted, service = yaml.safe_load_all(out)
    assert converted["apiVersion"] == "access.smi-spec.io/v1alpha3"
    assert converted["spec"]["rules"] == [{"kind": "TCPRoute", "name": "db"}]
    assert service == yaml.safe_load(SERVICE)
    back_path = tmp_path / "v3.yaml"
    back_path.write_text(yaml.safe_dump(converted))
    assert main(["convert", "-f", str(back_path), "--to", "access.smi-spec.io/v1alpha1"]) == 0
    out, _ = capsys.readouterr()
    assert yaml.safe_load(out) == yaml.safe_load(TT_V1ALPHA1)


def test_convert_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: Capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(TT_V1ALPHA1))
    assert main(["convert", "-f", "-", "--to", "access.smi-spec.io/v1alpha2"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["spec"]["destination"]["port"] == 8080


def test_convert_reports_invalid_objects_at_their_line(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TT_V1ALPHA1.replace("port: 8080", "port: http"))
    assert main(["convert", "-f", str(path), "--to", "access.smi-spec.io/v1alpha3"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}:4: destination.port: ")
    assert err.rstrip().endswith("(SMI2003)")


def test_convert_needs_an_object_of_the_target_group(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "svc.yaml"
    path.write_text(SERVICE)
    assert main(["convert", "-f", str(path), "--to", "split.smi-spec.io/v1alpha4"]) == 1
    assert "no split.smi-spec.io object to convert (SMI4003)" in capsys.readouterr().err


def test_explain_code(capsys: Capsys) -> None:
    assert main(["explain-code", "SMI2104"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("SMI2104: all weights are zero\n\n")
    assert "Fix: Give at least one backend a positive weight." in out
    assert main(["explain-code", "SMI0000"]) == 2
    assert "unknown code 'SMI0000'" in capsys.readouterr().err
    assert main(["explain-code"]) == 2
    capsys.readouterr()
    assert main(["explain-code", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == sorted(CODES)


def test_every_code_the_core_emits_is_explained(in_repo: Path, smi_examples: Path) -> None:
    from smi.compiler import validate
    from smi.loading import load_paths

    loaded = load_paths([str(smi_examples), "examples"])
    codes = {d.code for d in loaded.diagnostics + validate(loaded.resources, loaded.context)}
    assert codes and codes <= set(CODES)


def readme_sessions(readme: str) -> list[tuple[list[str], str]]:
    """(argv, expected output) of each `$ smictl validate|explain-code ...` console example."""
    sessions = []
    for block in re.findall(r"```console\n(.*?)```", readme, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            argv = command.split()[1:]
            if argv[0] in ("validate", "explain-code"):
                sessions.append((argv, output.strip("\n")))
    return sessions


def test_the_readme_shows_what_the_cli_prints(in_repo: Path, capsys: Capsys) -> None:
    sessions = readme_sessions((in_repo / "README.md").read_text())
    assert len(sessions) == 3
    for argv, expected in sessions:
        main(argv)
        out, err = capsys.readouterr()
        assert (out + err).strip("\n") == expected, argv


def _mesh_objects(repo_root: Path) -> dict[str, dict[str, object]]:
    """One object of each kind from the shipped mesh, keyed by kind."""
    out: dict[str, dict[str, object]] = {}
    for path in sorted((repo_root / "examples" / "mesh").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if "smi-spec.io" in doc["apiVersion"]:
                out.setdefault(doc["kind"], doc)
    return out


@pytest.mark.parametrize("kind", ["TrafficTarget", "HTTPRouteGroup", "TCPRoute", "TrafficSplit"])
def test_convert_through_every_version_and_back_is_lossless(
    kind: str, repo_root: Path, tmp_path: Path, capsys: Capsys
) -> None:
    from smi.apis.registry import supported_versions

    original = _mesh_objects(repo_root)[kind]
    group = str(original["apiVersion"]).partition("/")[0]
    versions = supported_versions()[group][kind]
    assert len(versions) == 4
    doc = original
    for version in [*versions, str(original["apiVersion"]).partition("/")[2]]:
        path = tmp_path / "in.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert main(["convert", "-f", str(path), "--to", f"{group}/{version}"]) == 0
        doc = yaml.safe_load(capsys.readouterr().out)
        assert doc["apiVersion"] == f"{group}/{version}"
    assert doc == original


def test_the_verdict_survives_a_reader_that_leaves(tmp_path: Path) -> None:
    # `smictl validate ... | head -1` under `set -o pipefail`: the exit code is the gate.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        "metadata: {name: s, namespace: shop}\n"
        "spec: {service: web, backends: [{service: a, weight: -1}]}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "smi.cli", "validate", "-o", "json", "-f", str(bad)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write: EPIPE
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert b"Traceback" not in err and b"BrokenPipe" not in err
