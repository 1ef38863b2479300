"""The hot loop of `smi.yamlpos`: libyaml events -> (value, line shadow) of one document.

Runs once per YAML value of every manifest, so it is written for speed: one loop, the state of
the container being built in local variables, marks read only where a line is kept (keys,
sequence items, containers) and not for the scalar values of mappings (their line is their
key's). Iterative: nesting is bounded by MAX_DEPTH, never by the Python stack; aliases are
counted as expanded against MAX_NODES.

A shadow is the 1-based line of a scalar, or `(line, children)` for a container: a mapping's
children are `{key: shadow of the value}` (a value's line is its key's line), a sequence's are
`[shadow of each item]`.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

import yaml
from yaml import events as ev

MAX_DEPTH = 64
MAX_NODES = 200_000

Shadow = int | tuple[int, dict[str, "Shadow"] | list["Shadow"]]

_TAG = "tag:yaml.org,2002:"
_BOOL = {
    "yes": True, "Yes": True, "YES": True, "true": True, "True": True, "TRUE": True,
    "on": True, "On": True, "ON": True,
    "no": False, "No": False, "NO": False, "false": False, "False": False, "FALSE": False,
    "off": False, "Off": False, "OFF": False,
}  # fmt: skip
_MISSING: Any = object()
# Plain scalars that are not strings by their exact text: YAML 1.1 null and booleans.
SPECIAL_SCALARS: dict[str, Any] = {
    "": None, "~": None, "null": None, "Null": None, "NULL": None, **_BOOL
}  # fmt: skip
# A plain scalar that starts otherwise is no number (its text is the value, or a special).
NUMBER_START = frozenset("-+0123456789.")
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
    re.X,
)
# YAML 1.1 floats, and (as kubectl's go-yaml reads them, so a manifest the API server takes is
# read alike here) an exponent without a sign or without a point: `1e3`, `1.5e3`, `-2E+2`.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class YamlError(Exception):
    """The text is not YAML this loader accepts; `line` is 1-based where known. `too_large`
    marks a document refused for its size or depth rather than its syntax; `path` is the
    field it is about where one is known (a duplicate key's)."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None,
        too_large: bool = False,
        offset: int | None = None,
        path: tuple[str | int, ...] = (),
        mark: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.too_large = too_large
        # Where libyaml's reader stopped (a control character, a NUL): it gives no line, but
        # an offset into the text, from which `smi.yamlpos` computes the line.
        self.offset = offset
        self.path = path
        # (character index, 1-based column) of the character the scanner stopped at, for
        # `smi.yamlpos` to name a tab, which libyaml's message does not.
        self.mark = mark


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


def too_long_number(text: str, *, line: int | None) -> YamlError:
    """The error for a number Python will not read: `int()` refuses more than
    `sys.get_int_max_str_digits()` digits with a ValueError, which a `weight: 999…` of 5000
    digits would otherwise turn into an internal error instead of a problem on its line."""
    return YamlError(
        f"number of {len(text)} characters is too long "
        f"(at most {sys.get_int_max_str_digits()} digits)",
        line=line,
        too_large=True,
    )


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


def _number_or_text(text: str) -> Any:
    if _INT.match(text):
        return _to_int(text)
    if _FLOAT.match(text):
        value = _to_float(text)
        if math.isinf(value) and "inf" not in text.lower():
            # Beyond a double (`1e400`, `7e12345`, a short git SHA): kubectl's go-yaml keeps
            # such a scalar a string, so a label `commit: 7e12345` is text, not infinity.
            return text
        return value
    return text


def plain(text: str) -> Any:
    """Resolve an untagged plain scalar the way YAML 1.1 (PyYAML) does, timestamps excepted
    (they stay strings, as Kubernetes reads them)."""
    value = SPECIAL_SCALARS.get(text, _MISSING)
    if value is not _MISSING:
        return value
    return _number_or_text(text) if text[0] in NUMBER_START else text


def _tagged(text: str, tag: str, *, line: int) -> Any:
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


def _scalar(event: Any) -> Any:
    tag, text = event.tag, event.value
    if tag is None:
        return plain(text) if event.implicit[0] else text
    if tag == "!" and event.implicit[0]:
        return text
    return _tagged(text, tag, line=event.start_mark.line + 1)


def _check_container_tag(event: Any, kind: str) -> None:
    tag = event.tag
    if tag is not None and tag != "!" and tag != _TAG + kind:
        raise YamlError(f"unsupported YAML tag {tag}", line=event.start_mark.line + 1)


# --- documents ----------------------------------------------------------------------------------


# Errors about a construct left open (a quote, a bracket, a key without its colon): libyaml's
# context mark is where it opens, its problem mark where the scanner gave up, often the end of
# the file, a line past the last. A block mapping's context is instead the start of the whole
# mapping (maybe the document's first line), and there the problem mark is the nearer.
_OPENED = (
    "while scanning a quoted scalar",
    "while parsing a flow sequence",
    "while parsing a flow mapping",
    "while scanning a simple key",
)


def as_yaml_error(exc: yaml.YAMLError, *, text: str) -> YamlError:
    """Ours for libyaml's error on `text`: one line, at the construct it is about."""
    if isinstance(exc, yaml.MarkedYAMLError):
        return _syntax_error(exc, text)
    # reader errors: control characters, bad encoding
    position = getattr(exc, "position", None)
    return YamlError(
        str(exc).splitlines()[0] if str(exc) else "invalid YAML",
        line=None,
        offset=position if isinstance(position, int) else None,
    )


def _syntax_error(exc: yaml.MarkedYAMLError, text: str) -> YamlError:
    problem, context = exc.problem_mark, exc.context_mark
    # Marks count characters, a byte order mark not among them.
    end = len(text) - text.startswith("\ufeff")
    at_end = problem is not None and problem.index >= end
    message = ", ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
    mark = problem or context
    if context is not None and (problem is None or at_end or str(exc.context).startswith(_OPENED)):
        mark = context
        if problem is not None and problem.line != context.line:
            # Where it gave up, still worth reading when it is not the end.
            if not at_end:
                message += f" at line {problem.line + 1}"
            elif "end of stream" not in str(exc.problem):
                message += " at the end of the file"
    return YamlError(
        message,
        line=None if mark is None else _line_of(mark, end=end),
        mark=(problem.index, problem.column + 1) if problem is not None else None,
    )


def _line_of(mark: yaml.Mark, *, end: int) -> int:
    """The 1-based line of `mark`; of the last line for the end of a text that ends in a line
    break, whose mark is on the line after it (past the end of the file)."""
    if mark.index >= end and mark.column == 0 and mark.line > 0:
        return int(mark.line)
    return int(mark.line) + 1


def build_document(parser: Any, *, text: str) -> tuple[Any, Shadow]:
    """Consume the events of one document (after its DocumentStartEvent) up to and including
    its DocumentEndEvent; (None, line) for an empty document. `text` is what `parser` reads,
    for the line of a syntax error."""
    try:
        return _build(parser)
    except yaml.YAMLError as exc:
        raise as_yaml_error(exc, text=text) from None


def _build(parser: Any) -> tuple[Any, Shadow]:  # noqa: PLR0912, PLR0915
    get_event = parser.get_event
    scalar_cls, alias_cls = ev.ScalarEvent, ev.AliasEvent
    map_cls, seq_cls = ev.MappingStartEvent, ev.SequenceStartEvent
    end_classes = (ev.MappingEndEvent, ev.SequenceEndEvent)
    stack: list[tuple[Any, ...]] = []
    anchors: dict[str, tuple[Any, Shadow, int]] = {}
    nodes = 0
    # The container being built: None at the document level.
    value: Any = None
    shadow: Any = None
    is_map = False
    key: Any = _MISSING
    key_line = 0
    line = 0
    anchor: str | None = None
    start = 0
    merges: list[tuple[dict[str, Any], dict[str, Shadow]]] | None = None
    result: tuple[Any, Shadow] | None = None
    while True:
        event = get_event()
        cls = event.__class__
        if cls is scalar_cls:
            text = event.value
            try:
                if event.tag is None and event.implicit[0]:
                    item = SPECIAL_SCALARS.get(text, _MISSING)
                    if item is _MISSING:
                        item = _number_or_text(text) if text[0] in NUMBER_START else text
                else:
                    item = _scalar(event)
            except ValueError:  # an integer too long for int(): hostile input, not a crash
                if not (is_map and key is _MISSING):
                    raise too_long_number(text, line=event.start_mark.line + 1) from None
                item = text  # a key, which keeps its text anyway
            item_shadow: Any = None  # the line, read from the mark only where it is kept
            size = 1
            if event.anchor is not None:
                anchors[event.anchor] = (item, event.start_mark.line + 1, 1)
            if is_map and key is _MISSING:  # a key: scalar keys keep their text (`80:` is "80")
                if text in value:
                    raise _duplicate(text, stack, line=event.start_mark.line + 1)
                key, key_line = text, event.start_mark.line + 1
                nodes += 1
                continue
        elif cls is map_cls or cls is seq_cls:
            if len(stack) >= MAX_DEPTH:
                raise YamlError(
                    f"nested deeper than {MAX_DEPTH} levels",
                    line=event.start_mark.line + 1,
                    too_large=True,
                )
            if is_map and key is _MISSING:
                raise YamlError(
                    "a mapping key must be a string, not a list or mapping",
                    line=event.start_mark.line + 1,
                )
            child_line = key_line if is_map else event.start_mark.line + 1
            stack.append((value, shadow, is_map, key, key_line, line, anchor, start, merges))
            if cls is map_cls:
                _check_container_tag(event, "map")
                value, shadow, is_map = {}, {}, True
            else:
                _check_container_tag(event, "seq")
                value, shadow, is_map = [], [], False
            key, line, anchor, start, merges = _MISSING, child_line, event.anchor, nodes, None
            nodes += 1
            continue
        elif cls in end_classes:
            if merges:
                _merge(value, shadow, merges=merges)
            item, item_shadow, size = value, (line, shadow), 0  # already counted
            if anchor is not None:
                anchors[anchor] = (item, item_shadow, nodes - start)
            value, shadow, is_map, key, key_line, line, anchor, start, merges = stack.pop()
        elif cls is alias_cls:
            target = anchors.get(event.anchor)
            if target is None:
                raise YamlError(f"unknown alias *{event.anchor}", line=event.start_mark.line + 1)
            item, item_shadow, size = target
            if is_map and key is _MISSING:
                if not isinstance(item, str):
                    raise YamlError(
                        "a mapping key must be a string", line=event.start_mark.line + 1
                    )
                if item in value:
                    raise _duplicate(item, stack, line=event.start_mark.line + 1)
                key, key_line = item, event.start_mark.line + 1
                continue
            if is_map and not isinstance(item_shadow, int):
                item_shadow = (key_line, item_shadow[1])  # point at the key, not the anchor
        elif cls is ev.DocumentEndEvent:
            if result is None:
                return None, event.start_mark.line + 1
            return result
        else:  # pragma: no cover - libyaml emits nothing else inside a document
            continue
        nodes += size
        if nodes > MAX_NODES:
            raise YamlError(
                f"more than {MAX_NODES} values (aliases counted as expanded)",
                line=event.start_mark.line + 1,
                too_large=True,
            )
        if is_map:
            if key == "<<" and isinstance(item, dict | list):
                merges = _collect_merges(merges, item=item, item_shadow=item_shadow, line=line)
            else:
                value[key] = item
                shadow[key] = key_line if item_shadow is None else item_shadow
            key = _MISSING
        elif value is not None:
            value.append(item)
            shadow.append(event.start_mark.line + 1 if item_shadow is None else item_shadow)
        else:
            result = (item, event.start_mark.line + 1 if item_shadow is None else item_shadow)


def _duplicate(key: str, stack: list[tuple[Any, ...]], *, line: int) -> YamlError:
    """A key written twice, with its field path (`spec.backends[1].weight`): in a long file
    the line alone left the reader to work out which of many `weight:` keys it was. The path
    is the key each open mapping will store its child under, or the index each open sequence
    will append it at (`stack[0]` is the document, above the root)."""
    parts = [entry[3] if entry[2] else len(entry[0]) for entry in stack[1:]]
    return YamlError(f"duplicate key {key!r} in one mapping", line=line, path=(*parts, key))


def _collect_merges(
    merges: list[tuple[dict[str, Any], dict[str, Shadow]]] | None,
    *,
    item: Any,
    item_shadow: Any,
    line: int,
) -> list[tuple[dict[str, Any], dict[str, Shadow]]]:
    """`<<: *base` or `<<: [*a, *b]`: earlier sources win over later ones, own keys over all."""
    out = merges or []
    if isinstance(item, dict):
        out.append((item, item_shadow[1]))
        return out
    for source, source_shadow in zip(item, item_shadow[1], strict=True):
        if not isinstance(source, dict) or isinstance(source_shadow, int):
            raise YamlError("a merge key (<<) takes a mapping or a list of them", line=line)
        out.append((source, source_shadow[1]))
    return out


def _merge(
    value: dict[str, Any],
    shadow: dict[str, Shadow],
    *,
    merges: list[tuple[dict[str, Any], dict[str, Shadow]]],
) -> None:
    own, own_shadow = dict(value), dict(shadow)
    value.clear()
    shadow.clear()
    for merged, merged_shadow in reversed(merges):
        value.update(merged)
        shadow.update(merged_shadow)
    value.update(own)
    shadow.update(own_shadow)
