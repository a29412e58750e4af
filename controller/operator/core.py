"""The operator's logic without the cluster: what to record, annotate and announce.

``Core.observe(obj)`` takes a watched object (Pod or workload) and returns a :class:`Change`:
whether the namespace's PolicyReport changed, the annotations the object should carry, and
the Event to emit when the workload has just become unsupported or expiring. The kopf
handlers in :mod:`controller.operator.handlers` only carry these out. ``Core.reevaluate``
re-judges everything it tracks (a new day, a new catalog, a new policy).

Restart safety: the previous verdict of a workload is read from its own annotation, so a
restarted operator neither repeats Events nor loses transitions; each workload's report is named
by its uid and carries the fingerprint of its results, so a rewrite never duplicates anything and
a restart that finds the same fingerprints writes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.evaluate import Engine
from policy.judge import (
    ANNOTATION_KEYS,
    ANNOTATION_NEXT,
    ANNOTATION_VERDICT,
    Finding,
    Judgement,
    annotations_for,
    judge_object,
)
from policy.policy import Policy
from policy.report import ReportBook, WorkloadRef, results_for
from policy.workloads import BUILTIN_KINDS, Container, containers_of, controlled_by, pod_spec_paths

__all__ = ["ANNOTATION_NEXT", "ANNOTATION_VERDICT", "Change", "Core", "Event"]

ANNOUNCED = ("unsupported", "expiring")


EVENT_MAX = 1024
"""The API server keeps an Event's message to 1 KiB."""


def event_message(t: Tracked, verdict: str, culprits: list[Finding]) -> str:
    """Every affected container, one sentence each; those that do not fit are counted."""
    head = f"{t.ref.kind} {t.ref.name} is now {verdict}"
    parts = [f.sentence(verdict=False) for f in culprits]  # the head says the verdict
    msg = head + (": " if parts else "")
    for i, part in enumerate(parts):
        rest = len(parts) - i - 1
        tail = f" (and {rest} more)" if rest else ""
        joined = msg + ("" if i == 0 else ". ") + part
        if len(joined) + len(tail) > EVENT_MAX:
            return (msg + f" (and {len(parts) - i} more)")[:EVENT_MAX]
        msg = joined
    return msg


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass(slots=True)
class Change:
    ref: WorkloadRef
    report_changed: bool = False
    annotations: dict[str, str | None] | None = None
    """Annotations to set (``None`` values remove); ``None`` when nothing to write."""
    event: Event | None = None


@dataclass(slots=True)
class Tracked:
    ref: WorkloadRef
    labels: dict[str, str]
    containers: list[Container]
    annotations: dict[str, str] = field(default_factory=dict)
    """The dlc-guard annotations the object carries (as last seen or written)."""
    owners: frozenset[str] = frozenset()
    """Kinds of the object's controllers (when one of them is watched, it is judged instead)."""


NO_OWNERS: frozenset[str] = frozenset()


