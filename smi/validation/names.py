"""Kubernetes name rules (DNS-1123) and the small helpers every per-kind checker shares.

Checkers return `Diagnostic`s with a wire path and no location; `check_resource` locates them.
They run for every object of a set, and almost always find nothing: the `check_*` helpers
return a tuple (empty when the name is fine) rather than a generator, which costs more to
create than the check itself.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, TypeVar

from smi.errors import Diagnostic
from smi.identity import DNS_LABEL, DNS_SUBDOMAIN, MAX_LABEL, MAX_SUBDOMAIN
from smi.yamlpos import join_path

_LABEL = re.compile(DNS_LABEL)
_SUBDOMAIN = re.compile(DNS_SUBDOMAIN)
# RFC 9110 §5.6.2 `token` (one or more tchar): what an HTTP method and a header name are made
# of. One definition for the SMI2207 check and for `explain --method/--header`.
HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# The name part of a Kubernetes qualified name (label and annotation keys, finalizers, after an
# optional DNS-1123 subdomain and '/'), and all of a label value (which may also be empty).
_QUALIFIED = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
MAX_QUALIFIED = 63
QUALIFIED_RULE = (
    "an optional DNS-1123 subdomain and '/', then at most 63 letters, digits, '-', '_' and "
    "'.', starting and ending alphanumeric"
)
LABEL_VALUE_RULE = (
    "at most 63 letters, digits, '-', '_' and '.', starting and ending alphanumeric, or empty"
)

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


@lru_cache(maxsize=16384)  # the same label keys recur on every object of a set
def is_qualified_name(text: str) -> bool:
    """Kubernetes' qualified name, as the API server checks label keys and finalizers."""
    prefix, slash, name = text.rpartition("/")
    if slash and not is_subdomain(prefix):
        return False
    return len(name) <= MAX_QUALIFIED and _QUALIFIED.fullmatch(name) is not None


@lru_cache(maxsize=16384)
def is_label_value(text: str) -> bool:
    return not text or (len(text) <= MAX_QUALIFIED and _QUALIFIED.fullmatch(text) is not None)


def check_metadata(meta: Any) -> list[Diagnostic]:
    """Label keys and values, annotation keys and finalizers the API server would refuse
    (SMI2006). Their types were checked on loading; values of another type are left alone."""
    if not isinstance(meta, Mapping) or not meta.keys() & {"labels", "annotations", "finalizers"}:
        return []
    found = [*_map_problems(meta, "labels"), *_map_problems(meta, "annotations")]
    finalizers = meta.get("finalizers")
    for i, name in enumerate(finalizers if isinstance(finalizers, list) else ()):
        if isinstance(name, str) and not is_qualified_name(name):
            found.append(
                (
                    f"metadata.finalizers[{i}]",
                    f"finalizer {name!r} is not a qualified name ({QUALIFIED_RULE})",
                )
            )
    return [error("SMI2006", message, path=path) for path, message in found]


def _map_problems(meta: Mapping[str, Any], field: str) -> Iterator[tuple[str, str]]:
    entries = meta.get(field)
    if not isinstance(entries, Mapping):
        return
    what = field[:-1]
    labels = field == "labels"
    for key, value in entries.items():
        # The API server reads annotation keys lowercased (a prefix may be `Example.com/`).
        if not is_qualified_name(key if labels else key.lower()):
            yield (
                join_path(f"metadata.{field}", key),
                f"{what} key {key!r} is not a qualified name ({QUALIFIED_RULE})",
            )
        if labels and isinstance(value, str) and not is_label_value(value):
            yield (
                join_path(f"metadata.{field}", key),
                f"label value {value!r} is not valid ({LABEL_VALUE_RULE})",
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
