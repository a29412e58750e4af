"""Judge scanned objects with the shared policy code and keep where each one came from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from controller.scan.sources import Document, SourceError
from policy.evaluate import Engine
from policy.judge import Finding, Judgement, judge_object
from policy.policy import Policy

__all__ = ["ObjectResult", "ScanResult", "scan_documents"]


@dataclass(slots=True)
class ObjectResult:
    document: Document
    judgement: Judgement

    @property
    def ref(self) -> str:
        j = self.judgement
        return f"{j.kind} {j.namespace}/{j.name}" if j.namespace else f"{j.kind} {j.name}"

    def line_of(self, f: Finding) -> int | None:
        return self.document.image_lines.get(f.container.path, self.document.line)


@dataclass(slots=True)
class ScanResult:
    objects: list[ObjectResult] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    documents: int = 0
    """Objects read, of any kind."""
    sources: set[str] = field(default_factory=set)

    def findings(self) -> Iterator[tuple[ObjectResult, Finding]]:
        for o in self.objects:
            for f in o.judgement.findings:
                yield o, f

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, f in self.findings():
            key = "exempt" if f.exempt and f.result.dlc else f.result.verdict
            out[key] = out.get(key, 0) + 1
        return out

    def failing(self, level: str) -> list[tuple[ObjectResult, Finding]]:
        if level == "never":
            return []
        # an invalid reference fails at every level (nothing can run it)
        return [
            (o, f)
            for o, f in self.findings()
            if f.exempt is None and (f.result.verdict == "invalid" or (f.result.dlc and f.result.reaches(level)))
        ]


def scan_documents(
    items: Iterable[Document | SourceError],
    engine: Engine,
    policy: Policy,
    today: dt.date,
    default_namespace: str = "default",
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> ScanResult:
    """Judge every pod-bearing object; objects of other kinds are counted and passed over.

    Namespaced kinds without ``metadata.namespace`` are judged as if in ``default_namespace``
    (as ``kubectl apply -n`` would place them).
    """
    out = ScanResult()
    for item in items:
        if isinstance(item, SourceError):
            out.errors.append(item)
            out.sources.add(item.source)
            continue
        out.documents += 1
        out.sources.add(item.source)
        meta = item.obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, Mapping) else None
        namespace = str(ns) if ns else default_namespace
        labels = namespace_labels.get(namespace) if namespace_labels is not None else None
        j = judge_object(item.obj, engine, policy, today, namespace=namespace, namespace_labels=labels)
        if j is not None:
            out.objects.append(ObjectResult(item, j))
    return out
