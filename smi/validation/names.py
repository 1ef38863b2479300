"""Kubernetes name rules (DNS-1123) and the small helpers every per-kind checker shares.

Checkers return `Diagnostic`s with a wire path and no location; `check_resource` locates them.
They run for every object of a set, and almost always find nothing: the `check_*` helpers
return a tuple (empty when the name is fine) rather than a generator, which costs more to
create than the check itself.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from functools import lru_cache
from typing import TypeVar

from smi.errors import Diagnostic
from smi.identity import DNS_LABEL, DNS_SUBDOMAIN, MAX_LABEL, MAX_SUBDOMAIN

_LABEL = re.compile(DNS_LABEL)
_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)
# RFC 9110 §5.6.2 `token` (one or more tchar): what an HTTP method and a header name are made
# of. One definition for the SMI2207 check and for `explain --method/--header`.
HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

K = TypeVar("K", bound=Hashable)


def error(code: str, message: str, *, path: str) -> Diagnostic:
    return Diagnostic(code=code, message=message, path=path)


def warning(code: str, message: str, *, path: str) -> Diagnostic:
    return Diagnostic(code=code, message=message, path=path, severity="warning")


def show(text: str) -> str:
    """A user's value quoted as they wrote it: regexes read badly with repr's doubled
    backslashes. Falls back to repr for control characters."""
    return f"'{text}'" if text.isprintable() and "'" not in text else repr(text)


@lru_cache(maxsize=16384)  # namespaces and Service names repeat across a set
def is_label(name: str) -> bool:
    return len(name) <= MAX_LABEL and _LABEL.fullmatch(name) is not None


@lru_cache(maxsize=16384)
def is_subdomain(name: str) -> bool:
    return len(name) <= MAX_SUBDOMAIN and _SUBDOMAIN.fullmatch(name) is not None


def check_label(name: str, path: str, *, what: str = "name") -> tuple[Diagnostic, ...]:
    """A DNS-1123 label: namespaces, Service names."""
    if is_label(name):
        return ()
    return (
        error(
            "SMI2006",
            f"{what} {name!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
            f"starting and ending alphanumeric, at most {MAX_LABEL} characters)",
            path=path,
        ),
    )


def check_subdomain(name: str, path: str, *, what: str = "name") -> tuple[Diagnostic, ...]:
    """A DNS-1123 subdomain: object names, ServiceAccount names, route references."""
    if is_subdomain(name):
        return ()
    return (
        error(
            "SMI2006",
            f"{what} {name!r} is not a DNS-1123 subdomain (lowercase letters, digits, '-' and "
            f"'.', starting and ending alphanumeric, at most {MAX_SUBDOMAIN} characters)",
            path=path,
        ),
    )


def duplicates(items: Iterable[K]) -> list[tuple[int, K]]:
    """(index, item) of every item seen before in the sequence."""
    seq = list(items)
    if len(seq) < 2 or len(set(seq)) == len(seq):  # the common cases, at C speed
        return []
    seen: set[K] = set()
    out: list[tuple[int, K]] = []
    for i, item in enumerate(seq):
        if item in seen:
            out.append((i, item))
        seen.add(item)
    return out
