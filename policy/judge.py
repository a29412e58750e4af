"""Judge one Kubernetes object: every container image, with the policy's exemptions applied.

Shared by the webhook, ``scan`` and the operator so that all three reach the same verdicts
for the same object. Pure: the object comes in as a mapping, nothing is fetched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.evaluate import Engine, Result
from policy.policy import Policy, Settings
from policy.workloads import Container, containers_of, pod_spec_paths

__all__ = ["Finding", "Judgement", "judge_object", "labels_of"]


@dataclass(slots=True)
class Finding:
    container: Container
    result: Result
    exempt: str | None = None
    """The exemption's reason when one covers this image."""
    preexisting: bool = False
    """On UPDATE: the old object already ran this image."""


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


def _name(meta: Mapping[str, Any]) -> str:
    name = meta.get("name") or meta.get("generateName") or ""
    return str(name)


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
    old_images: frozenset[str] | None = None,
    containers: list[Container] | None = None,
) -> Judgement | None:
    """Judge ``obj``; ``None`` when its kind carries no pod spec the policy knows.

    ``kind`` and ``namespace`` default to the object's own; ``namespace_labels`` feeds
    ``namespaceSelector`` exemptions; ``old_images`` (on UPDATE: the old object's images) marks those it already had;
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
    j = Judgement(kind, namespace, _name(meta), policy.settings_for(namespace))
    if namespace in policy.exempt_namespaces:
        j.exempt_namespace = True
        return j
    exemptions = policy.exemptions_for(namespace, labels_of(obj), today, namespace_labels)
    old_images = old_images or frozenset()
    for c in containers_of(obj, paths) if containers is None else containers:
        r = engine.evaluate(c.image)
        ex = next((e for e in exemptions if e.covers_image(c.image)), None)
        j.findings.append(Finding(c, r, (ex.reason or "exempt") if ex else None, c.image in old_images))
    return j
