"""A fast path for plain block YAML: the text -> its documents' values, without line maps.

libyaml through PyYAML costs about 20 µs per manifest document just to hand its events to
Python (two Mark objects per event), before any value is built; that alone exceeds what loading
may spend per document. Most manifests use a small part of YAML: block mappings and sequences,
plain or simply quoted one-line scalars, short flow collections on one line (`[GET, HEAD]`,
`{app: web}`), comments, `---` between documents. This module reads exactly that part with one
regular expression over the whole text (each line split into indentation, `- `, `key: ` and
the rest, in C) and a short loop that keeps the open containers on a stack.

Anything else - flow collections beyond the simplest, block scalars, anchors, tags, multi-line
scalars, escapes in double quotes, tabs, duplicate keys, merge keys, directives, other line
breaks, documents near the size limits - makes `parse_block` return None, and the caller reads
the text with the full libyaml path (`smi.yamlpos`), which also reports every error. The
values are those of that path, the same YAML 1.1 scalar rules included
(`smi.yamlbuild.plain`); property tests compare both on generated and mutated documents.

Line maps are not built here: the loader computes a file's maps with the full path only when a
diagnostic or `Resource.line_of` asks for a line. What this path keeps is each document's
index in the stream and the line where its root starts (`Source.line`).
"""

from __future__ import annotations

import re
from itertools import count
from typing import Any, NamedTuple

from smi.yamlbuild import MAX_DEPTH, MAX_NODES, NUMBER_START, SPECIAL_SCALARS, plain

__all__ = ["BlockDocument", "parse_block"]

# Characters libyaml refuses or reads as line breaks (NEL, LS, PS, CR), tabs, byte-order marks.
_UNSUPPORTED_CHARS = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
# One line: indentation, a sequence entry `- `, a key `name: ` (plain, or single-quoted with
# no quote inside), and the rest. A key is at most _MAX_KEY characters as written: libyaml
# reads no longer one as a key (`mapping values are not allowed`), and a line this path read
# as a manifest was a syntax error to `smictl convert` and to the line maps.
# Atomic groups (`(?>...)`): nothing here ever needs to backtrack, and a line that fails a part
# fails it at once, with no retries over a key of 1,000 characters. (They replace possessive
# quantifiers, `*+` and `?+`, which `re` matched wrongly before 3.11.5 where the repeated part
# can backtrack (CPython gh-106052, gh-100061): on Debian 12's 3.11.2 `- GET` read as `ET`.
# Plain greedy quantifiers would be 4 % faster there, and would match otherwise on some lines.)
_MAX_KEY = 1024
_ROW = re.compile(
    r"^((?> *))(?>(-(?:(?> +)|$))?)"
    rf"(?>(?:([A-Za-z0-9_](?>[A-Za-z0-9_./-]{{0,{_MAX_KEY - 1}}})"
    rf"|'(?>[^'\n]{{0,{_MAX_KEY - 2}}})'):"
    r"(?:(?> +)|$))?)(.*)",
    re.M,
)
_SINGLE_QUOTED = re.compile(r"'((?:[^'\n]|'')*)'(?: +#.*| *)")
_COMMENT = re.compile(r" +#.*")
# One token of a one-line flow collection (after any spaces): a bracket or `,`; `:` followed by
# a space; a single- or double-quoted scalar (no escapes, no line break); a plain scalar with
# no space, `:`, `#` or quote in it that starts with no indicator (`-` only before another
# character of it), whose end is a space, `,`, `: ` or a closing bracket.
_FLOW_TOKEN = re.compile(
    r"""(?> *)(?:([\[\]{},]|:(?= ))|'((?>(?:[^'\n]|'')*))'|"((?>[^"\\\n]*))"|"""
    r"""((?:[^\s\-?:,\[\]{}#&*!|>'"%@`]|-(?=[^\s,\[\]{}:#'"]))(?>[^\s,\[\]{}:#'"]*))"""
    r"""(?=[ ,\]}]|:(?= )|$))"""
)
_FLOW_DEPTH = 2
_DOUBLE_QUOTED = re.compile(r'"([^"\\\n]*)"(?: +#.*| *)')
# A plain scalar may not start with these (YAML indicators); `-` is checked on its own.
_INDICATORS = frozenset("?:,[]{}#&*!|>'\"%@`")
# First characters that send a value to the careful path (`_scalar`).
_HARD_START = _INDICATORS | {"-"}
# Open block containers before the nesting limit is near (the full parser then reports it),
# leaving room for a flow collection in the innermost.
_MAX_STACK = MAX_DEPTH - 2 - _FLOW_DEPTH
# Values per line at most: `- key: value` is a mapping, a key and a value.
_NODES_PER_LINE = 3


class BlockDocument(NamedTuple):
    """One non-empty document: its value, its index in the stream (empty documents count, as
    for `smi.yamlpos.YamlDocument.index`), the line of its root."""

    value: Any
    stream_index: int
    line: int