def _owner_kinds(refs: Any) -> frozenset[str]:
    """Kinds of an object's controllers (most objects have none: one shared empty set)."""
    kinds = [str(r.get("kind")) for r in refs or () if isinstance(r, Mapping) and r.get("controller")]
    return frozenset(kinds) if kinds else NO_OWNERS


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class Core:
    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        watched: frozenset[str] | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self.book = ReportBook()
        self.tracked: dict[tuple[str, str, str], Tracked] = {}
        self.watched: frozenset[str] = frozenset(policy.custom_kinds) if watched is None else watched
        """The custom kinds whose objects are observed: a Pod whose controller is of a kind nobody
        watches is judged itself, so no image goes unreported."""

    @property
    def today(self) -> dt.date:
        return self.engine.as_of

    @property
    def kinds(self) -> list[str]:
        return [*BUILTIN_KINDS, *self.watched]

    def watch_kinds(self, kinds: frozenset[str]) -> set[str]:
        """The custom kinds now watched; objects controlled by a newly watched kind are forgotten
        (their owner reports them). Returns the namespaces whose reports changed."""
        added = kinds - self.watched
        self.watched = kinds
        dirty = set()
        for key, t in list(self.tracked.items()):
            if t.owners & added:
                self.tracked.pop(key)
                if self.book.remove(t.ref):
                    dirty.add(t.ref.namespace)
        return dirty

    def observe(self, obj: Mapping[str, Any], api_version: str | None = None) -> Change | None:
        """A watched object was added or modified; ``None`` when it is not dlc-guard's to judge."""
        kind = str(obj.get("kind") or "")
        paths = pod_spec_paths(kind, self.policy.custom_kinds)
        meta = _meta(obj)
        name = str(meta.get("name") or "")
        if paths is None or not name:
            return None
        if controlled_by(obj, self.kinds):
            # reported at its controller: a report of its own from before goes
            gone = self.tracked.pop((str(meta.get("namespace") or ""), kind, name), None)
            if gone is not None:
                self.book.remove(gone.ref)
            return None
        ref = WorkloadRef(
            api_version or str(obj.get("apiVersion") or ""),
            kind,
            str(meta.get("namespace") or ""),
            name,
            str(meta.get("uid") or ""),
        )
        raw_labels = meta.get("labels") or {}
        raw_ann = meta.get("annotations") or {}
        t = Tracked(
            ref,
            {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, Mapping) else {},
            containers_of(obj, paths),
            {k: str(v) for k, v in (raw_ann.items() if isinstance(raw_ann, Mapping) else ()) if k in ANNOTATION_KEYS},
            _owner_kinds(meta.get("ownerReferences")),
        )
        old = self.tracked.get((ref.namespace, kind, name))
        if old is not None and old.ref.uid != ref.uid:
            self._drop(old.ref)  # deleted and created again under the same name
        self.tracked[(ref.namespace, kind, name)] = t
        return self._judge(t)

    def forget(self, kind: str, namespace: str, name: str) -> bool:
        """A watched object was deleted; returns whether a report is left to delete."""
        t = self.tracked.pop((namespace, kind, name), None)
        return t is not None and self._drop(t.ref)

    def _drop(self, ref: WorkloadRef) -> bool:
        if ref.uid:
            # its report names it as owner: garbage collection deletes the report with it
            self.book.forget(ref)
            return False
        return self.book.remove(ref)

    def reevaluate(self, engine: Engine | None = None, policy: Policy | None = None) -> list[Change]:
        """Judge everything again (a new date, catalog or policy); the changes that need writing."""
        if engine is not None:
            self.engine = engine
        if policy is not None:
            self.policy = policy
        out = []
        for t in list(self.tracked.values()):
            if pod_spec_paths(t.ref.kind, self.policy.custom_kinds) is None:
                continue
            c = self._judge(t)
            if c.report_changed or c.annotations or c.event:
                out.append(c)
        return out

    def judgement(self, t: Tracked) -> Judgement | None:
        obj = {"kind": t.ref.kind, "metadata": {"name": t.ref.name, "labels": t.labels}}
        return judge_object(
            obj, self.engine, self.policy, self.today, namespace=t.ref.namespace, containers=t.containers
        )

    def _judge(self, t: Tracked) -> Change:
        j = self.judgement(t)
        change = Change(t.ref)
        if j is None:
            return change
        results = [] if j.exempt_namespace else results_for(j, int(self.clock()))
        change.report_changed = self.book.put(t.ref, results)
        worst = j.worst
        wanted = {} if j.exempt_namespace else annotations_for(j.findings)
        if wanted != t.annotations:
            change.annotations = {k: wanted.get(k) for k in {*wanted, *t.annotations}}
            previous = t.annotations.get(ANNOTATION_VERDICT)
            now = wanted.get(ANNOTATION_VERDICT)
            if now in ANNOUNCED and now != previous and worst is not None:
                change.event = Event(
                    "Warning", "DLCImageUnsupported" if now == "unsupported" else "DLCImageExpiring", ""
                )
                culprits = [f for f in j.findings if f.exempt is None and f.result.verdict == now]
                change.event = Event("Warning", change.event.reason, event_message(t, now, culprits))
            t.annotations = wanted
        return change
