"""Kubernetes name rules (DNS-1123) and the small helpers every per-kind checker shares.

Checkers yield `Diagnostic`s with a wire path and no location; `check_resource` locates them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from smi.errors import Diagnostic

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_LABEL = 63
MAX_SUBDOMAIN = 253


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


def check_label(name: str, path: str, *, what: str = "name") -> Iterator[Diagnostic]:
    """A DNS-1123 label: namespaces, Service names."""
    if not is_label(name):
        yield error(
            "SMI2006",
            f"{what} {name!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
            f"starting and ending alphanumeric, at most {MAX_LABEL} characters)",
            path=path,
        )


def check_subdomain(name: str, path: str, *, what: str = "name") -> Iterator[Diagnostic]:
    """A DNS-1123 subdomain: object names, ServiceAccount names, route references."""
    if not is_subdomain(name):
        yield error(
            "SMI2006",
            f"{what} {name!r} is not a DNS-1123 subdomain (lowercase letters, digits, '-' and "
            f"'.', starting and ending alphanumeric, at most {MAX_SUBDOMAIN} characters)",
            path=path,
        )


def duplicates(items: Iterable[str]) -> list[tuple[int, str]]:
    """(index, item) of every item seen before in the sequence."""
    seq = list(items)
    if len(set(seq)) == len(seq):  # the common case, at C speed
        return []
    seen: set[str] = set()
    out: list[tuple[int, str]] = []
    for i, item in enumerate(seq):
        if item in seen:
            out.append((i, item))
        seen.add(item)
    return out