class _Unsupported(Exception):
    """The text uses YAML this path does not read; the full parser takes over."""


def parse_block(text: str) -> list[BlockDocument] | None:
    """The non-empty documents of `text`, or None when it is not plain block YAML (including
    when it is not valid YAML at all: the full parser then says why)."""
    if not _supported_characters(text):
        return None
    rows = _ROW.findall(text)
    # What the full parser would count, bounded: the values of block lines, and for flow
    # collections at most one value per character written.
    budget = MAX_NODES - len(rows) * _NODES_PER_LINE
    if budget <= 0:
        return None
    try:
        return _read(rows, flow_budget=budget)
    except (_Unsupported, ValueError):  # ValueError: an integer too long for int()
        return None


def _supported_characters(text: str) -> bool:
    """No tab, CR, other line break, control character or byte-order mark (ASCII text, most
    manifests, is checked by two C loops instead of the regular expression)."""
    if text.isascii():
        return text.replace("\n", "").isprintable()
    return _UNSUPPORTED_CHARS.search(text) is None


def _scalar(rest: str) -> Any:
    """A value that is not a bare plain scalar: quoted, a one-line flow collection, or plain
    with a comment or trailing spaces."""
    first = rest[0]
    if first == "'":
        quoted = _SINGLE_QUOTED.fullmatch(rest)
        if quoted is None:
            raise _Unsupported
        return quoted.group(1).replace("''", "'")
    if first == '"':
        quoted = _DOUBLE_QUOTED.fullmatch(rest)
        if quoted is None:
            raise _Unsupported
        return quoted.group(1)
    if first in "[{":
        return _Flow(rest).read()
    text = rest.partition(" #")[0].rstrip(" ")
    if not _is_plain(text):
        raise _Unsupported
    return plain(text)


