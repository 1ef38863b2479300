"""A YAML or JSON syntax error is reported at the line of the construct it is about (the quote
or bracket never closed), never at the end of the stream, which for a file ending in a line
break is a line past the last one."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main
from smi.errors import LoadError
from smi.sources import read_documents

Capsys = pytest.CaptureFixture[str]
HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"


def _error(text: str, filename: str) -> tuple[int | None, str]:
    with pytest.raises(LoadError) as info:
        read_documents(text, filename=filename)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "SMI1002"
    return diagnostic.line, diagnostic.message


def test_an_unterminated_quote_is_reported_where_it_opens(tmp_path: Path, capsys: Capsys) -> None:
    """It was reported at line 206 of this 205-line file, "found unexpected end of stream"."""
    path = tmp_path / "unterm.yaml"
    keys = "".join(f"  k{i}: v\n" for i in range(200))
    path.write_text(HEAD + '  name: "cm\ndata:\n' + keys)
    assert main(["validate", "-f", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert out == (
        f"{path}:4: while scanning a quoted scalar, found unexpected end of stream (SMI1002)\n"
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # The shipped examples/broken/syntax.yaml ends so; it was reported a line past it.
        (
            HEAD + "  name: x\ndata:\n  ports: [5432\n",
            6,
            "while parsing a flow sequence, did not find expected ',' or ']' "
            "at the end of the file",
        ),
        (
            "a: 1\nb: 2\nc: {x: 1\n\nd: 2\n",
            3,
            "while parsing a flow mapping, did not find expected ',' or '}' at line 5",
        ),
        (
            "a: 1\nfoo\nb: 2\n",
            2,
            "while scanning a simple key, could not find expected ':' at line 3",
        ),
        ("a: [\n", 1, "while parsing a flow node, did not find expected node content"),
        # Where the problem mark is the nearer: the start of the mapping is line 1.
        ("a:\n- 1\nb: 2\n- 3\n", 4, "while parsing a block mapping, did not find expected key"),
    ],
)
def test_yaml_syntax_errors_name_the_line_of_the_construct(
    text: str, line: int, message: str
) -> None:
    assert _error(text, "x.yaml") == (line, message)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # json stops at the end, a line past the last; the brace never closed is on line 1.
        ('{\n "a": {\n  "b": 1\n}\n', 1, "Expecting ',' delimiter at the end of the file"),
        ('{\n "a": 1,\n "b": [1,\n  2\n', 3, "Expecting ',' delimiter at the end of the file"),
        # Problems before the end keep json's own line.
        ('{\n "a": 1\n "b": 2}\n', 3, "Expecting ',' delimiter"),
        ('{\n "a": "x\n}\n', 2, "Invalid control character at"),
    ],
)
def test_json_syntax_errors_name_a_line_of_the_file(text: str, line: int, message: str) -> None:
    assert _error(text, "x.json") == (line, f"invalid JSON: {message}")
