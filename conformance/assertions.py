"""Observations (what a target saw) and the checks that compare them with a step's `expect`.

Targets report plain values (`Response`, `RequestObservation`, ...); this module alone decides
pass or fail, so every target is judged by the same rules. Each check reads as
"<what>: expected <x>, got <y>", the line a failure report shows.

Backend distributions: with `share`, each listed workload must get its share of the allowed
requests within the absolute `tolerance`; a workload listed with share 0, or not listed at all,
must get nothing (a weight-0 backend receives no traffic, exactly). With `counts`, every count
is exact and unlisted workloads get nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.model import (
    AdmitExpect,
    BackendShares,
    ConnectExpect,
    ConvertExpect,
    Outcome,
    RequestExpect,
)
from conformance.results import Check


@dataclass(frozen=True, slots=True)
class Response:
    """One request's fate: allowed (the destination app answered), denied by policy, or an
    error (`error` says what broke: no endpoint, a reset nobody decided). `status` is None for
    TCP/UDP; `backend` is the workload that answered; `identity` is the caller identity
    (`ns/sa`) that workload saw. `handshake` is why the destination refused the TLS handshake
    of a `connect` step's connection (then nothing was asked, or answered)."""

    allowed: bool
    status: int | None = None
    backend: str | None = None
    identity: str | None = None
    reason: str = ""
    error: str = ""
    handshake: str = ""

    @property
    def denied(self) -> bool:
        return not self.allowed and not self.error and not self.handshake


@dataclass(frozen=True, slots=True)
class RequestObservation:
    responses: tuple[Response, ...]
    would_deny: int | None = None


@dataclass(frozen=True, slots=True)
class AdmitObservation:
    allowed: bool
    code: int | None = None
    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplyObservation:
    allowed: bool
    messages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConvertObservation:
    original: dict[str, Any]
    converted: dict[str, Any] | None = None
    back: dict[str, Any] | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _tally(values: list[Any]) -> str:
    if not values:
        return "nothing"
    return ", ".join(f"{v} x{n}" if n > 1 else str(v) for v, n in Counter(values).most_common())


def _clip(text: str, limit: int = 300) -> str:
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- requests --------------------------------------------------------------------------------


def check_request(
    expect: RequestExpect,
    obs: RequestObservation,
    *,
    count: int,
    seconds: float | None = None,
    unobserved: Mapping[str, str] | None = None,
) -> list[Check]:
    """`seconds`: how long the target took for all `count` requests (for `within`).
    `unobserved`: expectations the target cannot observe (`identity`), with the reason; each
    is reported as a skipped check, never as a passed one."""
    unobserved = unobserved or {}
    rs = obs.responses
    allowed = [r for r in rs if r.allowed]
    checks = [Check("responses", str(count), str(len(rs)), len(rs) == count)]
    errors = [r.error for r in rs if r.error]
    if errors:
        checks.append(Check("errors", "none", _tally(errors), False))
    if expect.status is not None:
        statuses = [r.status for r in rs]
        ok = bool(rs) and all(s == expect.status for s in statuses)
        checks.append(Check("status", f"{expect.status} for every request", _tally(statuses), ok))
    if expect.allowed is not None:
        checks.append(_count("allowed", expect.allowed, len(allowed)))
    if expect.denied is not None:
        checks.append(_count("denied", expect.denied, sum(r.denied for r in rs)))
    if expect.would_deny is not None:
        got = "not reported" if obs.would_deny is None else str(obs.would_deny)
        checks.append(
            Check(
                "would-deny (audit)",
                str(expect.would_deny),
                got,
                obs.would_deny == expect.would_deny,
            )
        )
    if expect.identity is not None and "identity" in unobserved:
        checks.append(
            Check(
                "identity seen by the destination",
                expect.identity,
                "not observed",
                True,
                skipped=unobserved["identity"],
            )
        )
    elif expect.identity is not None:
        seen = [r.identity for r in allowed]
        ok = bool(seen) and all(s == expect.identity for s in seen)
        checks.append(Check("identity seen by the destination", expect.identity, _tally(seen), ok))
    if expect.backends is not None:
        checks.extend(check_backends(expect.backends, [r.backend for r in allowed]))
    if expect.within is not None:
        took = "not measured" if seconds is None else f"{seconds:.2f} s"
        ok = seconds is not None and seconds <= expect.within
        checks.append(Check("answered", f"within {expect.within:g} s", took, ok))
    if expect.reason is not None:
        reasons = [r.reason for r in rs if not r.allowed]
        ok = bool(reasons) and all(re.search(expect.reason, x) for x in reasons)
        checks.append(Check("deny reason", f"/{expect.reason}/", _tally(reasons), ok))
    return checks


def check_connect(
    expect: ConnectExpect,
    obs: RequestObservation,
    *,
    count: int,
    seconds: float | None = None,
    unobserved: Mapping[str, str] | None = None,
) -> list[Check]:
    """A `connect` step: every handshake refused, or accepted and then judged as a request."""
    rs = obs.responses
    fates = _tally([_fate(r) for r in rs])
    if expect.handshake == "refused":
        ok = len(rs) == count and all(r.handshake for r in rs)
        return [
            Check("responses", str(count), str(len(rs)), len(rs) == count),
            Check("TLS handshake", "refused on every connection", fates, ok),
        ]
    checks = []
    if any(r.handshake for r in rs):
        checks.append(Check("TLS handshake", "accepted on every connection", fates, False))
    return checks + check_request(expect, obs, count=count, seconds=seconds, unobserved=unobserved)


