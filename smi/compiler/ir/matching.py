"""RE2 matchers for HTTP matches: the only place smictl compiles route regexes.

Regexes come from users and are matched against attacker-controlled paths and headers, so they
run on RE2 (pyre2), whose matching time is linear in the input. pyre2 silently falls back to
Python `re` for patterns RE2 cannot run (back-references, look-arounds) — which would bring
back exponential backtracking — so this module turns that fallback into an exception at import.

Semantics (DESIGN.md §3): within one match, method AND path AND every header; `pathRegex` is
matched against the path without its query string, anchored at the start only; header values
must match the whole value; a header named by a match but absent from the request fails it.

Paths are matched in normalised form (`request_path`): dot segments removed (also written
`%2e`), runs of `/` merged. Otherwise `/public/../admin` would pass a rule for `/public/.*`
and reach `/admin` once the application resolves it. Normalising can only turn an allow into
a deny for an application that takes such paths literally, never the reverse. Applications
that read a path less literally (decoding `%2F`, dropping `;` parameters, keeping `#`) are
covered by `path_readings`, which `authorize` checks as well.

Headers are matched as the proxy reads them (`request_headers`), so that `smictl explain` and
the Data API, whose headers never passed an HTTP parser, answer what the proxy enforces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import re2

from smi.compiler.ir.model import HttpMatch
from smi.re2syntax import re2_source
from smi.regexcost import cost_problem

re2.set_fallback_notification(re2.FALLBACK_EXCEPTION)

# Regexes that match every path: skipping them saves a regex call per request.
_MATCH_ALL_PATHS = frozenset({".*", "^.*", ".*$", "^.*$", "/?.*", "(.*)"})

# RE2 metacharacters: a pattern without any of them matches only its own text.
_META = frozenset(".^$*+?{}[]\\|()")
_QUANTIFIERS = frozenset("*+?{")

_RE2_ERRORS = (re2.error, re2.BackreferencesException, re2.CharClassProblemException, ValueError)


class RegexError(ValueError):
    """A regex is not valid RE2 syntax (for example a back-reference or a look-around), or is
    too costly to match (SMI2209)."""


def compile_regex(pattern: str) -> re2.Pattern:
    """Compile one RE2 regex, or raise `RegexError` with RE2's reason, or with the cost when
    its program is too large to step through for every byte of a hostile request
    (`smi.regexcost`): a hand-written MeshPolicy gets the same bound as admission."""
    try:
        compiled = re2.compile(re2_source(pattern))
    except _RE2_ERRORS as exc:
        raise RegexError(f"{pattern!r} is not an RE2 regex: {exc}") from exc
    costly = cost_problem(pattern)
    if costly is not None:
        raise RegexError(f"{pattern!r} is too costly to match: {costly}")
    return compiled


def is_literal(pattern: str) -> bool:
    """True when the pattern has no metacharacter, so it matches exactly its own text."""
    return not any(ch in _META for ch in pattern)


def literal_prefix(pattern: str) -> tuple[str, bool]:
    """(a prefix every path the pattern matches starts with, whether the pattern is only that
    prefix). Lets a matcher reject most paths with `startswith` and skip RE2 entirely for
    literal patterns such as `/metrics`; a quantified last character is left out of the
    prefix, and an alternation anywhere gives no prefix."""
    if "|" in pattern:
        return "", False
    body = pattern[1:] if pattern.startswith("^") else pattern
    for i, ch in enumerate(body):
        if ch in _META:
            end = i - 1 if ch in _QUANTIFIERS else i
            return body[: max(end, 0)], False
    return body, True


def check_regex(pattern: str) -> str | None:
    """The reason `pattern` is not RE2, or None when it compiles."""
    try:
        compile_regex(pattern)
    except RegexError as exc:
        return str(exc)
    return None


def strip_query(path: str) -> str:
    """The request path without its query string (and fragment, which clients never send)."""
    if "?" in path:
        path = path.partition("?")[0]
    if "#" in path:
        path = path.partition("#")[0]
    return path


def request_path(raw: str) -> str:
    """The path a match sees: no query, no dot segments, no empty segments (see above)."""
    path = strip_query(raw)
    if "%2" in path:
        path = path.replace("%2e", ".").replace("%2E", ".")
    if "/." not in path and "//" not in path:
        return path
    parts = path.split("/")
    last = len(parts) - 1
    out: list[str] = []
    for i, segment in enumerate(parts):
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment == "." or (segment == "" and 0 < i < last):
            continue
        else:
            out.append(segment)
    if parts[-1] in (".", ".."):
        out.append("")  # "/a/b/.." is the directory "/a/"
    return "/".join(out) or "/"


# Header names are tokens (ASCII): lower-casing only ASCII, as `bytes.lower` does in the proxy,
# keeps a name that is not one (`Ä`) from meeting another spelling here but not there.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def request_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The header map a match sees for the (name, value) field lines of a request, in the order
    sent. Names are lower-cased; a value loses its leading and trailing SP and HTAB, which are
    not part of a field value (RFC 9110 §5.5); a repeated name's values are joined with `,`
    (RFC 9110 §5.3), so `X-Team: red` then `X-Team: blue` is `red,blue`, which a match for
    `blue|green` does not accept. Anything answering for the proxy (`smictl explain`, the Data
    API) reads headers here: the proxy's compiled `proxy.exchange.Headers` reads the bytes of
    the same request the same way (httptools has already dropped the leading whitespace), and
    a second reading would let a verdict differ from what the proxy enforces."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.translate(_ASCII_LOWER)
        text = value.strip(" \t")
        out[key] = f"{out[key]},{text}" if key in out else text
    return out


# How the path may reach a resource other than the one `request_path` names, in an application
# that reads it less literally (see `path_readings`).
_AMBIGUOUS = ("%", "\\", ";", "#", "//")
_ESCAPED_SLASHES = ("%2f", "%2F", "%5c", "%5C", "\\")


def path_readings(raw: str) -> tuple[str, ...]:
    """Other paths an application may act on for the request target `raw`, normalised; empty
    for the usual path. A request is allowed only if its `request_path` and each of these is:
    otherwise `/public/..%2fadmin` passes a rule for `/public/.*` and reaches `/admin` in an
    application that decodes `%2F` (or `\\`, or `%5C`) before it resolves dot segments, as
    `/public/..;/admin` does in one that drops path parameters (Tomcat), `/public/x#/../../admin`
    in one that keeps `#` in the path (Go), and `/admin//..` (`/admin/` to RFC 3986, `/` once
    slashes are merged first) in one that does not merge slashes. The readings: with and
    without those separators decoded, dot segments resolved after and before merging slashes,
    `;` parameters dropped from dot segments, and `#` taken as part of the path."""
    path = raw.partition("?")[0]
    if not any(mark in path for mark in _AMBIGUOUS):
        return ()
    if "%2" in path:
        path = path.replace("%2e", ".").replace("%2E", ".")
    decoded = path
    for escaped in _ESCAPED_SLASHES:
        decoded = decoded.replace(escaped, "/")
    readings = {_resolve(p, merge_first=m) for p in (path, decoded) for m in (True, False)}
    return tuple(sorted(readings))


def _resolve(path: str, *, merge_first: bool) -> str:
    """`path` with dot segments (also `..;param`) removed, and runs of `/` merged before that
    (`merge_first`) or after it (RFC 3986 §5.2.4, where an empty segment is a segment)."""
    parts = path.split("/")
    last = len(parts) - 1
    out: list[str] = []
    segment = ""
    for i, part in enumerate(parts):
        cut = part.find(";")
        segment = part[:cut] if cut >= 0 and part[:cut] in (".", "..") else part
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment == "." or (merge_first and segment == "" and 0 < i < last):
            continue
        else:
            out.append(segment)
    if segment in (".", ".."):
        out.append("")
    resolved = "/".join(out) or "/"
    while "//" in resolved:
        resolved = resolved.replace("//", "/")
    return resolved


class RegexCache:
    """Compiles each distinct regex once per index build; thousands of rules usually share a
    handful of patterns."""

    __slots__ = ("_compiled", "errors")

    def __init__(self) -> None:
        self._compiled: dict[str, re2.Pattern] = {}
        self.errors: dict[str, str] = {}

    def problem(self, pattern: str) -> str | None:
        """Why `pattern` is not RE2, or None when it is (literals need no compiling)."""
        if is_literal(pattern) or self.get(pattern) is not None:
            return None
        return self.errors[pattern]

    def get(self, pattern: str) -> re2.Pattern | None:
        """The compiled regex, or None (and the reason in `errors`) if it is not RE2."""
        compiled = self._compiled.get(pattern)
        if compiled is not None or pattern in self.errors:
            return compiled
        try:
            compiled = compile_regex(pattern)
        except RegexError as exc:
            self.errors[pattern] = str(exc)
            return None
        self._compiled[pattern] = compiled
        return compiled


class HttpMatcher:
    """One `HttpMatch`, compiled. A match whose regex is not RE2 never matches (fail closed):
    the compiler drops such matches, so this only guards hand-written MeshPolicy documents.

    Header conditions are (name, regex text, compiled regex or None for a literal value,
    compared with ==); the path condition is a literal prefix plus, unless the pattern is
    only that literal, the compiled regex."""

    __slots__ = ("any_method", "broken", "headers", "match", "methods", "path", "prefix")

    def __init__(self, match: HttpMatch, cache: RegexCache) -> None:
        self.match = match
        self.methods = frozenset(match.methods)
        self.any_method = not self.methods or "*" in self.methods
        self.broken = False
        self.path: re2.Pattern | None = None
        self.prefix = ""
        regex = match.path_regex
        if regex is not None and regex not in _MATCH_ALL_PATHS:
            self.prefix, literal = literal_prefix(regex)
            if not literal:
                self.path = cache.get(regex)
                self.broken = self.path is None
        headers: list[tuple[str, str, re2.Pattern | None]] = []
        for name, value in match.headers:
            pattern = None if is_literal(value) else cache.get(value)
            self.broken = self.broken or (pattern is None and not is_literal(value))
            headers.append((name.lower(), value, pattern))
        self.headers: tuple[tuple[str, str, re2.Pattern | None], ...] = tuple(headers)

    @property
    def origin(self) -> str:
        return self.match.origin

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        """`path` must already be normalised (see `request_path`). Cheap checks (method,
        path prefix, header presence) run before any regex."""
        if (
            self.broken
            or not (self.any_method or method in self.methods)
            or not path.startswith(self.prefix)
        ):
            return False
        for name, _, _ in self.headers:
            if name not in headers:
                return False
        if self.path is not None and self.path.match(path) is None:
            return False
        for name, text, pattern in self.headers:
            value = headers[name]
            if value != text if pattern is None else pattern.fullmatch(value) is None:
                return False
        return True

    def failures(self, method: str, path: str, headers: Mapping[str, str]) -> list[str]:
        """Which conditions of this match the request fails, for explanations (not the hot
        path): e.g. ["method GET", "path /books"]."""
        out: list[str] = []
        if self.broken:
            out.append("regex is not RE2")
        if not self.any_method and method not in self.methods:
            out.append("method " + "|".join(sorted(self.methods)))
        if not path.startswith(self.prefix) or (
            self.path is not None and self.path.match(path) is None
        ):
            out.append(f"path {self.match.path_regex}")
        for name, text, pattern in self.headers:
            value = headers.get(name)
            if value is None or (
                value != text if pattern is None else not pattern.fullmatch(value)
            ):
                out.append(f"header {name}: {text}")
        return out


def compile_matches(matches: tuple[HttpMatch, ...], cache: RegexCache) -> tuple[HttpMatcher, ...]:
    return tuple(HttpMatcher(m, cache) for m in matches)


def any_matches(
    matchers: tuple[HttpMatcher, ...], method: str, path: str, headers: Mapping[str, str]
) -> HttpMatcher | None:
    """The first matcher the request satisfies (OR across matches), or None."""
    for matcher in matchers:
        if matcher.matches(method, path, headers):
            return matcher
    return None
