"""Hostile files and streams through `smi.cli.main`: bytes that are not UTF-8, JSON that only
`json` accepts (duplicate keys, lone surrogates, escaped emoji), control characters, keys
libyaml will not read, closed or undecodable standard input, output that cannot be written.
Each must end as one `file:line: reason (CODE)` line and a non-zero exit, never an internal
error (exit 70) or a problem without the line it is on."""

from __future__ import annotations

import errno
import io
import re
from pathlib import Path
from typing import Any

import pytest

from smi.cli import main
from smi.loading import load_paths
from smi.yamlblock import parse_block

Capsys = pytest.CaptureFixture[str]
SPLIT_JSON = """\
{"apiVersion": "split.smi-spec.io/v1alpha4",
 "kind": "TrafficSplit",
 "metadata": {"name": "s", "namespace": "shop"NOTE},
 "spec": {"service": "web",
  "backends": [{"service": "web-v1",
   "weight": WEIGHT}]}}
"""
SPLIT_YAML = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: s
  namespace: shop
spec:
  service: web
  backends:
  - service: web-v1
    weight: 1
"""
TO = "split.smi-spec.io/v1alpha2"


def split_json(weight: str = "1", note: str = "") -> str:
    return SPLIT_JSON.replace("WEIGHT", weight).replace("NOTE", note)


def run(capsys: Capsys, *argv: str) -> tuple[int, list[str]]:
    """Exit code and the lines printed (`validate` prints problems on standard output, the
    other commands on standard error)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    return code, out.splitlines() + err.splitlines()


# --- JSON that `json` reads and YAML would not -----------------------------------------------


def test_a_json_key_written_twice_is_refused_with_its_line(tmp_path: Path, capsys: Capsys) -> None:
    """`json` kept the last `weight` silently: -5 was checked and 90 never seen (or the other
    way round); YAML has always refused a key written twice."""
    path = tmp_path / "split.json"
    path.write_text(split_json(weight='90,\n   "weight": -5'))
    for argv in (["validate", "-f"], ["compile", "-f"], ["convert", "--to", TO, "-f"]):
        code, err = run(capsys, *argv, str(path))
        assert code == 1
        assert (
            f"{path}:7: spec.backends[0].weight: duplicate key 'weight' in one mapping (SMI1002)"
            in err
        )


def test_a_lone_surrogate_escape_in_json_is_a_syntax_error(tmp_path: Path, capsys: Capsys) -> None:
    """`"\\ud800"` is valid JSON text but no character: writing it to a report or to YAML
    ended as an internal error (UnicodeEncodeError, exit 70) in `admit` and `convert`."""
    path = tmp_path / "split.json"
    path.write_text(split_json(note=',\n "labels": {"a": "x\\ud800"}'))
    expected = f"{path}:4: invalid JSON: a lone surrogate escape is no Unicode character (SMI1002)"
    for argv in (
        ["admit", "--no-shipped-policies", "-f"],
        ["convert", "--to", TO, "-f"],
        ["validate", "-f"],
    ):
        code, lines = run(capsys, *argv, str(path))
        assert code == 1
        assert expected in lines


def test_json_with_an_escaped_emoji_keeps_its_lines(tmp_path: Path, capsys: Capsys) -> None:
    """`json.dumps` writes a character beyond U+FFFF as a surrogate pair escape, which
    libyaml refuses: the file's line maps failed and every problem lost its line."""
    path = tmp_path / "split.json"
    path.write_text(split_json(weight="-1", note=', "annotations": {"a": "\\ud83d\\ude00"}'))
    code, err = run(capsys, "compile", "-f", str(path))
    assert code == 1
    assert err[0] == (
        f"{path}:6: spec.backends[0].weight: must be an integer >= 0 (got -1) (SMI2103)"
    )


@pytest.mark.parametrize("name", ["deep.json", "deep.yaml"])
def test_json_nested_too_deeply_names_its_line(tmp_path: Path, name: str) -> None:
    """Deeper than the recursion limit (a RecursionError) or than MAX_DEPTH (bounds_problem):
    both said where nothing was (no line), the .yaml one that it was "JSON"."""
    path = tmp_path / name
    for depth in (100, 10_000):
        path.write_text('{"a": [\n' + "[" * depth + "]" * depth + "]}")
        [problem] = load_paths([str(path)]).diagnostics
        assert problem.format() == f"{path}:2: nested deeper than 64 levels (SMI1010)"


# --- bytes and characters ----------------------------------------------------------------------


def test_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "split.yaml"
    path.write_bytes(SPLIT_YAML.encode().replace(b"web-v1", b"web-\xff1"))
    code, err = run(capsys, "compile", "-f", str(path))
    assert code == 1
    assert err[0] == f"{path}:9: cannot read: not UTF-8 text (SMI1001)"


