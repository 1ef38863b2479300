"""Keep the chart's value documentation in one place: the `# --` comments of values.yaml.

From them this writes the values table in charts/smictl/README.md (between the
`<!-- values-table -->` markers) and the `description` of every property in
values.schema.json. A unit test fails when either is out of date; run
`python charts/tools/gen_values_docs.py` after editing values.yaml.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "smictl"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
README = CHART / "README.md"
BEGIN, END = "<!-- values-table -->", "<!-- /values-table -->"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s|$)")


@dataclass(frozen=True)
class ValueDoc:
    path: str  # dotted, e.g. controlPlane.resources.limits.cpu
    description: str  # "" when the key has no `# --` comment
    line: int


def parse(text: str) -> list[ValueDoc]:
    """Every key of a values file with the `# --` comment block right above it."""
    docs: list[ValueDoc] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if body.startswith("--"):
                comment = [body[2:].strip()]
            elif comment:
                comment.append(body)
            continue
        match = _KEY.match(line)
        if match is None:
            comment = [] if not stripped else comment
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        path = ".".join(key for _, key in stack)
        docs.append(ValueDoc(path, " ".join(comment).strip(), number))
        comment = []
    return docs


def lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


def _type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}[
        type(value)
    ]


def table(text: str) -> str:
    values = yaml.safe_load(text)
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for doc in parse(text):
        value = lookup(values, doc.path)
        if isinstance(value, dict) and value:
            continue  # documented by its children
        default = json.dumps(value).replace("|", "\\|")
        description = doc.description.replace("|", "\\|")
        rows.append(f"| `{doc.path}` | {_type(value)} | `{default}` | {description} |")
    return "\n".join(rows)


def readme_with_table(readme: str, text: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + table(text) + "\n" + readme[end:]


def schema_with_descriptions(schema: dict[str, Any], text: str) -> dict[str, Any]:
    result = json.loads(json.dumps(schema))
    for doc in parse(text):
        node = result
        for part in doc.path.split("."):
            node = node["properties"][part]
        node["description"] = doc.description
    return result


def main() -> int:
    text = VALUES.read_text(encoding="utf-8")
    README.write_text(readme_with_table(README.read_text(encoding="utf-8"), text), encoding="utf-8")
    schema = schema_with_descriptions(json.loads(SCHEMA.read_text(encoding="utf-8")), text)
    SCHEMA.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    print(f"updated {README} and {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
