"""What CI systems read from `smictl admit`/`validate`: SARIF 2.1.0, JUnit XML, JSON and GitHub
annotations stay valid with awkward file names (spaces, `%`, `:`, `,`, non-ASCII, newlines,
control characters, bytes that are not UTF-8), and `-o FILE` never leaves half a report."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from smi.cli import main
from smi.policy.policyset import shipped_dir

# Refused by a shipped deny policy (allowed-source-namespaces, SMI5102) at line 32.
DENIED = shipped_dir() / "access" / "allowed-source-namespaces" / "samples" / "disallowed.yaml"
INVALID = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: broken
  namespace: shop
spec:
  service: web
  backends:
  - service: web-v1
    weight: -5
"""
# A name in quotes with control characters: invalid (SMI2006), and quoted in the messages.
CONTROL = INVALID.replace("name: broken", 'name: "bro\\x01ken\\x0c"')
AWKWARD = "a b,c:%d é.yaml"
LEVELS = {"none", "note", "warning", "error"}
URI_REFERENCE = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$")


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_sarif(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The required structure of SARIF 2.1.0 that code scanning relies on; the results."""
    assert doc["version"] == "2.1.0"
    assert isinstance(doc["runs"], list) and doc["runs"]
    results: list[dict[str, Any]] = []
    for run_ in doc["runs"]:
        driver = run_["tool"]["driver"]
        assert isinstance(driver["name"], str) and driver["name"]
        rules = driver.get("rules", [])
        ids = [r["id"] for r in rules]
        assert len(ids) == len(set(ids))
        for result in run_["results"]:
            assert isinstance(result["message"]["text"], str) and result["message"]["text"]
            assert result.get("level", "warning") in LEVELS
            assert result["ruleId"] in ids
            if "ruleIndex" in result:
                assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            for location in result["locations"]:
                physical = location["physicalLocation"]
                uri = physical["artifactLocation"]["uri"]
                if uri.startswith("file:///"):
                    uri = uri[len("file://") :]
                else:  # a relative reference: its first segment must not look like a scheme
                    assert ":" not in uri.split("/")[0], uri
                assert URI_REFERENCE.match(uri), uri
                assert not re.search(r"%(?![0-9A-Fa-f]{2})", uri), uri
                line = physical["region"]["startLine"]
                assert isinstance(line, int) and line >= 1
            results.append(result)
    return results


@pytest.fixture
def awkward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`m/` (relative, the working directory is tmp_path) with a nested awkward name."""
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "m" / "sub dir"
    d.mkdir(parents=True)
    shutil.copy(DENIED, d / AWKWARD)
    (tmp_path / "m" / "x%0A.yaml").write_text("kind: [unclosed\r\n")
    return tmp_path / "m"


def test_sarif_relative_uris_are_percent_encoded(
    awkward: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run("admit", "-f", "m", "--format", "sarif", capsys=capsys)
    results = check_sarif(json.loads(out))
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert code == 1
    assert uris == {"m/sub%20dir/a%20b%2Cc%3A%25d%20%C3%A9.yaml", "m/x%250A.yaml"}


def test_sarif_uri_of_standard_input_is_a_uri_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(DENIED.read_text()))
    code, out, _ = run("admit", "-f", "-", "--format", "sarif", capsys=capsys)
    results = check_sarif(json.loads(out))
    assert code == 1 and results
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results} == {
        "%3Cstdin%3E"
    }


def test_junit_is_well_formed_with_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "new\nline\x01.yaml").write_text(CONTROL)
    code, out, _ = run("admit", "-f", str(tmp_path), "--format", "junit", capsys=capsys)
    root = ET.fromstring(out)  # raised "not well-formed (invalid token)"
    [case] = root.iter("testcase")
    assert code == 1
    assert case.get("name") == "TrafficSplit shop/bro\\x01ken\\x0c"
    assert case.get("file") == f"{tmp_path}/new\nline\\x01.yaml"


def test_junit_counts_load_errors_as_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(INVALID)
    (tmp_path / "b.yaml").write_text("kind: [unclosed\n")
    code, out, _ = run("admit", "-f", str(tmp_path), "--format", "junit", capsys=capsys)
    root = ET.fromstring(out)
    for element in (root, root.find("testsuite")):
        assert element is not None
        assert (element.get("tests"), element.get("failures")) == ("2", "2")
    assert len(list(root.iter("testcase"))) == 2 and code == 1


