"""PolicyReports (``wgpolicyk8s.io/v1alpha2``) from judgements: results, summaries, diffs.

Pure data: the operator keeps a :class:`ReportBook` in memory and writes a namespace's report
only when :meth:`ReportBook.put` or :meth:`ReportBook.remove` says it changed. A result that
did not change keeps its first timestamp, so an unchanged cluster produces no writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from policy.judge import Finding, Judgement

__all__ = ["POLICY", "REPORT_API", "Entry", "ReportBook", "WorkloadRef", "results_for", "summarize"]

REPORT_API = "wgpolicyk8s.io/v1alpha2"
POLICY = "dlc-support-policy"
SOURCE = "dlc-guard"
CATEGORY = "AWS Deep Learning Containers"
REPORT_NAME = "dlc-guard"
SEVERITY = {
    "unsupported": "high",
    "invalid": "medium",
    "unknown": "medium",
    "outdated": "medium",
    "expiring": "low",
    "supported": "info",
}
OUTCOMES = ("pass", "fail", "warn", "error", "skip")


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def to_dict(self) -> dict[str, str]:
        d = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            d["namespace"] = self.namespace
        if self.uid:
            d["uid"] = self.uid
        return d


def outcome(f: Finding, deny_level: str, warn_level: str) -> str:
    """pass / fail / warn / skip for one DLC finding under the policy's levels."""
    if f.exempt is not None:
        return "skip"
    if f.result.reaches(deny_level):
        return "fail"
    if f.result.reaches(warn_level):
        return "warn"
    return "pass"


@dataclass(frozen=True, slots=True)
class Entry:
    """One result, compact (a report of tens of thousands of results stays small in memory);
    :meth:`to_dict` gives the PolicyReport form. The timestamp does not take part in equality."""

    rule: str
    result: str
    severity: str
    message: str
    ref: WorkloadRef
    properties: tuple[tuple[str, str], ...]
    timestamp: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": POLICY,
            "rule": self.rule,
            "result": self.result,
            "severity": self.severity,
            "category": CATEGORY,
            "source": SOURCE,
            "scored": True,
            "message": self.message,
            "resources": [self.ref.to_dict()],
            "properties": dict(self.properties),
            "timestamp": {"seconds": self.timestamp, "nanos": 0},
        }


def results_for(j: Judgement, ref: WorkloadRef, timestamp: int) -> list[Entry]:
    """One result per DLC container image of the workload (non-DLC images are not reported)."""
    out = []
    s = j.settings
    for f in j.findings:
        r = f.result
        if not r.dlc:
            continue
        props = (
            ("container", f.container.name),
            ("containerPath", f.container.path),
            ("image", r.image),
            ("verdict", r.verdict),
            ("framework", r.framework or ""),
            ("version", r.version or ""),
            ("eop", r.eop.isoformat() if r.eop else ""),
            ("nextChange", r.next_change.isoformat() if r.next_change else ""),
            ("recommendation", r.recommendation or ""),
            ("exemption", f.exempt or ""),
            ("exception", f.exception or ""),
            ("licenseNotice", next((n.message for n in r.notices if n.code == "ANACONDA_LICENSE"), "")),
        )
        message = f"container {f.container.name!r} image {r.image} is {r.verdict}: {r.summary}"
        if r.recommendation and r.verdict != "supported":
            message += f"; use {r.recommendation}"
        out.append(
            Entry(
                f.result.main_code,
                outcome(f, s.deny_level, s.warn_level),
                SEVERITY.get(r.verdict, "info"),
                message,
                ref,
                tuple((k, v) for k, v in props if v),
                timestamp,
            )
        )
    return out


def summarize(results: Iterable[Entry]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for r in results:
        counts[r.result] += 1
    return counts


@dataclass
class _Namespace:
    workloads: dict[str, list[Entry]] = field(default_factory=dict)


class ReportBook:
    """Every namespace's results, by workload. ``put``/``remove`` return whether the
    namespace's report changed (and so needs writing)."""

    def __init__(self) -> None:
        self._ns: dict[str, _Namespace] = {}

    def put(self, ref: WorkloadRef, results: list[Entry]) -> bool:
        ns = self._ns.setdefault(ref.namespace, _Namespace())
        old = ns.workloads.get(ref.key)
        if old is not None and old == results:
            return False  # unchanged (timestamps do not count): keep the old ones
        if not results:
            return ns.workloads.pop(ref.key, None) is not None
        ns.workloads[ref.key] = results
        return True

    def remove(self, namespace: str, kind: str, name: str) -> bool:
        ns = self._ns.get(namespace)
        return ns is not None and ns.workloads.pop(f"{kind}/{name}", None) is not None

    def namespaces(self) -> list[str]:
        return sorted(self._ns)

    def workloads(self, namespace: str) -> list[str]:
        ns = self._ns.get(namespace)
        return sorted(ns.workloads) if ns else []

    def results(self, namespace: str) -> list[Entry]:
        ns = self._ns.get(namespace)
        if ns is None:
            return []
        return [r for key in sorted(ns.workloads) for r in ns.workloads[key]]

    def document(self, namespace: str, name: str = REPORT_NAME) -> dict[str, Any]:
        """The PolicyReport for ``namespace`` (a ClusterPolicyReport for ``""``)."""
        results = self.results(namespace)
        meta: dict[str, Any] = {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "dlc-guard", "dlcguard.io/report": "true"},
        }
        kind = "PolicyReport"
        if namespace:
            meta["namespace"] = namespace
        else:
            kind = "ClusterPolicyReport"
        return {
            "apiVersion": REPORT_API,
            "kind": kind,
            "metadata": meta,
            "summary": summarize(results),
            "results": [r.to_dict() for r in results],
        }