class _Flow:
    """A flow collection written on one line, `[GET, HEAD]`, `{app: web}`, `[{port: 80}]`:
    items are simple plain scalars (no spaces, no `:`) or quoted ones (no escapes), nested at
    most two deep, followed by nothing but a comment. Anything else is the full parser's."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def read(self) -> Any:
        value = self._value(depth=0)
        tail = self.text[self.pos :]
        if tail.strip(" ") and not _COMMENT.fullmatch(tail):
            raise _Unsupported
        return value

    def _token(self) -> tuple[str, str]:
        """(kind, text) of the next token: a bracket or `,`, `:` (before a space), `'`/`"`
        (a quoted scalar, its text unquoted), or `plain`."""
        found = _FLOW_TOKEN.match(self.text, self.pos)
        if found is None:
            raise _Unsupported
        self.pos = found.end()
        punctuation, single, double, plain_text = found.groups()
        if punctuation is not None:
            return punctuation, punctuation
        if single is not None:
            return "'", single.replace("''", "'")
        if double is not None:
            return '"', double
        return "plain", plain_text

    def _value(self, *, depth: int) -> Any:
        kind, text = self._token()
        if kind == "[" and depth < _FLOW_DEPTH:
            return self._sequence(depth=depth + 1)
        if kind == "{" and depth < _FLOW_DEPTH:
            return self._mapping(depth=depth + 1)
        if kind == "plain":
            return plain(text)
        if kind in "'\"":
            return text
        raise _Unsupported

    def _sequence(self, *, depth: int) -> list[Any]:
        items: list[Any] = []
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return items
        while True:
            items.append(self._value(depth=depth))
            kind, _ = self._token()
            if kind == "]":
                return items
            if kind != ",":
                raise _Unsupported

    def _mapping(self, *, depth: int) -> dict[str, Any]:
        pairs: dict[str, Any] = {}
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return pairs
        while True:
            start = self.pos
            kind, key = self._token()
            if kind not in ("plain", "'", '"') or key in pairs or self._token()[0] != ":":
                raise _Unsupported  # not a scalar key, a duplicate key, or no `: `
            if self.pos - start > _MAX_KEY:
                raise _Unsupported  # a key too long for libyaml (counted to its `:`: safe side)
            if key == "<<":
                raise _Unsupported  # a merge key
            pairs[key] = self._value(depth=depth)
            kind, _ = self._token()
            if kind == "}":
                return pairs
            if kind != ",":
                raise _Unsupported


def _is_plain(text: str) -> bool:
    """A one-line plain scalar as it stands (no comment, no surrounding spaces)."""
    if not text or text[-1] in " :" or ": " in text or " #" in text:
        return False
    first = text[0]
    if first == "-":
        return len(text) > 1 and text[1] != " "
    return first not in _INDICATORS


def _read(  # noqa: PLR0912, PLR0915
    rows: list[tuple[str, str, str, str]], *, flow_budget: int
) -> list[BlockDocument]:
    """The stack machine over the rows of one text: one loop, its state in local variables
    (it runs once per line of every manifest)."""
    docs: list[BlockDocument] = []
    index = -1  # of the current document in the stream
    started = False  # the current document has started (by `---` or by content)
    root: Any = None
    root_line = 0
    # Open containers, innermost last: (column, container, is_mapping); the innermost also in
    # `current`.
    stack: list[tuple[int, Any, bool]] = []
    current: Any = None
    # A key or `-` whose value starts on a later line: (container, slot, column, in_mapping).
    pending: tuple[Any, Any, int, bool] | None = None
    # The column at which a `key: ` line goes straight into `current` (a mapping, no value
    # pending): most lines. -1 when there is none.
    keys_at = -1
    # After a scalar, a deeper line would continue it (a multi-line scalar): not read here.
    limit = -1
    special, number_start, hard = SPECIAL_SCALARS, NUMBER_START, _HARD_START
    for line, (indent, dash, written_key, rest) in zip(count(1), rows):
        column = len(indent)
        if column == keys_at and written_key and not dash:
            container = current
        else:
            if not dash and not written_key:
                if not rest or rest[0] == "#":
                    continue  # blank or comment
                if rest != "---" or column:
                    raise _Unsupported  # a scalar on its own line, `...`, a directive, flow...
                if root is not None:
                    docs.append(BlockDocument(root, index, root_line))
                index += 1
                started, root, pending, limit, keys_at = True, None, None, -1, -1
                continue
            if column > limit >= 0:
                raise _Unsupported
            is_dash = dash != ""
            if root is None:  # the document's first line
                if not started:
                    index += 1
                    started = True
                root = container = [] if is_dash else {}
                root_line = line
                stack = [(column, root, not is_dash)]
            elif pending is not None and (
                column > pending[2] or (is_dash and pending[3] and column == pending[2])
            ):
                # The pending value's block; a `-` at its key's own column is an indentless
                # sequence (`key:` and below it `- item`, as kubectl writes).
                container = [] if is_dash else {}
                pending[0][pending[1]] = container
                if len(stack) >= _MAX_STACK:
                    raise _Unsupported  # the full parser reports the depth
                stack.append((column, container, not is_dash))
            else:
                top = stack[-1]
                # Close what this line is not part of: deeper blocks, and a sequence at the
                # line's own column when the line is no `-` (the end of an indentless sequence).
                while top[0] > column or (top[0] == column and not is_dash and not top[2]):
                    stack.pop()
                    if not stack:
                        raise _Unsupported
                    top = stack[-1]
                if top[0] != column or top[2] == is_dash:
                    raise _Unsupported  # misaligned, or a `-` among keys, or a key among `-`
                container = top[1]
            current = container
            keys_at = -1 if is_dash else column
            pending = None
            limit = -1
            if is_dash:
                if not written_key:
                    if not rest or rest[0] == "#":
                        pending = (container, len(container), column, False)
                        container.append(None)
                        continue
                    first = rest[0]
                    if first in hard or rest[-1] in " :" or " #" in rest or ": " in rest:
                        value = _scalar(rest)
                        if first in "[{":
                            flow_budget -= len(rest)
                            if flow_budget < 0:
                                raise _Unsupported  # the full parser counts the values
                    elif first not in number_start:
                        value = special.get(rest, rest)
                    elif rest.isdigit() and rest.isascii() and (first != "0" or len(rest) == 1):
                        value = int(rest)
                    else:
                        value = plain(rest)
                    container.append(value)
                    limit = column
                    continue
                mapping: dict[str, Any] = {}
                container.append(mapping)
                column += len(dash)
                if len(stack) >= _MAX_STACK:
                    raise _Unsupported
                stack.append((column, mapping, True))
                container = current = mapping
                keys_at = column
        # A single-quoted key as PyYAML writes `'80':` or `'true':`, else a plain one.
        key = written_key[1:-1] if written_key[0] == "'" else written_key
        if key in container:
            raise _Unsupported  # a duplicate key: the full parser reports it
        if not rest or rest[0] == "#":
            pending = (container, key, column, True)
            container[key] = None
            limit = keys_at = -1
            continue
        first = rest[0]
        if first in hard or rest[-1] in " :" or " #" in rest or ": " in rest:
            value = _scalar(rest)
            if first in "[{":
                flow_budget -= len(rest)
                if flow_budget < 0:
                    raise _Unsupported
        elif first not in number_start:
            value = special.get(rest, rest)
        elif rest.isdigit() and rest.isascii() and (first != "0" or len(rest) == 1):
            value = int(rest)  # a plain decimal (YAML 1.1 reads `017` as octal: not here)
        else:
            value = plain(rest)
        container[key] = value
        limit = column
    if root is not None:
        docs.append(BlockDocument(root, index, root_line))
    return docs