def test_junit_gives_no_line_where_none_is_known(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that cannot be read has no line: the testcase said `line="0"`, which JUnit
    readers show as a line of the file."""
    (tmp_path / "ok.yaml").write_text(INVALID)
    missing = tmp_path / "missing.yaml"
    code, out, _ = run(
        "admit", "-f", str(missing), "-f", str(tmp_path / "ok.yaml"), "--format", "junit",
        capsys=capsys,
    )  # fmt: skip
    cases = {c.get("name"): c for c in ET.fromstring(out).iter("testcase")}
    assert code == 1
    assert cases["load"].get("file") == str(missing) and cases["load"].get("line") is None
    assert all(c.get("line") != "0" for c in cases.values())


@pytest.fixture
def undecodable(tmp_path: Path) -> Path:
    """A directory with a file whose name is not UTF-8 (Linux allows any bytes). It does not
    parse: a valid object in it crashes smi.policy.admission._uid (not this module's bug)."""
    d = tmp_path / "m"
    d.mkdir()
    (d / os.fsdecode(b"bad\xff.yaml")).write_text("kind: [unclosed\n")
    return d


@pytest.mark.parametrize("fmt", ["json", "sarif", "junit", "github", "text"])
def test_undecodable_file_name_gives_a_whole_utf8_report(
    undecodable: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    report.write_text("previous report\n")
    code, _, err = run("admit", "-f", str(undecodable), "--format", fmt, "-o", str(report),
                       capsys=capsys)  # fmt: skip
    assert code == 1, err  # was 70 (UnicodeEncodeError) with an empty report left behind
    text = report.read_bytes().decode("utf-8")  # text and JUnit bodies show `bad\udcff.yaml`
    if fmt in ("json", "sarif"):
        assert "\\ud" not in text.lower()  # a lone surrogate escape breaks strict parsers
        doc = json.loads(text)
        if fmt == "sarif":
            [result, *_] = check_sarif(doc)
            uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            assert uri.endswith("/m/bad%FF.yaml")
    if fmt == "junit":
        ET.fromstring(text)


def test_undecodable_file_name_on_a_strict_utf8_stdout(
    undecodable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI runner's stdout (LANG=en_US.UTF-8) is strict UTF-8: a surrogate raised there."""
    path = str(undecodable)
    for argv in (
        ("validate", "-f", path),
        ("validate", "-f", path, "-o", "json"),
        ("admit", "-f", path, "--format", "github"),
    ):
        buffer = io.BytesIO()
        stdout = io.TextIOWrapper(buffer, encoding="utf-8", errors="strict")
        monkeypatch.setattr(sys, "stdout", stdout)
        code = main(list(argv))
        stdout.flush()
        text = buffer.getvalue().decode("utf-8")
        assert code == 1 and "bad" in text, argv
        if "json" in argv:
            assert "\\ud" not in json.dumps(json.loads(text)["diagnostics"])


def test_text_escapes_an_undecodable_file_name_like_a_control_character() -> None:
    from smi.errors import Diagnostic

    d = Diagnostic("SMI1002", "bad", file=os.fsdecode(b"x\xff\x01.yaml"), line=1)
    assert d.format() == "x\\udcff\\x01.yaml:1: bad (SMI1002)"


def test_failed_report_write_keeps_the_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out" / "smictl.sarif"
    report.parent.mkdir()
    report.write_text("previous report\n")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    code, _, err = run("admit", "-f", str(DENIED), "--format", "sarif", "-o", str(report),
                       capsys=capsys)  # fmt: skip
    assert code == 1 and "cannot write the report: No space left on device" in err
    assert report.read_text() == "previous report\n"
    assert os.listdir(report.parent) == ["smictl.sarif"]


def test_report_through_a_symlink_writes_the_link_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o /dev/stdout` and links into shared directories: the link stays a link."""
    target = tmp_path / "real.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, _, _ = run("admit", "-f", str(DENIED), "--format", "json", "-o", str(link),
                     capsys=capsys)  # fmt: skip
    assert code == 1 and link.is_symlink()
    assert json.loads(target.read_text())["summary"]["denied"] == 1


def test_new_report_file_has_the_usual_permissions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.xml"
    umask = os.umask(0o022)
    try:
        run("admit", "-f", str(DENIED), "--format", "junit", "-o", str(report), capsys=capsys)
    finally:
        os.umask(umask)
    assert report.stat().st_mode & 0o777 == 0o644


def test_github_annotations_escape_names_and_stay_one_per_line(
    awkward: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (awkward / "new\nline\x01.yaml").write_text(CONTROL)
    code, out, _ = run("admit", "-f", "m", "--format", "github", capsys=capsys)
    lines = out.splitlines()
    assert code == 1 and all(x.startswith(("::error ", "::warning ")) for x in lines)
    assert any(x.startswith("::error file=m/x%250A.yaml,line=1,title=SMI1002::") for x in lines)
    assert any("file=m/sub dir/a b%2Cc%3A%25d é.yaml,line=32," in x for x in lines)
    assert any(x.startswith("::error file=m/new%0Aline\x01.yaml,line=4,") for x in lines)


def test_thousands_of_findings_stay_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = [INVALID.replace("name: broken", f"name: broken-{i}") for i in range(300)]
    (tmp_path / "many.yaml").write_text("---\n".join(docs))
    code, out, _ = run("admit", "-f", str(tmp_path), "--format", "sarif", capsys=capsys)
    assert code == 1 and len(check_sarif(json.loads(out))) >= 300


@pytest.mark.parametrize("fmt", ["json", "sarif", "junit"])
def test_a_valid_object_in_an_undecodable_file_name_is_judged_not_a_crash(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # smi.policy.admission._uid hashed the file name with uuid5, which cannot encode a lone
    # surrogate: exit 70 for a valid object.
    d = tmp_path / "m"
    d.mkdir()
    (d / os.fsdecode(b"ok\xff.yaml")).write_text(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        "metadata: {name: g, namespace: shop}\n"
        "spec:\n  matches: [{name: m, pathRegex: /api}]\n"
    )
    code, out, err = run("admit", "-f", str(d), "--format", fmt, capsys=capsys)
    assert code in (0, 1) and "1 object (" in err, err  # judged (a shipped policy may deny)
    if fmt in ("json", "sarif"):
        json.loads(out)
    else:
        ET.fromstring(out)


# --- policies or parameters that cannot be loaded ---------------------------------------------

BROKEN_POLICY = """# METADATA
# title: broken
# custom:
#   code: B0001
#   enforcement: deny
package b.broken

import rego.v1

violation contains msg if {
\tmsg := [1, 2
}
"""


def check_unloaded(fmt: str, out: str, *, code: str, file: str) -> None:
    """`out` is a whole report of `fmt` that holds one load error, `code` on `file`."""
    if fmt == "json":
        doc = json.loads(out)
        assert (doc["ok"], doc["results"], doc["summary"]["load_errors"]) == (False, [], 1)
        assert [(d["code"], d["severity"], d["file"]) for d in doc["load"]] == [
            (code, "error", file)
        ]
    elif fmt == "junit":
        root = ET.fromstring(out)
        assert (root.get("tests"), root.get("failures")) == ("1", "1")
        [case] = root.iter("testcase")
        assert case.get("file") == file
        failure = case.find("failure")
        assert failure is not None and f"({code})" in (failure.text or "")
    elif fmt == "sarif":
        [result] = check_sarif(json.loads(out))
        assert (result["ruleId"], result["level"]) == (code, "error")
    else:
        assert out.startswith(f"::error file={file}") and f"title={code}::" in out
        assert out.count("\n") == 1


@pytest.mark.parametrize("fmt", ["json", "junit", "sarif", "github"])
def test_parameters_that_cannot_be_read_still_make_a_report(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error went to standard error alone and standard output stayed empty: the CI step
    that reads the report got nothing to parse (or upload)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run("admit", "-f", str(DENIED), "--parameters", "missing.yaml",
                         "--format", fmt, capsys=capsys)  # fmt: skip
    assert code == 1
    assert (
        err == "missing.yaml: cannot read policy parameters: no such file or directory (SMI5004)\n"
    )
    check_unloaded(fmt, out, code="SMI5004", file="missing.yaml")


@pytest.mark.parametrize("fmt", ["json", "junit", "sarif", "github", "text"])
def test_a_policy_that_does_not_load_replaces_the_previous_report_file(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o FILE` was left as the previous run wrote it: a CI step that uploads it after a
    failed run published stale results (an ok SARIF from yesterday)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "b" / "broken").mkdir(parents=True)
    (tmp_path / "org" / "b" / "broken" / "policy.rego").write_text(BROKEN_POLICY)
    report = tmp_path / f"smictl.{fmt}"
    report.write_text("previous report\n")
    code, out, err = run("admit", "-f", str(DENIED), "--policies", "org", "--format", fmt,
                         "-o", str(report), capsys=capsys)  # fmt: skip
    [line] = err.splitlines()
    assert code == 1 and out == ""
    assert line.startswith("org/b/broken/policy.rego:") and line.endswith("(SMI5001)")
    if fmt == "text":
        assert report.read_text() == line + "\n"
    else:
        check_unloaded(fmt, report.read_text(), code="SMI5001", file="org/b/broken/policy.rego")


def test_text_on_standard_output_does_not_repeat_the_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run("admit", "-f", str(DENIED), "--parameters", "missing.yaml",
                         capsys=capsys)  # fmt: skip
    assert (code, out) == (1, "")
    assert (
        err == "missing.yaml: cannot read policy parameters: no such file or directory (SMI5004)\n"
    )


def test_admit_does_not_read_the_report_it_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`admit -f . --format json -o report.json`, run twice in one workspace: the second run
    read the first one's report as a manifest (SMI1004/SMI1005) and failed."""
    (tmp_path / "split.yaml").write_text(INVALID.replace("weight: -5", "weight: 5"))
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, _, err = run(
            "admit", "-f", ".", "--no-shipped-policies", "--format", "json", "-o", "report.json",
            capsys=capsys,
        )  # fmt: skip
        assert code == 0, err
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["summary"]["load_errors"] == 0 and report["summary"]["objects"] == 1
