"""Text from a scenario's author or from the mesh under test (names, descriptions, step titles,
regexes, deny reasons, app answers), made safe to show on a terminal and in Markdown.

Such text may hold anything: an escape sequence that recolours or clears the terminal, a
carriage return that overwrites the line before it, a newline that forges a `PASS` line, a
`<script>` that a Markdown renderer passes through as HTML. The HTML report escapes markup and
the JUnit report control characters; these helpers do the same for the other two outputs.
"""

from __future__ import annotations

import re


def visible(text: str) -> str:
    """`text` with every character that is not printable (controls, line breaks, tabs, bidi
    overrides, lone surrogates) shown as its escape, `\\x1b` or `\\u202e`."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


# Characters that start inline Markdown (emphasis, code, links, raw HTML, entities, table
# cells, strikethrough); a backslash makes each literal.
_INLINE = re.compile(r"[\\`*_\[\]<>|&~]")
# What would make the text a heading, list item, rule or setext underline at a line's start.
_BLOCK_MARK = re.compile(r"^[#+=-]")
_ORDERED = re.compile(r"^(\d+)([.)])")


def md_text(text: str) -> str:
    """`text` as literal Markdown prose or a table cell: one line, nothing it says is markup."""
    escaped = _INLINE.sub(lambda m: "\\" + m.group(), visible(text).strip())
    escaped = _BLOCK_MARK.sub(lambda m: "\\" + m.group(), escaped)
    return _ORDERED.sub(lambda m: f"{m[1]}\\{m[2]}", escaped)


def md_code(text: str, *, in_table: bool = False) -> str:
    """`text` as one inline code span: markup inside it is literal, so only a backtick (the
    fence grows past the longest run in it) and, in a table, `|` need care."""
    body = visible(text)
    if in_table:
        body = body.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if not body or body[0] == "`" or body[-1] == "`" else ""
    return f"{fence}{pad}{body}{pad}{fence}"
