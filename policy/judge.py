"""Judge one Kubernetes object: every container image, with the policy's exemptions applied.

Shared by the webhook, ``scan`` and the operator so that all three reach the same verdicts
for the same object. Pure: the object comes in as a mapping, nothing is fetched.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.evaluate import Engine, Result
from policy.policy import Policy, Settings
from policy.workloads import Container, containers_of, pod_spec_paths

COUNTDOWN = re.compile(r" \(in \d+ days?\)")
"""The engine's "(in 59 days)": right in a warning, wrong in a record kept past today."""

__all__ = [
    "ANNOTATION_KEYS",
    "ANNOTATION_NEXT",
    "ANNOTATION_UNSUPPORTED",
    "ANNOTATION_VERDICT",
    "Finding",
    "Judgement",
    "OldImages",
    "annotations_for",
    "judge_object",
    "labels_of",
    "name_of",
    "old_images_of",
]

ANNOTATION_VERDICT = "dlc-guard.io/verdict"
"""The worst verdict among the object's DLC images that no exemption covers."""
ANNOTATION_NEXT = "dlc-guard.io/next-change"
"""The next date on which one of those verdicts changes by itself."""
ANNOTATION_UNSUPPORTED = "dlc-guard.io/unsupported-images"
"""The containers whose image is unsupported, comma-separated."""
ANNOTATION_KEYS = (ANNOTATION_VERDICT, ANNOTATION_NEXT, ANNOTATION_UNSUPPORTED)

OldImages = frozenset[tuple[tuple[str, str], str]]
"""On UPDATE: ``(container slot, image)`` of every container the old object had."""


def old_images_of(containers: list[Container]) -> OldImages:
    return frozenset((c.slot, c.image) for c in containers)


@dataclass(slots=True)
class Finding:
    container: Container
    result: Result
    exempt: str | None = None
    """The exemption's reason when one covers this image."""
    preexisting: bool = False
    """On UPDATE: the same container (same list, same name) already ran this image."""
    exception: str | None = None
    """``namespace/name`` of the DLCGuardException that covers it, if one does."""

    def sentence(self, *, verdict: bool = True, dated: bool = False) -> str:
        """The finding in words, as every output says it (denials, warnings, reports, Events,
        SARIF): ``container 'c' image IMG is VERDICT: WHY; use FIX``. ``verdict=False`` leaves
        out "is VERDICT" (an Event that names it already); ``dated`` drops the engine's "(in N
        days)", which a stored record would have to rewrite every day."""
        r = self.result
        why = COUNTDOWN.sub("", r.summary) if dated else r.summary
        text = f"container {self.container.name!r} image {r.image}"
        text += f" is {r.verdict}: {why}" if verdict else f": {why}"
        if r.recommendation and r.verdict != "supported":
            text += f"; use {r.recommendation}"
        return text


@dataclass(slots=True)
class Judgement:
    kind: str
    namespace: str
    name: str
    settings: Settings
    findings: list[Finding] = field(default_factory=list)
    exempt_namespace: bool = False

    @property
    def judged(self) -> list[Finding]:
        """Findings for DLC images (verdicts that the policy speaks about)."""
        return [f for f in self.findings if f.result.dlc]

    @property
    def worst(self) -> Result | None:
        judged = [f.result for f in self.findings if f.result.dlc and f.exempt is None]
        return max(judged, key=lambda r: r.rank) if judged else None

    @property
    def next_change(self) -> dt.date | None:
        dates = [f.result.next_change for f in self.findings if f.result.dlc and f.result.next_change]
        return min(dates) if dates else None


def annotations_for(findings: list[Finding]) -> dict[str, str]:
    """The annotations an object carries for its findings: one vocabulary for the webhook's
    ``/mutate`` and the operator. Exempt images do not count; nothing when none is left."""
    judged = [f for f in findings if f.result.dlc and f.exempt is None]
    if not judged:
        return {}
    out = {ANNOTATION_VERDICT: max((f.result for f in judged), key=lambda r: r.rank).verdict}
    dates = [f.result.next_change for f in judged if f.result.next_change]
    if dates:
        out[ANNOTATION_NEXT] = min(dates).isoformat()
    bad = sorted({(f.container.name, f.result.image) for f in judged if f.result.verdict == "unsupported"})
    if bad:
        out[ANNOTATION_UNSUPPORTED] = ",".join(f"{name}={image}" for name, image in bad)
    return out


def name_of(obj: Mapping[str, Any]) -> str:
    """The object's name, or its ``generateName`` prefix before the API server has named it."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ""
    return str(meta.get("name") or meta.get("generateName") or "")


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata")
    raw = meta.get("labels") if isinstance(meta, Mapping) else None
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def judge_object(
    obj: Mapping[str, Any],
    engine: Engine,
    policy: Policy,
    today: dt.date,
    *,
    kind: str | None = None,
    namespace: str | None = None,
    namespace_labels: Mapping[str, str] | None = None,
    old_images: OldImages | None = None,
    containers: list[Container] | None = None,
) -> Judgement | None:
    """Judge ``obj``; ``None`` when its kind carries no pod spec the policy knows.

    ``kind`` and ``namespace`` default to the object's own; ``namespace_labels`` feeds
    ``namespaceSelector`` exemptions; ``old_images`` (on UPDATE, :func:`old_images_of` the old object) marks
    the containers that already ran the same image;
    ``containers`` spares the walk when the caller has already found them.
    """
    kind = kind or str(obj.get("kind") or "")
    paths = pod_spec_paths(kind, policy.custom_kinds)
    if paths is None:
        return None
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    if namespace is None:
        namespace = str(meta.get("namespace") or "")
    j = Judgement(kind, namespace, name_of(obj), policy.settings_for(namespace))
    if namespace in policy.exempt_namespaces:
        j.exempt_namespace = True
        return j
    labels = labels_of(obj)
    exemptions = policy.exemptions_for(namespace, labels, today, namespace_labels)
    exceptions = policy.exceptions_for(namespace, j.name, labels, today) if policy.exceptions else []
    old_images = old_images or frozenset()
    for c in containers_of(obj, paths) if containers is None else containers:
        r = engine.evaluate(c.image)
        f = Finding(c, r, preexisting=(c.slot, c.image) in old_images)
        ex = next((e for e in exemptions if e.covers_image(c.image)), None)
        if ex is not None:
            f.exempt = ex.reason or "exempt"
        else:
            granted = next((e for e in exceptions if e.covers(c.name, c.image)), None)
            if granted is not None:
                f.exempt, f.exception = granted.label, granted.ref
        j.findings.append(f)
    return j
