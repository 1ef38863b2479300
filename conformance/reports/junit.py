"""JUnit XML: one <testsuite> per target and area, one <testcase> per scenario. A failed
scenario's <failure> message names the first failed step; its body lists every failed step
with what was expected and what happened. Skips carry their reasons."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from itertools import groupby

from conformance.results import RunResult, ScenarioResult


def render_junit(run: RunResult) -> str:
    root = ET.Element("testsuites", name="smictl conformance")
    _totals(root, run.results, seconds=run.seconds)
    for target, err in run.target_errors.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{target}",
            tests="1",
            failures="0",
            errors="1",
            skipped="0",
            time="0",
        )
        case = ET.SubElement(suite, "testcase", classname=target, name="(target start-up)")
        ET.SubElement(case, "error", message=err, type="TargetError").text = err
    ordered = sorted(run.results, key=lambda r: (r.target, r.area, r.scenario))
    for (target, area), group in groupby(ordered, key=lambda r: (r.target, r.area)):
        results = list(group)
        suite = ET.SubElement(root, "testsuite", name=f"{target}.{area}")
        _totals(suite, results, seconds=sum(r.seconds for r in results))
        for r in results:
            _case(suite, r)
    _xml_safe_tree(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# Characters XML 1.0 cannot hold even escaped: C0 controls other than tab, LF and CR, lone
# surrogates, U+FFFE/U+FFFF. ElementTree writes them as they are, and every JUnit reader then
# rejects the whole file.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` with every character XML cannot hold shown as `\\xNN` / `\\uNNNN`. Step titles,
    deny reasons and app answers come from the mesh under test and may hold anything."""
    return _NOT_XML.sub(lambda m: ascii(m.group())[1:-1], text)


def _xml_safe_tree(root: ET.Element) -> None:
    for elem in root.iter():
        if elem.text:
            elem.text = xml_safe(elem.text)
        for key, value in list(elem.attrib.items()):
            elem.set(key, xml_safe(value))


def _totals(elem: ET.Element, results: list[ScenarioResult], *, seconds: float) -> None:
    elem.set("tests", str(len(results)))
    elem.set("failures", str(sum(r.status == "failed" for r in results)))
    elem.set("errors", str(sum(r.status == "error" for r in results)))
    elem.set("skipped", str(sum(r.status == "skipped" for r in results)))
    elem.set("time", f"{seconds:.3f}")


def _case(suite: ET.Element, r: ScenarioResult) -> None:
    name = r.scenario.split("/", 1)[-1]
    case = ET.SubElement(
        suite, "testcase", classname=f"{r.target}.{r.area}", name=name, time=f"{r.seconds:.3f}"
    )
    if r.status in ("failed", "error"):
        first = next((s for s in r.steps if s.status in ("failed", "error")), None)
        if first is None:
            message = r.error
        else:
            bad = first.failures[0] if first.failures else None
            detail = f"{bad.what}: expected {bad.expected}, got {bad.got}" if bad else first.reason
            message = f"step {first.number} ({first.kind}) {first.title}: {detail}"
        tag = "error" if r.status == "error" else "failure"
        ET.SubElement(case, tag, message=message, type=r.status).text = r.failure_text()
    elif r.status == "skipped":
        ET.SubElement(case, "skipped", message="; ".join(r.skip_reasons))
    lines = [f"{r.description}", f"SMI: {', '.join(r.smi_versions)}"]
    lines += [
        f"step {s.number} [{s.status}] {s.kind}: {s.title}" + (f" ({s.reason})" if s.reason else "")
        for s in r.steps
    ]
    ET.SubElement(case, "system-out").text = "\n".join(lines)
