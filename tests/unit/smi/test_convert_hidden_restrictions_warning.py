"""`smictl convert` names each converted object whose output keeps a restriction only in the
lossy-fields annotation (SMI4005), on standard error, at the restriction's line.

`convert -f examples/legacy/access-v1alpha1.yaml --to access.smi-spec.io/v1alpha3` moved
`destination.port: 8080` into the annotation without a word: smictl kept enforcing it, but
every other reader of the v1alpha3 object (another mesh, a reviewer, a tool that strips
unknown annotations) saw a grant to every port. The output and the exit status stay as they
were; a run that fails prints no warning about output it does not write."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest
import yaml

from smi import cli
from smi.conversion import convert_document

Capsys = pytest.CaptureFixture[str]
ACCESS_V1, ACCESS_V2, ACCESS_V3, ACCESS_V4 = (
    f"access.smi-spec.io/{v}" for v in ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
)
SPECS_V1 = "specs.smi-spec.io/v1alpha1"
EXAMPLE = "examples/legacy/access-v1alpha1.yaml"
HIDDEN = (
    "cannot be written in {to}: it rides in the smictl.io/lossy-fields annotation; smictl "
    "enforces it, other readers of this object do not see it (SMI4005)"
)


def target(name: str, port: int | None) -> str:
    """An access v1alpha1 TrafficTarget; its port, if any, on a line of its own."""
    port_line = "" if port is None else f"\n  port: {port}"
    return (
        f"apiVersion: {ACCESS_V1}\nkind: TrafficTarget\n"
        f"metadata: {{name: {name}, namespace: shop}}\n"
        f"destination: {{kind: ServiceAccount, name: api,{port_line}}}\n"
        "specs: [{kind: TCPRoute, name: tcp}]\n"
        "sources: [{kind: ServiceAccount, name: prom, namespace: shop}]\n"
    )


def run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["convert", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def line_of(path: Path, text: str) -> int:
    """The line (1-based) of the first line of the file, comments aside, with `text`."""
    lines = enumerate(path.read_text().splitlines(), 1)
    return next(i for i, ln in lines if text in ln and not ln.startswith("#"))


def test_the_legacy_example_warns_of_its_port_and_prints_what_it_printed(
    repo_root: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo_root)
    code, out, err = run(capsys, "-f", EXAMPLE, "--to", ACCESS_V3)
    port_line = line_of(repo_root / EXAMPLE, "port: 8080")
    warning = f"{EXAMPLE}:{port_line}: warning: destination.port 8080 "
    assert (code, err) == (0, warning + HIDDEN.format(to=ACCESS_V3) + "\n")
    docs = list(yaml.safe_load_all((repo_root / EXAMPLE).read_text()))
    assert list(yaml.safe_load_all(out)) == [docs[0], convert_document(docs[1], to=ACCESS_V3)]
    assert "8080" in out.split("smictl.io/lossy-fields", 1)[1]  # the annotation still has it


def test_one_line_per_object_that_hides_one_none_for_one_without(
    tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text("---\n".join([target("a", 9102), target("open", None), target("b", 9103)]))
    code, out, err = run(capsys, "-f", str(path), "--to", ACCESS_V4)
    assert code == 0
    assert err.splitlines() == [
        f"{path}:{line_of(path, 'port: 9102')}: warning: destination.port 9102 "
        + HIDDEN.format(to=ACCESS_V4),
        f"{path}:{line_of(path, 'port: 9103')}: warning: destination.port 9103 "
        + HIDDEN.format(to=ACCESS_V4),
    ]
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(out)] == ["a", "open", "b"]


def test_several_restrictions_of_one_object_are_one_line(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: specs.smi-spec.io/v1alpha4
            kind: HTTPRouteGroup
            metadata: {name: api-routes, namespace: shop}
            spec:
              matches:
              - name: health
                pathRegex: /healthz$
              - name: admin
                pathRegex: /admin/.*
                headers: [{x-admin-token: "^s3cret$"}]
              - name: ops
                headers: [{x-team: ops}]
            """
        )
    )
    code, _, err = run(capsys, "-f", str(path), "--to", SPECS_V1)
    assert code == 0
    assert err == (
        f"{path}:{line_of(path, 'x-admin-token')}: warning: headers {{x-admin-token: ^s3cret$}} "
        f"of match 'admin'; headers {{x-team: ops}} of match 'ops' cannot be written in "
        f"{SPECS_V1}: they ride in the smictl.io/lossy-fields annotation; smictl enforces "
        "them, other readers of this object do not see them (SMI4005)\n"
    )


TYPED = ("apiVersion", "kind")  # what the API server leaves out of a typed list's items