def _fate(r: Response) -> str:
    if r.handshake:
        return f"refused ({_clip(r.handshake, 120)})"
    if r.error:
        return f"accepted, then {_clip(r.error, 120)}"
    return f"accepted, HTTP {r.status}" + (" from the app" if r.allowed else "")


def _count(what: str, expected: int, got: int) -> Check:
    return Check(what, str(expected), str(got), expected == got)


def check_backends(spec: BackendShares, backends: list[str | None]) -> list[Check]:
    seen = Counter(b or "(no backend)" for b in backends)
    total = sum(seen.values())
    if spec.counts is not None:
        names = sorted(set(spec.counts) | set(seen))
        return [
            Check(
                f"backend {n} count",
                str(spec.counts.get(n, 0)),
                str(seen.get(n, 0)),
                spec.counts.get(n, 0) == seen.get(n, 0),
            )
            for n in names
        ]
    assert spec.share is not None
    out = []
    for n in sorted(set(spec.share) | set(seen)):
        want = spec.share.get(n, 0.0)
        got = seen.get(n, 0)
        frac = got / total if total else 0.0
        if want == 0.0:
            out.append(
                Check(f"backend {n} share", "no requests at all", f"{got} of {total}", got == 0)
            )
            continue
        ok = total > 0 and abs(frac - want) <= spec.tolerance
        out.append(
            Check(
                f"backend {n} share",
                f"{want:.3f} +/- {spec.tolerance:g}",
                f"{frac:.3f} ({got} of {total})",
                ok,
            )
        )
    return out


# --- admission, apply, conversion --------------------------------------------------------------


def check_admit(expect: AdmitExpect, obs: AdmitObservation) -> list[Check]:
    verdict = "allowed" if obs.allowed else "denied"
    text = "\n".join(obs.messages)
    checks = [
        Check(
            "admission",
            "allowed" if expect.allowed else "denied",
            f"{verdict}: {_clip(text)}" if text else verdict,
            obs.allowed == expect.allowed,
        )
    ]
    if expect.code is not None:
        checks.append(Check("HTTP code", str(expect.code), str(obs.code), obs.code == expect.code))
    if expect.message is not None:
        checks.append(
            Check(
                "message",
                f"/{expect.message}/",
                _clip(text) or "no message",
                re.search(expect.message, text) is not None,
            )
        )
    warnings = "\n".join(obs.warnings)
    if expect.warning is not None:
        checks.append(
            Check(
                "warning",
                f"/{expect.warning}/",
                _clip(warnings) or "no warning",
                re.search(expect.warning, warnings) is not None,
            )
        )
    if expect.no_warnings:
        checks.append(Check("warnings", "none", _clip(warnings) or "none", not obs.warnings))
    return checks


def check_apply(expect: Outcome, obs: ApplyObservation, *, verb: str) -> list[Check]:
    text = "\n".join(obs.messages)
    got = "accepted" if obs.allowed else f"refused: {_clip(text)}"
    checks = [
        Check(verb, "accepted" if expect.allowed else "refused", got, obs.allowed == expect.allowed)
    ]
    if expect.message is not None:
        checks.append(
            Check(
                "message",
                f"/{expect.message}/",
                _clip(text) or "no message",
                re.search(expect.message, text) is not None,
            )
        )
    return checks


def check_convert(expect: ConvertExpect, obs: ConvertObservation) -> list[Check]:
    if expect.error is not None:
        ok = bool(obs.error) and re.search(expect.error, obs.error) is not None
        got = f"error: {_clip(obs.error)}" if obs.error else "converted without error"
        return [Check("conversion", f"an error matching /{expect.error}/", got, ok)]
    if obs.error or obs.converted is None:
        return [Check("conversion", "success", f"error: {_clip(obs.error)}", False)]
    checks = [Check("conversion", "success", "success", True)]
    if expect.contains is not None:
        missing = subset_diff(expect.contains, obs.converted)
        checks.append(
            Check(
                "converted object",
                "contains " + _clip(str(expect.contains), 200),
                "; ".join(missing[:5]) if missing else "as expected",
                not missing,
            )
        )
    if expect.round_trip:
        if obs.back is None:
            checks.append(Check("round trip", "the original object", "no object back", False))
        else:
            diffs = diff(obs.original, obs.back)
            checks.append(
                Check(
                    "round trip",
                    "the original object",
                    "; ".join(diffs[:5]) if diffs else "the original object",
                    not diffs,
                )
            )
    return checks


def subset_diff(want: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` fails to contain `want` (maps: listed keys; lists: item by item)."""
    here = path or "(root)"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{here}: expected a map, got {_short(got)}"]
        out: list[str] = []
        for k, v in want.items():
            sub = f"{path}.{k}" if path else str(k)
            if k not in got:
                out.append(f"{sub}: missing")
            else:
                out.extend(subset_diff(v, got[k], sub))
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) < len(want):
            return [f"{here}: expected a list of at least {len(want)}, got {_short(got)}"]
        return [d for i, w in enumerate(want) for d in subset_diff(w, got[i], f"{path}[{i}]")]
    return [] if want == got else [f"{here}: expected {_short(want)}, got {_short(got)}"]


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Every path where `b` differs from `a` (a is the expected value)."""
    here = path or "(root)"
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in b:
                out.append(f"{sub}: lost (was {_short(a[k])})")
            elif k not in a:
                out.append(f"{sub}: added ({_short(b[k])})")
            else:
                out.extend(diff(a[k], b[k], sub))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b and type(a) is type(b) else [f"{here}: {_short(a)} became {_short(b)}"]


def _short(v: Any) -> str:
    return _clip(repr(v), 80)
