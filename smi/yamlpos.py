"""YAML text -> JSON-like documents that remember the line of every field.

Diagnostics point at the offending field (`file:line: path: reason`), so the loader needs, for
each document, a map from a JSON path (`spec.backends[1].weight`) to the line where YAML wrote
it. PyYAML's composer builds a Node with two Mark objects per value and its Python constructor
is slow; this module instead drives libyaml's event parser (the C loader where available) and
builds the plain dicts and lists and a compact line shadow in one pass (`smi.yamlbuild`).

Semantics follow PyYAML's SafeLoader (YAML 1.1 scalars), with the differences a Kubernetes
manifest needs: timestamps stay strings, mapping keys are always strings (scalar keys keep their
text, as kubectl's YAML-to-JSON does), a key written twice in one mapping is an error rather than
silently dropping the first, and documents are bounded in size and depth (aliases counted as
expanded, so a "billion laughs" document is refused instead of exhausting memory downstream).

Paths are written `a.b[0].c`; a key that is not a plain word is quoted: `annotations["x.io/y"]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml import events as ev

from smi.yamlbuild import MAX_DEPTH, MAX_NODES, Shadow, YamlError, as_yaml_error, build_document

try:  # libyaml's C parser; the pure-Python one gives the same events, only slower
    from yaml import CSafeLoader as _ParserClass

    _OFFSETS_IN_BYTES = True
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _ParserClass  # type: ignore[assignment]

    _OFFSETS_IN_BYTES = False

PathPart = str | int

_WORD = re.compile(r"[A-Za-z0-9_$-]+")
_PATH_TOKEN = re.compile(r'\.?([A-Za-z0-9_$-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "LineMap",
    "PathPart",
    "Shadow",
    "YamlDocument",
    "YamlError",
    "bounds_problem",
    "format_path",
    "join_path",
    "load_documents",
    "parse_path",
]


@dataclass(frozen=True, slots=True)
class LineMap:
    """Where the fields of one (sub)document were written."""

    shadow: Shadow

    @property
    def line(self) -> int:
        return self.shadow if isinstance(self.shadow, int) else self.shadow[0]

    def line_of(self, path: str | Sequence[PathPart]) -> int:
        """The line of `path`, or of its nearest parent that exists in the document."""
        parts = parse_path(path) if isinstance(path, str) else path
        return _walk(self.shadow, parts)[0]

    def sub(self, path: str | Sequence[PathPart]) -> LineMap:
        """The map of a nested object, e.g. the items of a `kind: List`."""
        parts = parse_path(path) if isinstance(path, str) else path
        return LineMap(_walk(self.shadow, parts)[1])


def _walk(shadow: Shadow, parts: Sequence[PathPart]) -> tuple[int, Shadow]:
    line = shadow if isinstance(shadow, int) else shadow[0]
    for part in parts:
        child = None if isinstance(shadow, int) else _child(shadow[1], part)
        if child is None:
            break
        shadow = child
        line = shadow if isinstance(shadow, int) else shadow[0]
    return line, shadow


def _child(children: dict[str, Shadow] | list[Shadow], part: PathPart) -> Shadow | None:
    if isinstance(children, dict):
        return children.get(part) if isinstance(part, str) else None
    if isinstance(part, int) and 0 <= part < len(children):
        return children[part]
    return None


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One document of a stream: its value, where it starts, and its line map."""

    value: Any
    index: int
    lines: LineMap

    @property
    def line(self) -> int:
        return self.lines.line


def bounds_problem(value: Any) -> str | None:
    """Why a value parsed by other means (JSON, a webhook request) exceeds the limits YAML
    documents are held to (MAX_DEPTH, MAX_NODES), or None. Iterative, like the builder, and
    visits containers only (scalars are counted by their container's length)."""
    if type(value) is not dict and type(value) is not list:
        return None
    nodes = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if type(item) is dict else item
        nodes += len(children)
        if nodes > MAX_NODES:
            return f"more than {MAX_NODES} values"
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                if depth >= MAX_DEPTH:
                    return f"nested deeper than {MAX_DEPTH} levels"
                stack.append((child, depth + 1))
    return None


# --- paths --------------------------------------------------------------------------------------


def format_path(parts: Sequence[PathPart]) -> str:
    """('spec', 'backends', 1, 'weight') -> 'spec.backends[1].weight'."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _WORD.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part)}]")
    return "".join(out)


def join_path(prefix: str, *parts: PathPart) -> str:
    """Append parts to an already formatted path."""
    tail = format_path(parts)
    if not prefix or tail.startswith("["):
        return prefix + tail
    return f"{prefix}.{tail}" if tail else prefix


def parse_path(path: str) -> tuple[PathPart, ...]:
    """The inverse of `format_path`; stops at the first token it cannot read."""
    parts: list[PathPart] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            break
        word, index, quoted = m.groups()
        if word is not None:
            parts.append(word)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(json.loads(quoted))
        pos = m.end()
    return tuple(parts)


# --- documents ----------------------------------------------------------------------------------


def load_documents(text: str) -> Iterator[YamlDocument]:
    """Every non-empty document of a YAML stream, in order. Raises `YamlError` at the first
    problem; the documents yielded before it stay valid."""
    parser = _ParserClass(text)
    index = -1
    try:
        while True:
            try:
                event = parser.get_event()
            except yaml.YAMLError as exc:
                raise as_yaml_error(exc, text=text) from None
            cls = event.__class__
            if cls is ev.DocumentStartEvent:
                index += 1
                value, shadow = build_document(parser, text=text)
                if value is not None:
                    yield YamlDocument(value=value, index=index, lines=LineMap(shadow))
            elif cls is ev.StreamEndEvent:
                return
    except YamlError as exc:
        if exc.line is None and exc.offset is not None:
            exc.line = _line_at(text, exc.offset)
        _name_a_tab(exc, text)
        raise
    finally:
        parser.dispose()


def _name_a_tab(exc: YamlError, text: str) -> None:
    """Say so when the scanner stopped at a tab: libyaml's "found character that cannot
    start any token" did not name the character, and a tab looks like spaces in an editor."""
    if exc.mark is None or exc.line is None:
        return
    index, column = exc.mark
    if 0 <= index < len(text) and text[index] == "\t":
        exc.message = f"tabs are not allowed in YAML indentation (a tab at {exc.line}:{column})"
        exc.args = (exc.message,)


def _line_at(text: str, offset: int) -> int:
    """The 1-based line of a reader error's offset: libyaml counts bytes of the UTF-8 text,
    PyYAML's own reader characters."""
    if _OFFSETS_IN_BYTES:
        return text.encode("utf-8", "surrogatepass").count(b"\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1  # pragma: no cover - PyYAML without libyaml
