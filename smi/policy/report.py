"""`smictl admit` reports: text, JSON, JUnit XML, SARIF 2.1.0 and GitHub workflow annotations.

One `AdmitReport` (the admission results of every object plus what could not be loaded) is
rendered by one function per format. Every problem keeps its file and line, so that a CI
system can point at the spot: SARIF as `physicalLocation.region.startLine`, GitHub as
`::error file=...,line=...::`, JUnit as the testcase's `file` and `line` attributes.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from smi import __version__
from smi.codes import lookup
from smi.errors import Diagnostic, json_safe
from smi.policy.admission import AdmissionResult
from smi.policy.modules import PolicyInfo

FORMATS = ("text", "json", "junit", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://smi-spec.io"

# XML 1.0 forbids these even as character references: a JUnit report that holds one is not
# well-formed. Control characters become visible escapes, as in the one-line text form (`\x01`).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    """`text` without lone surrogates (file names that are not UTF-8): U+FFFD instead."""
    return str(json_safe(text))


def dumps(doc: Any) -> str:
    """Strict JSON (no lone surrogates, no NaN) for the machine-readable outputs."""
    return json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n"


def _xml(text: str) -> str:
    def escape(m: re.Match[str]) -> str:
        c = m.group()
        return "\ufffd" if "\ud800" <= c <= "\udfff" else repr(c)[1:-1]

    return _XML_ILLEGAL.sub(escape, text)


@dataclass(frozen=True)
class AdmitReport:
    results: tuple[AdmissionResult, ...]
    load_diagnostics: tuple[Diagnostic, ...] = ()
    policies: tuple[PolicyInfo, ...] = ()

    def count(self, verdict: str) -> int:
        return sum(1 for r in self.results if r.verdict == verdict)

    @property
    def load_errors(self) -> list[Diagnostic]:
        return [d for d in self.load_diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.load_errors and all(r.allowed for r in self.results)

    def diagnostics(self) -> Iterator[Diagnostic]:
        """Every problem and warning, load problems first, then object by object."""
        yield from self.load_diagnostics
        for r in self.results:
            yield from r.diagnostics

    def summary(self) -> dict[str, int]:
        every = list(self.diagnostics())
        return {
            "objects": len(self.results),
            "allowed": self.count("allowed"),
            "denied": self.count("denied"),
            "invalid": self.count("invalid"),
            "load_errors": len(self.load_errors),
            "warnings": sum(1 for d in every if not d.is_error),
            "policies": len(self.policies),
        }

    def summary_line(self) -> str:
        s = self.summary()
        parts = [f"{s['allowed']} allowed", f"{s['denied']} denied", f"{s['invalid']} invalid"]
        if s["load_errors"]:
            parts.append(f"{s['load_errors']} load errors")
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"smictl admit: {verdict}: {s['objects']} objects ({', '.join(parts)}), "
            f"{s['warnings']} warnings, {s['policies']} policies"
        )


def render(report: AdmitReport, fmt: str, *, quiet: bool = False) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "junit":
        return render_junit(report)
    if fmt == "sarif":
        return render_sarif(report)
    if fmt == "github":
        return render_github(report, quiet=quiet)
    return render_text(report, quiet=quiet)


def render_text(report: AdmitReport, *, quiet: bool = False) -> str:
    lines = [d.format() for d in report.diagnostics() if d.is_error or not quiet]
    return "\n".join(lines) + ("\n" if lines else "")


def render_json(report: AdmitReport) -> str:
    doc = {
        "ok": report.ok,
        "summary": report.summary(),
        "load": [d.to_json() for d in report.load_diagnostics],
        "results": [r.to_json() for r in report.results],
        "policies": [p.to_json() for p in report.policies],
    }
    return dumps(doc)


def _case_name(r: AdmissionResult) -> str:
    kind, _, rest = r.object_ref.partition("/")
    return f"{kind} {rest}" if rest else r.object_ref or "<object>"


def render_junit(report: AdmitReport) -> str:
    """One testcase per object and one per file that could not be loaded; `tests` counts both,
    so that `failures` (refused objects plus load errors) never exceeds it."""
    s = report.summary()
    tests = s["objects"] + s["load_errors"]
    failures = s["denied"] + s["invalid"] + s["load_errors"]
    counts = {"tests": str(tests), "failures": str(failures), "errors": "0"}
    suites = ET.Element("testsuites", {"name": "smictl admit", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "smictl admit", **counts, "skipped": "0"})
    for d in report.load_errors:
        # (No `line` where none is known: 0 is no line, and JUnit readers show it as one.)
        where = {"file": d.file or ""} | ({"line": str(d.line)} if d.line is not None else {})
        case = _element(suite, "testcase", classname=d.file or "<input>", name="load", **where)
        _element(case, "failure", d.format(), type="load", message=d.message)
    for r in report.results:
        attrs = {"classname": r.source.file if r.source else "<request>", "name": _case_name(r)}
        if r.source is not None:
            attrs["file"] = r.source.file
            if r.source.line is not None:
                attrs["line"] = str(r.source.line)
        case = _element(suite, "testcase", **attrs)
        if not r.allowed:
            body = "\n".join(d.format() for d in r.diagnostics if d.is_error)
            message = r.messages[0] if r.messages else r.verdict
            _element(case, "failure", body, type=r.verdict, message=message)
        if r.warnings:
            _element(case, "system-out", "\n".join(r.warnings))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """A child element whose attributes and text hold only characters XML 1.0 allows."""
    element = ET.SubElement(parent, tag, {k: _xml(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _xml(text)
    return element


def _uri(file: str | None) -> str:
    """An absolute path as a `file:` URI, any other name as a relative URI reference: the
    file name's bytes percent-encoded (spaces, `%`, `#`, `:` and non-ASCII included), so that
    `a b.yaml` is not an invalid URI and `c:x.yaml` is not read as the scheme `c`."""
    p = Path(file or "<input>")
    if p.is_absolute():
        return p.as_uri()
    try:
        raw = p.as_posix().encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file name's bytes decode to
        raw = _clean(p.as_posix()).encode("utf-8")
    return quote(raw, safe="/")


def _rule(code: str, policies: Sequence[PolicyInfo]) -> dict[str, Any]:
    known = lookup(code)
    if known is not None:
        return {
            "id": code,
            "name": known.title,
            "shortDescription": {"text": known.title},
            "fullDescription": {"text": known.explanation},
            "help": {"text": known.fix},
        }
    policy = next((p for p in policies if p.code == code), None)
    title = policy.title if policy else code
    return {
        "id": code,
        "name": title,
        "shortDescription": {"text": title},
        "fullDescription": {"text": (policy.description if policy else "") or title},
    }


def render_sarif(report: AdmitReport) -> str:
    every = list(report.diagnostics())
    codes = sorted({d.code for d in every})
    index = {c: i for i, c in enumerate(codes)}
    results = [
        {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": "error" if d.is_error else "warning",
            "message": {"text": _sarif_text(d)},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(d.file)},
                        "region": {"startLine": max(d.line or 1, 1)},
                    }
                }
            ],
        }
        for d in every
    ]
    run = {
        "tool": {
            "driver": {
                "name": "smictl",
                "version": __version__,
                "informationUri": INFO_URI,
                "rules": [_rule(c, report.policies) for c in codes],
            }
        },
        "results": results,
    }
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return dumps(doc)


def _sarif_text(d: Diagnostic) -> str:
    """SARIF needs a non-empty `message.text`."""
    text = f"{d.path}: {d.message}" if d.path else d.message
    return text if text.strip() else d.code


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: AdmitReport, *, quiet: bool = False) -> str:
    """GitHub Actions workflow commands: one annotation per problem, on its file and line."""
    lines = []
    for d in report.diagnostics():
        if quiet and not d.is_error:
            continue
        level = "error" if d.is_error else "warning"
        props = [f"file={_escape_property(_clean(d.file or '<input>'))}"]
        if d.line is not None:
            props.append(f"line={d.line}")
        props.append(f"title={_escape_property(d.code)}")
        text = f"{d.path}: {d.message}" if d.path else d.message
        lines.append(f"::{level} {','.join(props)}::{_escape_data(_clean(text))}")
    return "\n".join(lines) + ("\n" if lines else "")
