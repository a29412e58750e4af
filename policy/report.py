"""Policy reports from judgements: one report per workload, in the report APIs other tools read.

A workload's DLC results go into a report of its own, the way Kyverno writes them: named by the
workload's uid, in its namespace, with ``scope`` naming the workload and an ownerReference, so
garbage collection removes the report with its workload and no report grows with its namespace.
Two APIs carry the same document: ``wgpolicyk8s.io/v1alpha2`` (PolicyReport, ClusterPolicyReport)
and its successor ``openreports.io/v1alpha1`` (Report, ClusterReport).

Pure data. :class:`ReportBook` remembers, per report, only a fingerprint of what the API holds
(read back from the report's own annotation after a restart) and the results still to write, so
a re-evaluation that changes nothing writes nothing, and a restarted operator neither.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from policy.judge import Finding, Judgement

__all__ = [
    "FINGERPRINT",
    "FLAVORS",
    "LEGACY_NAME",
    "OPENREPORTS",
    "POLICY",
    "REPORT_APIS",
    "SUMMARY",
    "WGPOLICY",
    "Entry",
    "Flavor",
    "Pending",
    "ReportBook",
    "WorkloadRef",
    "document",
    "fingerprint",
    "results_for",
    "summarize",
]

POLICY = "dlc-support-policy"
SOURCE = "dlc-guard"
CATEGORY = "AWS Deep Learning Containers"
LEGACY_NAME = "dlc-guard"
"""Earlier versions wrote one report of this name per namespace; the operator deletes them."""
FINGERPRINT = "dlcguard.io/fingerprint"
"""Annotation on each report: the fingerprint of its results (timestamps left out)."""
SUMMARY = "dlcguard.io/summary"
"""Annotation on each report: its counts as ``pass,fail,warn,error,skip`` (read back after a restart)."""
RESOURCE_UID = "dlcguard.io/resource.uid"
MANAGED = {"app.kubernetes.io/managed-by": "dlc-guard", "dlcguard.io/report": "true"}
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
class Flavor:
    """One report API: where its kinds live and what they are called."""

    name: str
    group: str
    version: str
    kind: str
    cluster_kind: str
    plural: str
    cluster_plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


WGPOLICY = Flavor(
    "wgpolicyk8s",
    "wgpolicyk8s.io",
    "v1alpha2",
    "PolicyReport",
    "ClusterPolicyReport",
    "policyreports",
    "clusterpolicyreports",
)
OPENREPORTS = Flavor(
    "openreports",
    "openreports.io",
    "v1alpha1",
    "Report",
    "ClusterReport",
    "reports",
    "clusterreports",
)
FLAVORS = {f.name: f for f in (WGPOLICY, OPENREPORTS)}
REPORT_APIS = ("auto", *FLAVORS, "both")
"""What the operator may be told to write: one API, both, or each of them the cluster serves."""


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

    @property
    def report_name(self) -> str:
        """The uid (what Kyverno names its reports by); without one, kind and name."""
        if self.uid:
            return self.uid
        return f"{self.kind.lower()}-{self.name}"[:253]

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
    """One result; :meth:`to_dict` gives the report form. The timestamp does not take part in
    equality or in the fingerprint."""

    rule: str
    result: str
    severity: str
    message: str
    properties: tuple[tuple[str, str], ...]
    timestamp: int = field(default=0, compare=False)

    def content(self) -> dict[str, Any]:
        return {
            "policy": POLICY,
            "rule": self.rule,
            "result": self.result,
            "severity": self.severity,
            "category": CATEGORY,
            "source": SOURCE,
            "scored": True,
            "message": self.message,
            "properties": dict(self.properties),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.content(), "timestamp": {"seconds": self.timestamp, "nanos": 0}}


def results_for(j: Judgement, timestamp: int) -> list[Entry]:
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
        message = f.sentence(dated=True)  # the same report tomorrow, while nothing changes
        out.append(
            Entry(
                f.result.main_code,
                outcome(f, s.deny_level, s.warn_level),
                SEVERITY.get(r.verdict, "info"),
                message,
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


def fingerprint(ref: WorkloadRef, results: Iterable[Entry]) -> str:
    """What a report says, in 16 hex digits: its workload and results, without timestamps."""
    body = json.dumps([ref.to_dict(), [r.content() for r in results]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def document(flavor: Flavor, ref: WorkloadRef, results: list[Entry]) -> dict[str, Any]:
    """The report of one workload in one API (cluster-scoped for a cluster-scoped workload)."""
    summary = summarize(results)
    meta: dict[str, Any] = {
        "name": ref.report_name,
        "labels": {**MANAGED, **({RESOURCE_UID: ref.uid} if ref.uid else {})},
        "annotations": {FINGERPRINT: fingerprint(ref, results), SUMMARY: ",".join(map(str, summary.values()))},
    }
    if ref.namespace:
        meta["namespace"] = ref.namespace
    if ref.uid:
        # not blockOwnerDeletion: that needs the right to set finalizers on every workload kind
        meta["ownerReferences"] = [
            {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name, "uid": ref.uid, "controller": False}
        ]
    doc: dict[str, Any] = {
        "apiVersion": flavor.api_version,
        "kind": flavor.kind if ref.namespace else flavor.cluster_kind,
        "metadata": meta,
        "scope": ref.to_dict(),
    }
    if flavor is OPENREPORTS:
        doc["source"] = SOURCE
    doc["summary"] = summary
    doc["results"] = [r.to_dict() for r in results]
    return doc


@dataclass(slots=True)
class Pending:
    """A report to write (``results`` empty: to delete)."""

    ref: WorkloadRef
    results: list[Entry]
    fingerprint: str

    @property
    def delete(self) -> bool:
        return not self.results

    def document(self, flavor: Flavor) -> dict[str, Any]:
        return document(flavor, self.ref, self.results)


Key = tuple[str, str]
"""(namespace, report name)"""


class ReportBook:
    """What the API holds (a fingerprint and a summary per report) and what is left to write.

    ``put`` and ``remove`` say what a workload's report should be; ``take`` hands the writer the
    oldest changes first; ``written`` and ``failed`` tell the book how a write went.
    """

    def __init__(self) -> None:
        self._held: dict[Key, tuple[str, tuple[int, ...]]] = {}
        """What the API holds, per report: its fingerprint and its counts by outcome."""
        self._pending: dict[Key, Pending] = {}
        self._flight: dict[Key, str] = {}
        """Fingerprints of the writes taken and not yet reported back."""
        self._totals: dict[str, list[int]] = {}

    # -- what should be -------------------------------------------------------------------
    def put(self, ref: WorkloadRef, results: list[Entry]) -> bool:
        """The workload's results now; whether that leaves a write to do."""
        if not results:
            return self.remove(ref)
        key = (ref.namespace, ref.report_name)
        fp = fingerprint(ref, results)
        if self._landing(key) == fp:
            self._pending.pop(key, None)
            return False  # held already, or on its way there
        pending = self._pending.get(key)
        if pending is not None and pending.fingerprint == fp:
            return True
        self._pending.pop(key, None)  # a newer state goes to the back of the queue
        self._pending[key] = Pending(ref, results, fp)
        return True

    def remove(self, ref: WorkloadRef) -> bool:
        """The workload has no report any more (exempt, or no DLC image left)."""
        key = (ref.namespace, ref.report_name)
        if self._landing(key) is None:
            self._pending.pop(key, None)
            return False
        pending = self._pending.get(key)
        if pending is None or not pending.delete:
            self._pending.pop(key, None)
            self._pending[key] = Pending(ref, [], "")
        return True

    def _landing(self, key: Key) -> str | None:
        """The fingerprint the API holds once the write in flight lands (``None``: no report)."""
        if key in self._flight:
            return self._flight[key] or None
        return self.held(*key)

    def forget(self, ref: WorkloadRef) -> None:
        """The workload is gone and its report goes with it (garbage collection): nothing to write."""
        key = (ref.namespace, ref.report_name)
        self._pending.pop(key, None)
        self._flight.pop(key, None)
        self._drop_held(key)

    # -- what is ----------------------------------------------------------------------------
    def seed(self, namespace: str, name: str, fp: str, counts: dict[str, int] | None = None) -> None:
        """A report found in the API (after a restart); an empty ``fp`` means it will be rewritten."""
        key = (namespace, name)
        self._set_held(key, fp, tuple((counts or {}).get(o, 0) for o in OUTCOMES))
        pending = self._pending.get(key)
        if pending is not None and pending.fingerprint == fp:
            self._pending.pop(key)  # judged before the list came back, and the same: nothing to write

    def written(self, item: Pending) -> None:
        key = (item.ref.namespace, item.ref.report_name)
        self._landed(key, item)
        if item.delete:
            self._drop_held(key)
        else:
            self._set_held(key, item.fingerprint, tuple(summarize(item.results).values()))

    def failed(self, item: Pending) -> None:
        """A write that did not go through is tried again, unless a newer state replaced it."""
        key = (item.ref.namespace, item.ref.report_name)
        self._landed(key, item)
        self._pending.setdefault(key, item)

    def take(self, n: int) -> list[Pending]:
        """Up to ``n`` writes, oldest first; they leave the queue until ``failed`` puts them back."""
        out = []
        for key in list(self._pending)[: max(n, 0)]:
            item = self._pending.pop(key)
            self._flight[key] = item.fingerprint
            out.append(item)
        return out

    def _landed(self, key: Key, item: Pending) -> None:
        if self._flight.get(key) == item.fingerprint:
            del self._flight[key]

    # -- reading ----------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        return len(self._pending)

    def __len__(self) -> int:
        return len(self._held)

    def held(self, namespace: str, name: str) -> str | None:
        """The fingerprint of the report the API holds (``None``: none)."""
        held = self._held.get((namespace, name))
        return held[0] if held is not None else None

    def held_reports(self) -> Iterator[tuple[str, str, str]]:
        """``(namespace, name, fingerprint)`` of every report the API holds."""
        for (namespace, name), (fp, _) in list(self._held.items()):
            yield namespace, name, fp

    def namespaces(self) -> list[str]:
        return sorted(self._totals)

    def summary(self, namespace: str) -> dict[str, int]:
        """The namespace's results by outcome, over the reports the API holds (bounded: five numbers)."""
        totals = self._totals.get(namespace) or [0] * (len(OUTCOMES) + 1)
        return dict(zip(OUTCOMES, totals[: len(OUTCOMES)], strict=True))

    def reports(self, namespace: str) -> int:
        totals = self._totals.get(namespace)
        return totals[-1] if totals else 0

    def pending(self) -> Iterator[Pending]:
        return iter(list(self._pending.values()))

    # -- bookkeeping --------------------------------------------------------------------------
    def _set_held(self, key: Key, fp: str, counts: tuple[int, ...]) -> None:
        self._drop_held(key)
        self._held[key] = (fp, counts)
        totals = self._totals.setdefault(key[0], [0] * (len(OUTCOMES) + 1))
        for i, c in enumerate(counts):
            totals[i] += c
        totals[-1] += 1  # reports held in the namespace

    def _drop_held(self, key: Key) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        counts = held[1]
        totals = self._totals[key[0]]
        for i, c in enumerate(counts):
            totals[i] -= c
        totals[-1] -= 1
        if not totals[-1]:
            del self._totals[key[0]]
