"""Scan results as a grouped table, JSON, SARIF 2.1.0 or JUnit XML."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, TextIO

from controller.scan.core import ObjectResult, ScanResult
from controller.term import BOLD, COLOURS, RESET, notice_footer
from policy.judge import Finding

__all__ = ["FORMATS", "render"]

VERDICT_ORDER = ("unsupported", "unknown", "invalid", "outdated", "expiring", "supported", "exempt", "not-dlc")
SARIF_LEVEL = {"unsupported": "error", "invalid": "error", "unknown": "warning", "outdated": "warning"}
DOCS_URL = "https://github.com/dlc-guard/dlc-guard#verdicts-and-reason-codes"


def _label(f: Finding) -> str:
    return "exempt" if f.exempt and f.result.dlc else f.result.verdict


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def container_label(o: ObjectResult, f: Finding) -> str:
    """The container's name, with where it sits when the object has several of that name
    (a PyTorchJob's Master and Worker both call theirs ``pytorch``)."""
    same = [x for x in o.judgement.findings if x.container.name == f.container.name]
    if len(same) < 2:
        return f.container.name
    return f"{f.container.name} ({f.container.path.rsplit('.', 1)[0]})"


def summary_line(res: ScanResult) -> str:
    counts = res.counts()
    parts = [f"{counts[v]} {v}" for v in VERDICT_ORDER if counts.get(v)]
    images = sum(counts.values())
    text = f"{_n(images, 'image')} in {_n(len(res.objects), 'workload')} from {_n(len(res.sources), 'source')}"
    if parts:
        text += ": " + ", ".join(parts)
    if res.errors:
        text += f"; {len(res.errors)} problems reading input"
    return text


def render_table(res: ScanResult, out: TextIO, colour: bool, fail_on: str) -> None:
    def paint(text: str, key: str) -> str:
        return f"{COLOURS.get(key, '')}{text}{RESET}" if colour and key in COLOURS else text

    current = None
    for o in res.objects:
        shown = [f for f in o.judgement.findings if f.result.dlc]
        if not shown:
            continue
        if o.document.source != current:
            current = o.document.source
            out.write((f"{BOLD}{current}{RESET}" if colour else current) + "\n")
        out.write(f"  {o.ref}  ({o.document.where})\n")
        width = max(len(_label(f)) for f in shown)
        for f in shown:
            label = _label(f)
            r = f.result
            what = f"{r.framework} {r.version}" if r.framework and r.version else (r.framework or "")
            line = f"    {paint(label.ljust(width), label)}  {container_label(o, f)}: {r.image}"
            out.write(line + "\n")
            detail = f.exempt if f.exempt else r.summary
            out.write(f"    {'':{width}}  {what + ' — ' if what else ''}{detail}\n")
            if r.recommendation and not f.exempt and r.verdict != "supported":
                out.write(f"    {'':{width}}  -> use {r.recommendation}\n")
    for e in res.errors:
        out.write(paint(f"error: {e}", "unsupported") + "\n")
    if res.objects or res.errors:
        out.write("\n")
    out.write(summary_line(res) + "\n")
    out.write(notice_footer(f.result.notices for _, f in res.findings() if not f.exempt))


def _finding_dict(o: ObjectResult, f: Finding) -> dict[str, Any]:
    d = o.document
    j = o.judgement
    return {
        "location": {"source": d.source, "document": d.index, "item": d.item, "line": o.line_of(f)},
        "kind": j.kind,
        "namespace": j.namespace,
        "name": j.name,
        "container": f.container.name,
        "containerType": f.container.field,
        "path": f.container.path,
        "exempt": f.exempt,
        **f.result.to_dict(),
    }


def render_json(res: ScanResult, out: TextIO, colour: bool, fail_on: str) -> None:
    doc = {
        "findings": [_finding_dict(o, f) for o, f in res.findings()],
        "errors": [{"source": e.source, "line": e.line, "message": e.message} for e in res.errors],
        "summary": {
            "sources": len(res.sources),
            "objects": res.documents,
            "workloads": len(res.objects),
            "verdicts": res.counts(),
            "failing": len(res.failing(fail_on)),
        },
    }
    json.dump(doc, out, indent=2)
    out.write("\n")


def _uri(source: str) -> str:
    if source.startswith("<"):
        return "stdin"
    path = os.path.relpath(source) if os.path.isabs(source) else source
    return path.replace(os.sep, "/")


def sarif_document(res: ScanResult, tool_version: str) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for o, f in res.findings():
        r = f.result
        if not r.dlc or r.verdict in ("supported", "not-dlc"):
            continue
        code = r.main_code
        if code not in rules:
            rules[code] = {
                "id": code,
                "name": "".join(w.capitalize() for w in code.lower().split("_")),
                "shortDescription": {"text": f"DLC image: {code.replace('_', ' ').lower()}"},
                "helpUri": DOCS_URL,
                "defaultConfiguration": {"level": SARIF_LEVEL.get(r.verdict, "note")},
            }
        message = f"{o.ref}: {f.sentence()}"
        entry: dict[str, Any] = {
            "ruleId": code,
            "level": "note" if f.exempt else SARIF_LEVEL.get(r.verdict, "note"),
            "message": {"text": message},
            "locations": [
                {
                    "logicalLocations": [
                        {
                            "name": f.container.name,
                            "fullyQualifiedName": f"{o.ref}/{f.container.path}",
                            "kind": "object",
                        }
                    ]
                }
            ],
            "partialFingerprints": {"dlcGuard/v1": f"{o.ref}|{f.container.name}|{r.image}"},
            "properties": {
                "verdict": r.verdict,
                "framework": r.framework,
                "version": r.version,
                "eop": r.eop.isoformat() if r.eop else None,
                "recommendation": r.recommendation,
                "notices": [{"code": n.code, "message": n.message} for n in r.notices],
            },
        }
        if o.document.source != "cluster":
            region = {"startLine": o.line_of(f) or 1}
            entry["locations"][0]["physicalLocation"] = {
                "artifactLocation": {"uri": _uri(o.document.source)},
                "region": region,
            }
        if f.exempt:
            entry["suppressions"] = [{"kind": "external", "justification": f.exempt}]
        results.append(entry)
    invocation: dict[str, Any] = {"executionSuccessful": not res.errors}
    if res.errors:
        invocation["toolExecutionNotifications"] = [
            {
                "level": "error",
                "message": {"text": e.message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(e.source)},
                            **({"region": {"startLine": e.line}} if e.line else {}),
                        }
                    }
                ],
            }
            for e in res.errors
        ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "dlc-guard",
                        "version": tool_version,
                        "informationUri": DOCS_URL,
                        "rules": list(rules.values()),
                    }
                },
                "invocations": [invocation],
                "results": results,
            }
        ],
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dlc-guard")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def render_sarif(res: ScanResult, out: TextIO, colour: bool, fail_on: str) -> None:
    json.dump(sarif_document(res, _version()), out, indent=2)
    out.write("\n")