def test_items_of_lists_are_named_at_their_own_lines(tmp_path: Path, capsys: Capsys) -> None:
    typed = {
        "apiVersion": ACCESS_V1,
        "kind": "TrafficTargetList",
        "items": [
            {
                k: v
                for k, v in yaml.safe_load(target(n, p)).items()
                if k not in ("apiVersion", "kind")
            }
            for n, p in (("a", None), ("b", 9104))
        ],
    }
    plain = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(target("c", 9105))]}
    path = tmp_path / "lists.yaml"
    path.write_text(yaml.safe_dump_all([typed, plain], sort_keys=False))
    code, out, err = run(capsys, "-f", str(path), "--to", ACCESS_V3)
    assert code == 0
    assert [ln.split(": warning: ")[0] for ln in err.splitlines()] == [
        f"{path}:{line_of(path, 'port: 9104')}",
        f"{path}:{line_of(path, 'port: 9105')}",
    ]
    assert [d["kind"] for d in yaml.safe_load_all(out)] == ["TrafficTargetList", "List"]


def test_an_annotated_object_that_still_hides_its_port_is_named(
    tmp_path: Path, capsys: Capsys
) -> None:
    """Converted already (to v1alpha3), then to v1alpha3 again or to v1alpha4: the output still
    hides the port. The source shows none, so the warning points at the destination."""
    source = tmp_path / "tt.yaml"
    source.write_text(target("a", 9102))
    code, out, _ = run(capsys, "-f", str(source), "--to", ACCESS_V3)
    down = tmp_path / "tt-v1alpha3.yaml"
    down.write_text(out)
    for to in (ACCESS_V3, ACCESS_V4):
        code, out, err = run(capsys, "-f", str(down), "--to", to)
        assert code == 0
        assert err == (
            f"{down}:{line_of(down, 'destination:')}: warning: destination.port 9102 "
            + HIDDEN.format(to=to)
            + "\n"
        )


@pytest.mark.parametrize("to", [ACCESS_V1, ACCESS_V2])
def test_no_word_when_the_output_shows_the_port(tmp_path: Path, capsys: Capsys, to: str) -> None:
    source = tmp_path / "tt.yaml"
    source.write_text(target("a", 9102))
    code, out, _ = run(capsys, "-f", str(source), "--to", ACCESS_V3)
    down = tmp_path / "tt-v1alpha3.yaml"
    down.write_text(out)
    code, out, err = run(capsys, "-f", str(down), "--to", to)
    assert (code, err) == (0, "")
    assert "smictl.io/lossy-fields" not in out


def test_no_word_for_hidden_grants(tmp_path: Path, capsys: Capsys) -> None:
    """UDPRoute rules below access v1alpha3 ride in the annotation too, but they grant: a
    reader who does not see them sees less allowed, never more."""
    path = tmp_path / "tt.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: {ACCESS_V3}
            kind: TrafficTarget
            metadata: {{name: dns, namespace: shop}}
            spec:
              destination: {{kind: ServiceAccount, name: dns, namespace: shop}}
              rules: [{{kind: TCPRoute, name: t}}, {{kind: UDPRoute, name: dns-udp}}]
              sources: [{{kind: ServiceAccount, name: web, namespace: shop}}]
            """
        )
    )
    code, out, err = run(capsys, "-f", str(path), "--to", ACCESS_V2)
    assert (code, err) == (0, "")
    assert "smictl.io/lossy-fields" in out


def test_a_failed_run_names_only_its_errors(tmp_path: Path, capsys: Capsys) -> None:
    """Nothing is printed, so there is no output whose port could hide."""
    path = tmp_path / "tt.yaml"
    path.write_text(target("a", 9102) + "---\n" + target("b", 9103).replace("specs: [", "x: ["))
    code, out, err = run(capsys, "-f", str(path), "--to", ACCESS_V3)
    assert (code, out) == (1, "")
    assert err and "SMI4005" not in err and "warning" not in err
    assert all(ln.startswith(f"{path}:") for ln in err.splitlines())


def test_standard_input_is_named_as_such(capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    text = target("a", 9102)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode()), "utf-8"))
    code, _, err = run(capsys, "-f", "-", "--to", ACCESS_V3)
    assert code == 0
    assert err == "<stdin>:5: warning: destination.port 9102 " + HIDDEN.format(to=ACCESS_V3) + "\n"


def test_a_splits_matches_hidden_below_v1alpha3_are_named(tmp_path: Path, capsys: Capsys) -> None:
    """Below split v1alpha3 the matches ride in the annotation: only the requests they match
    are split, which no other reader of the output sees."""
    path = tmp_path / "split.yaml"
    path.write_text(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        "metadata: {name: s, namespace: shop}\n"
        "spec:\n  service: shop\n  backends: [{service: a, weight: 1}]\n"
        "  matches:\n  - {kind: HTTPRouteGroup, name: ab}\n"
    )
    to = "split.smi-spec.io/v1alpha2"
    code, out, err = run(capsys, "-f", str(path), "--to", to)
    assert (code, err) == (
        0,
        f"{path}:7: warning: matches [HTTPRouteGroup ab] (only the requests they match are "
        f"split) {HIDDEN.format(to=to)}\n",
    )
    assert "matches" not in yaml.safe_load(out)["spec"]