def test_utf16_is_named_as_such(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "split.yaml"
    path.write_bytes(SPLIT_YAML.encode("utf-16"))
    code, err = run(capsys, "convert", "--to", TO, "-f", str(path))
    assert code == 1
    assert err == [
        f"{path}: cannot read: not UTF-8 text (UTF-16, by its byte-order mark: save it as "
        "UTF-8) (SMI1001)"
    ]


def test_a_byte_order_mark_before_json_is_skipped_as_before_yaml(tmp_path: Path) -> None:
    """The YAML reader skips it; `json` refused it (`Unexpected UTF-8 BOM`)."""
    for name in ("split.json", "split.yaml"):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + split_json().encode())
        result = load_paths([str(path)])
        assert result.diagnostics == [] and len(result.resources) == 1


@pytest.mark.parametrize("char", ["\x00", "\x07"])
def test_a_control_character_names_its_line(tmp_path: Path, char: str) -> None:
    """libyaml's reader error has no line, only a byte offset."""
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT_YAML.replace("name: s", "name: é").replace("web-v1", f"web{char}"))
    [problem] = load_paths([str(path)]).diagnostics
    assert (problem.code, problem.line) == ("SMI1002", 9)
    assert "control characters are not allowed" in problem.message


@pytest.mark.parametrize(
    "line",
    ["    " + "k" * 1025 + ": 1", "    x: {" + "k" * 1025 + ": 1}", "    '" + "k" * 1023 + "': 1"],
)
def test_a_key_longer_than_libyaml_reads_is_a_syntax_error_everywhere(
    tmp_path: Path, capsys: Capsys, line: str
) -> None:
    """The block fast path read it as a key; libyaml (`convert`, the line maps) does not:
    `validate` reported an unknown field without a line where `convert` said syntax error."""
    path = tmp_path / "split.yaml"
    text = SPLIT_YAML + line + "\n"
    path.write_text(text)
    assert parse_block(text) is None
    for argv in (["validate", "-f"], ["convert", "--to", TO, "-f"]):
        code, err = run(capsys, *argv, str(path))
        assert code == 1
        assert re.fullmatch(rf"{re.escape(str(path))}:1[01]: .* \(SMI1002\)", err[0])


def test_keys_as_long_as_libyaml_reads_stay_on_the_fast_path() -> None:
    for line in ["k" * 1024 + ": 1", "'" + "k" * 1022 + "': 1"]:
        assert parse_block(SPLIT_YAML + line + "\n") is not None


# --- standard input ---------------------------------------------------------------------------


def _stdin(data: bytes) -> io.TextIOWrapper:
    """Standard input as Python sets it up: a text layer that escapes bad bytes."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")


@pytest.mark.parametrize("command", [["validate"], ["convert", "--to", TO]])
def test_standard_input_that_is_not_utf8_names_its_line(
    monkeypatch: pytest.MonkeyPatch, capsys: Capsys, command: list[str]
) -> None:
    """Read through its text layer, a bad byte became a lone surrogate and an internal error."""
    monkeypatch.setattr("sys.stdin", _stdin(SPLIT_YAML.encode().replace(b"web-v1", b"\xff")))
    code, err = run(capsys, *command, "-f", "-")
    assert code == 1
    assert "<stdin>:9: cannot read: not UTF-8 text (SMI1001)" in err


def test_standard_input_is_decoded_as_utf8_with_its_bom_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", _stdin(b"\xef\xbb\xbf" + split_json().encode()))
    result = load_paths(["-"])
    assert result.diagnostics == [] and len(result.resources) == 1


@pytest.mark.parametrize("command", [["validate"], ["convert", "--to", TO]])
def test_closed_standard_input_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: Capsys, command: list[str]
) -> None:
    """`smictl validate -f - <&-`: Python sets sys.stdin to None (an AttributeError, exit 70)."""
    monkeypatch.setattr("sys.stdin", None)
    code, err = run(capsys, *command, "-f", "-")
    assert code == 1
    assert "<stdin>: cannot read: standard input is closed (SMI1001)" in err


# --- output -----------------------------------------------------------------------------------


def test_a_report_path_with_a_newline_is_one_line(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: [\n")
    target = tmp_path / "no\ndir" / "report.txt"
    code, err = run(capsys, "admit", "--no-shipped-policies", "-f", str(path), "-o", str(target))
    assert code == 1
    assert err[0] == str(target).replace("\n", "\\n") + (
        ": cannot write the report: No such file or directory"
    )


class _Full(io.StringIO):
    """Standard output on a full disk (`> /dev/full`)."""

    def write(self, text: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_standard_output_that_cannot_be_written_is_exit_1_not_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: Capsys, tmp_path: Path
) -> None:
    path = tmp_path / "split.json"
    path.write_text(split_json())
    capsys.readouterr()
    monkeypatch.setattr("sys.stdout", _Full())
    code, err = run(capsys, "compile", "-f", str(path))
    assert code == 1
    assert err == ["smictl: cannot write the output: No space left on device"]