def render_junit(res: ScanResult, out: TextIO, colour: bool, fail_on: str) -> None:
    """One testsuite per source, one testcase per DLC container image; ``failure`` when it
    reaches ``--fail-on``, ``skipped`` when exempt, and an ``error`` case per unreadable input."""
    suites = ET.Element("testsuites", name="dlc-guard")
    by_source: dict[str, ET.Element] = {}
    stats: dict[str, dict[str, int]] = {}

    def suite(source: str) -> ET.Element:
        if source not in by_source:
            by_source[source] = ET.SubElement(suites, "testsuite", name=source)
            stats[source] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        return by_source[source]

    for o, f in res.findings():
        r = f.result
        if not r.dlc:
            continue
        s = suite(o.document.source)
        st = stats[o.document.source]
        st["tests"] += 1
        case = ET.SubElement(s, "testcase", classname=o.ref, name=f"{container_label(o, f)}: {r.image}")
        if f.exempt:
            st["skipped"] += 1
            ET.SubElement(case, "skipped", message=f"exempt: {f.exempt}")
        elif fail_on != "never" and r.reaches(fail_on):
            st["failures"] += 1
            fail = ET.SubElement(case, "failure", message=f"{r.verdict}: {r.summary}", type=r.main_code)
            fail.text = f"{o.document.where}\n" + (f"use {r.recommendation}\n" if r.recommendation else "")
        else:
            ET.SubElement(case, "system-out").text = f"{r.verdict}: {r.summary}"
    for e in res.errors:
        s = suite(e.source)
        stats[e.source]["tests"] += 1
        stats[e.source]["errors"] += 1
        case = ET.SubElement(s, "testcase", classname=e.source, name="read")
        ET.SubElement(case, "error", message=e.message, type="InputError").text = str(e)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for source, el in by_source.items():
        for k, v in stats[source].items():
            el.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        if k != "skipped":
            suites.set(k, str(v))
    ET.indent(suites)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(suites, encoding="unicode"))
    out.write("\n")


Renderer = Callable[[ScanResult, TextIO, bool, str], None]
FORMATS: dict[str, Renderer] = {
    "table": render_table,
    "json": render_json,
    "sarif": render_sarif,
    "junit": render_junit,
}


def render(fmt: str, res: ScanResult, out: TextIO, colour: bool, fail_on: str) -> None:
    FORMATS[fmt](res, out, colour, fail_on)
