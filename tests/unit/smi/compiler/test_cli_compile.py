"""`smictl compile` and `smictl access-matrix` on manifest files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from compiler_fixtures import MANIFESTS, RunCli

from smi.compiler.build import compile
from smi.compiler.ir import MeshPolicy
from smi.loading import load_paths


def test_compile_prints_the_policy_the_compiler_builds(run_cli: RunCli) -> None:
    code, out, err = run_cli("compile", "-f", str(MANIFESTS / "bookstore"))
    assert (code, err) == (0, "")
    loaded = load_paths([str(MANIFESTS / "bookstore")])
    expected = compile(loaded.resources, context=loaded.context).policy
    assert MeshPolicy.from_dict(json.loads(out)) == expected
    assert json.loads(out)["hash"] == expected.hash


def test_compile_yaml_output(run_cli: RunCli) -> None:
    code, out, _ = run_cli("compile", "-f", str(MANIFESTS / "bookstore"), "-o", "yaml")
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["splits"]["bookstore/bookstore"]["backends"] == [
        {"service": "bookstore/bookstore-v1", "weight": 75000},
        {"service": "bookstore/bookstore-v2", "weight": 25000},
    ]


def test_compile_refuses_manifests_with_errors(run_cli: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: [\n")
    code, out, err = run_cli("compile", "-f", str(bad))
    assert code == 1
    assert out == ""
    assert f"{bad}:" in err and "(SMI1002)" in err
    assert "nothing compiled" in err


def test_compile_reports_what_it_skipped_and_still_prints(
    run_cli: RunCli, bookstore_dir: Path
) -> None:
    (bookstore_dir / "10-routes.yaml").unlink()
    code, out, err = run_cli("compile", "-f", str(bookstore_dir))
    assert code == 0
    assert json.loads(out)["destinations"] == {}
    lines = err.splitlines()
    assert any(
        line.startswith(f"{bookstore_dir / '20-targets.yaml'}:")
        and "HTTPRouteGroup bookstore/bookstore-service-routes not found" in line
        and line.endswith("(SMI6001)")
        for line in lines
    ), err


def test_compile_permissive_mode_says_so_loudly(run_cli: RunCli) -> None:
    code, out, err = run_cli("compile", "-f", str(MANIFESTS / "bookstore"), "--mode",
                             "permissive")  # fmt: skip
    assert code == 0
    assert json.loads(out)["mode"] == "permissive"
    assert "WARNING: mode permissive: policies are inert" in err


EXPECTED_MD = """\
# Access matrix

mode: deny · trust domain: cluster.local · 3 callee(s) · 3 allowed edge(s). Anything not listed \
is denied.

| caller | callee | may | via |
|---|---|---|---|
| bookbuyer/bookbuyer | bookstore/bookstore | GET /books-bought$ \\[client-app=\\~bookbuyer, \
user-agent=\\~.\\*-http-client/.\\*\\]<br>GET /buy-a-book/new$ | bookstore/TrafficTarget/bookstore |
| bookstore/bookstore | bookwarehouse/bookwarehouse | POST /restock-books$ | \
bookwarehouse/TrafficTarget/bookwarehouse |
| bookwarehouse/bookwarehouse | bookwarehouse/mysql | tcp: port 3306 (any traffic, HTTP \
included) | bookwarehouse/TrafficTarget/mysql |

| caller \\ callee | bookstore/bookstore | bookwarehouse/bookwarehouse | bookwarehouse/mysql |
|---|---|---|---|
| bookbuyer/bookbuyer | ✓ |  |  |
| bookstore/bookstore |  | ✓ |  |
| bookwarehouse/bookwarehouse |  |  | ✓ |
"""


def test_access_matrix_markdown(run_cli: RunCli) -> None:
    code, out, err = run_cli("access-matrix", "-f", str(MANIFESTS / "bookstore"))
    assert (code, err) == (0, "")
    assert out == EXPECTED_MD


def test_access_matrix_escapes_pipes_in_regexes(run_cli: RunCli, bookstore_dir: Path) -> None:
    routes = bookstore_dir / "10-routes.yaml"
    routes.write_text(routes.read_text().replace("/restock-books$", "/(restock|refill)$"))
    _, out, _ = run_cli("access-matrix", "-f", str(bookstore_dir))
    assert "POST /(restock\\|refill)$ |" in out


def test_access_matrix_markdown_shows_regex_text_as_written(
    run_cli: RunCli, bookstore_dir: Path
) -> None:
    """A regex's `*` and `_` were read as emphasis (`.*-http-client/.*` in italics), `<b>` as
    HTML: every Markdown character of manifest text is escaped."""
    routes = bookstore_dir / "10-routes.yaml"
    routes.write_text(routes.read_text().replace("/restock-books$", "/<b>_a_*b*`c`$"))
    _, out, _ = run_cli("access-matrix", "-f", str(bookstore_dir))
    assert "POST /\\<b\\>\\_a\\_\\*b\\*\\`c\\`$ |" in out


def test_access_matrix_dot_graph(run_cli: RunCli) -> None:
    code, out, _ = run_cli("access-matrix", "-f", str(MANIFESTS / "bookstore"), "-o", "dot")
    assert code == 0
    assert out.startswith("digraph access {")
    assert '"bookbuyer/bookbuyer" -> "bookstore/bookstore" [label="GET /books-bought$' in out
    assert '\\nGET /buy-a-book/new$"];' in out
    assert 'subgraph "cluster_bookwarehouse"' in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
@pytest.mark.parametrize(("fmt", "magic"), [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_access_matrix_renders_with_graphviz(
    capsysbinary: pytest.CaptureFixture[bytes], fmt: str, magic: bytes
) -> None:
    import argparse

    from smi.commands import access_matrix

    parser = argparse.ArgumentParser()
    access_matrix.register(parser.add_subparsers())
    args = parser.parse_args(["access-matrix", "-f", str(MANIFESTS / "bookstore"), "-o", fmt])
    assert args.func(args) == 0
    out = capsysbinary.readouterr().out
    assert magic in out[:400]


def test_access_matrix_without_graphviz_names_the_package(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = run_cli("access-matrix", "-f", str(MANIFESTS / "bookstore"), "-o", "svg")
    assert code == 1
    assert out == ""
    assert "install the Debian package `graphviz`" in err
