"""YAML text -> JSON-like documents that remember the line of every field.

Diagnostics point at the offending field (`file:line: path: reason`), so the loader needs, for
each document, a map from a JSON path (`spec.backends[1].weight`) to the line where YAML wrote
it. PyYAML's composer builds a Node with two Mark objects per value and its Python constructor
is slow; this module instead drives libyaml's event parser (the C loader where available) and
builds the plain dicts and lists and a compact line shadow in one pass.

Semantics follow PyYAML's SafeLoader (YAML 1.1 scalars), with the differences a Kubernetes
manifest needs: timestamps stay strings, mapping keys are always strings (scalar keys keep their
text, as kubectl's YAML-to-JSON does), a key written twice in one mapping is an error rather than
silently dropping the first, and documents are bounded in size and depth (aliases counted as
expanded, so a "billion laughs" document is refused instead of exhausting memory downstream).

Paths are written `a.b[0].c`; a key that is not a plain word is quoted: `annotations["x.io/y"]`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml import events as ev

try:  # libyaml's C parser; the pure-Python one gives the same events, only slower
    from yaml import CSafeLoader as _ParserClass
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _ParserClass  # type: ignore[assignment]

MAX_DEPTH = 64
MAX_NODES = 200_000

PathPart = str | int
# A line shadow: the 1-based line of a scalar, or (line, children) for a container, where the
# children of a mapping are {key: (line of the key, shadow of the value)} and those of a
# sequence are [shadow of each item].
Shadow = int | tuple[int, dict[str, tuple[int, "Shadow"]] | list["Shadow"]]

_WORD = re.compile(r"[A-Za-z0-9_$-]+")
_PATH_TOKEN = re.compile(r'\.?([A-Za-z0-9_$-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')

_TAG = "tag:yaml.org,2002:"
_BOOL = {
    "yes": True, "Yes": True, "YES": True, "true": True, "True": True, "TRUE": True,
    "on": True, "On": True, "ON": True,
    "no": False, "No": False, "NO": False, "false": False, "False": False, "FALSE": False,
    "off": False, "Off": False, "OFF": False,
}  # fmt: skip
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_NUMBER_START = frozenset("-+0123456789.")
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class YamlError(Exception):
    """The text is not YAML this loader accepts; `line` is 1-based where known. `too_large`
    marks a document refused for its size or depth rather than its syntax."""

    def __init__(self, message: str, *, line: int | None, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.too_large = too_large


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
        if isinstance(shadow, int):
            break
        children = shadow[1]
        if isinstance(children, dict) and isinstance(part, str) and part in children:
            line, shadow = children[part]
        elif isinstance(children, list) and isinstance(part, int) and 0 <= part < len(children):
            shadow = children[part]
            line = shadow if isinstance(shadow, int) else shadow[0]
        else:
            break
    return line, shadow


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


# --- scalars ------------------------------------------------------------------------------------


def _to_int(text: str) -> int:
    value = text.replace("_", "")
    sign = -1 if value[0] == "-" else 1
    if value[0] in "+-":
        value = value[1:]
    if value == "0":
        return 0
    if value.startswith("0b"):
        return sign * int(value[2:], 2)
    if value.startswith("0x"):
        return sign * int(value[2:], 16)
    if value[0] == "0":
        return sign * int(value, 8)
    if ":" in value:
        total = 0
        for digit in value.split(":"):
            total = total * 60 + int(digit)
        return sign * total
    return sign * int(value)


def _to_float(text: str) -> float:
    value = text.replace("_", "").lower()
    sign = -1.0 if value[0] == "-" else 1.0
    if value[0] in "+-":
        value = value[1:]
    if value == ".inf":
        return sign * math.inf
    if value == ".nan":
        return math.nan
    if ":" in value:
        total = 0.0
        for digit in value.split(":"):
            total = total * 60 + float(digit)
        return sign * total
    return sign * float(value)


def _plain(text: str) -> Any:
    """Resolve an untagged plain scalar the way YAML 1.1 (PyYAML) does, timestamps excepted."""
    if text in _NULL:
        return None
    flag = _BOOL.get(text)
    if flag is not None:
        return flag
    if text[0] in _NUMBER_START:
        if _INT.match(text):
            return _to_int(text)
        if _FLOAT.match(text):
            return _to_float(text)
    return text


def _tagged(text: str, tag: str, line: int) -> Any:
    if tag in ("!", _TAG + "str", _TAG + "timestamp", _TAG + "binary"):
        return text
    if tag == _TAG + "null":
        return None
    try:
        if tag == _TAG + "bool":
            return _BOOL[text]
        if tag == _TAG + "int":
            return _to_int(text)
        if tag == _TAG + "float":
            return _to_float(text)
    except (KeyError, ValueError, IndexError):
        raise YamlError(f"{text!r} is not a valid {tag.removeprefix(_TAG)}", line=line) from None
    raise YamlError(f"unsupported YAML tag {tag}", line=line)


def _scalar(event: ev.ScalarEvent, line: int) -> Any:
    tag = event.tag
    if tag is None or (tag == "!" and event.implicit[0]):
        return _plain(event.value) if event.implicit[0] else event.value
    return _tagged(event.value, tag, line)


# --- documents ----------------------------------------------------------------------------------


# Indexes into a frame: a mapping or sequence being built.
_VALUE, _SHADOW, _LINE, _ANCHOR, _SIZE, _KEY, _KEY_LINE, _MERGES = range(8)
_NO_KEY: Any = None


def load_documents(text: str) -> Iterator[YamlDocument]:
    """Every non-empty document of a YAML stream, in order. Raises `YamlError` at the first
    problem; the documents yielded before it stay valid."""
    parser = _ParserClass(text)
    index = -1
    try:
        while True:
            event = _next_event(parser)
            cls = event.__class__
            if cls is ev.DocumentStartEvent:
                index += 1
                value, shadow = _document(parser)
                if value is not None:
                    yield YamlDocument(value=value, index=index, lines=LineMap(shadow))
            elif cls is ev.StreamEndEvent:
                return
    finally:
        parser.dispose()


def _next_event(parser: Any) -> Any:
    try:
        return parser.get_event()
    except yaml.YAMLError as exc:
        raise _as_yaml_error(exc) from None


def _as_yaml_error(exc: yaml.YAMLError) -> YamlError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return YamlError(_yaml_message(exc), line=line)
    # reader errors: control characters, bad encoding
    return YamlError(str(exc).splitlines()[0] if str(exc) else "invalid YAML", line=None)


def _document(parser: Any) -> tuple[Any, Shadow]:  # noqa: PLR0912, PLR0915 - one hot loop
    """Build one document from its events. Iterative, so nesting is bounded by MAX_DEPTH and
    never by the Python stack; written as one loop because it runs once per YAML value."""
    stack: list[list[Any]] = []
    anchors: dict[str, tuple[Any, Shadow, int]] = {}
    nodes = 0
    get_event = parser.get_event
    scalar_cls, map_cls, seq_cls = ev.ScalarEvent, ev.MappingStartEvent, ev.SequenceStartEvent
    while True:
        try:
            event = get_event()
        except yaml.YAMLError as exc:
            raise _as_yaml_error(exc) from None
        cls = event.__class__
        line = event.start_mark.line + 1
        raw: str | None = None
        if cls is scalar_cls:
            raw = event.value
            if event.tag is None:
                value = _plain(raw) if event.implicit[0] else raw
            else:
                value = _scalar(event, line)
            shadow: Shadow = line
            size = 1
            if event.anchor is not None:
                anchors[event.anchor] = (value, line, 1)
        elif cls is map_cls or cls is seq_cls:
            if len(stack) >= MAX_DEPTH:
                raise YamlError(f"nested deeper than {MAX_DEPTH} levels", line=line, too_large=True)
            if cls is map_cls:
                _check_container_tag(event.tag, "map", line)
                stack.append([{}, {}, line, event.anchor, 1, _NO_KEY, 0, None])
            else:
                _check_container_tag(event.tag, "seq", line)
                stack.append([[], [], line, event.anchor, 1, _NO_KEY, 0, None])
            continue
        elif cls is ev.MappingEndEvent or cls is ev.SequenceEndEvent:
            frame = stack.pop()
            if frame[_MERGES]:
                _merge(frame)
            value, size = frame[_VALUE], frame[_SIZE]
            shadow = (frame[_LINE], frame[_SHADOW])
            if frame[_ANCHOR] is not None:
                anchors[frame[_ANCHOR]] = (value, shadow, size)
        elif cls is ev.AliasEvent:
            target = anchors.get(event.anchor)
            if target is None:
                raise YamlError(f"unknown alias *{event.anchor}", line=line)
            value, shadow, size = target
        elif cls is ev.DocumentEndEvent:
            return None, line
        else:  # pragma: no cover - libyaml emits nothing else inside a document
            continue
        nodes += size
        if nodes > MAX_NODES:
            raise YamlError(
                f"more than {MAX_NODES} values (aliases counted as expanded)",
                line=line,
                too_large=True,
            )
        if not stack:
            end = _next_event(parser)
            if end.__class__ is not ev.DocumentEndEvent:  # pragma: no cover - libyaml guarantees
                raise YamlError("expected the end of the document", line=line)
            return value, shadow
        top = stack[-1]
        top[_SIZE] += size
        container = top[_VALUE]
        if container.__class__ is list:
            container.append(value)
            top[_SHADOW].append(shadow)
        elif top[_KEY] is _NO_KEY:
            top[_KEY] = _key(container, value, raw, line)
            top[_KEY_LINE] = line
        else:
            key = top[_KEY]
            top[_KEY] = _NO_KEY
            if key == "<<" and not isinstance(shadow, int):
                _collect_merges(top, value, shadow)
            else:
                container[key] = value
                top[_SHADOW][key] = (top[_KEY_LINE], shadow)


def _key(container: dict[str, Any], value: Any, raw: str | None, line: int) -> str:
    if raw is not None:  # a scalar key keeps its text: `80:` is the key "80"
        key = raw
    elif isinstance(value, str):
        key = value
    else:
        raise YamlError("a mapping key must be a string, not a list or mapping", line=line)
    if key in container:
        raise YamlError(f"duplicate key {key!r} in one mapping", line=line)
    return key


def _collect_merges(top: list[Any], value: Any, shadow: Shadow) -> None:
    """`<<: *base` or `<<: [*a, *b]`: earlier sources win over later ones, own keys over all."""
    assert not isinstance(shadow, int)
    if top[_MERGES] is None:
        top[_MERGES] = []
    if isinstance(value, dict):
        top[_MERGES].append((value, shadow[1]))
        return
    for item, item_shadow in zip(value, shadow[1], strict=True):
        if not isinstance(item, dict) or isinstance(item_shadow, int):
            raise YamlError("a merge key (<<) takes a mapping or a list of them", line=top[_LINE])
        top[_MERGES].append((item, item_shadow[1]))


def _merge(frame: list[Any]) -> None:
    value, shadow = frame[_VALUE], frame[_SHADOW]
    own, own_shadow = dict(value), dict(shadow)
    value.clear()
    shadow.clear()
    for merged, merged_shadow in reversed(frame[_MERGES]):
        value.update(merged)
        shadow.update(merged_shadow)
    value.update(own)
    shadow.update(own_shadow)


def _check_container_tag(tag: str | None, kind: str, line: int) -> None:
    if tag is not None and tag != "!" and tag != _TAG + kind:
        raise YamlError(f"unsupported YAML tag {tag}", line=line)


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return ", ".join(parts) if parts else "invalid YAML"
