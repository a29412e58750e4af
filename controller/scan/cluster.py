"""Read-only listing of a live cluster's pod-bearing objects through the kubeconfig.

Lists each kind with paging (``limit``/``continue``), so a large cluster is never held in one
response. Objects controlled by another scanned object (a ReplicaSet's pods, a Deployment's
ReplicaSets, a CronJob's Jobs) are passed over: the owner is reported once instead.
A kind the API server does not serve (a CRD not installed) is left out quietly; one that
cannot be listed (RBAC) is reported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from controller.kube.client import ClusterError, Rest, connect_api
from controller.scan.sources import Document, SourceError
from policy.workloads import controlled_by

__all__ = ["ClusterError", "ClusterSource", "connect", "list_objects"]

PAGE = 500
SOURCE = "cluster"


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    base: str
    """``/api/v1`` or ``/apis/GROUP/VERSION``."""
    name: str
    """The plural, e.g. ``deployments``."""
    namespaced: bool
    group_version: str

    def path(self, namespace: str | None = None) -> str:
        if namespace and self.namespaced:
            return f"{self.base}/namespaces/{namespace}/{self.name}"
        return f"{self.base}/{self.name}"


@dataclass
class ClusterSource:
    api: Any
    """A ``kubernetes.client.ApiClient``."""
    context: str | None = None

    def get(self, path: str, query: list[tuple[str, Any]]) -> Any:
        return Rest(self.api).request("GET", path, query=query)


def connect(kubeconfig: str | None = None, context: str | None = None) -> ClusterSource:
    return ClusterSource(connect_api(kubeconfig, context), context)


def discover(src: ClusterSource, kinds: Iterable[str]) -> tuple[list[Resource], list[SourceError]]:
    """Find the collection for each wanted kind (preferred version of each group)."""
    wanted = set(kinds)
    found: dict[str, Resource] = {}
    errors: list[SourceError] = []
    group_versions = ["v1"]
    try:
        groups = src.get("/apis", [])
        for g in groups.get("groups", []):
            pv = (g.get("preferredVersion") or {}).get("groupVersion")
            if pv:
                group_versions.append(pv)
    except ClusterError as exc:
        return [], [SourceError(SOURCE, str(exc))]
    for gv in group_versions:
        base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        try:
            listing = src.get(base, [])
        except ClusterError as exc:
            errors.append(SourceError(SOURCE, f"discovery of {gv} failed: {exc}"))
            continue
        for r in listing.get("resources", []):
            kind = r.get("kind")
            if kind in wanted and kind not in found and "/" not in r.get("name", "/") and "list" in r.get("verbs", []):
                found[kind] = Resource(kind, base, r["name"], bool(r.get("namespaced")), gv)
    return list(found.values()), errors


def list_objects(
    src: ClusterSource,
    kinds: Iterable[str],
    namespace: str | None = None,
    progress: Callable[[str, int], None] | None = None,
    page: int = PAGE,
) -> Iterator[Document | SourceError]:
    """Every object of ``kinds`` (in ``namespace``, or all namespaces), page by page."""
    kinds = list(kinds)
    resources, errors = discover(src, kinds)
    yield from errors
    scanned = {r.kind for r in resources}
    seen = 0
    for res in resources:
        if namespace and not res.namespaced:
            continue
        try:
            for body in Rest(src.api).pages(res.path(namespace), limit=page):
                for obj in body.get("items") or []:
                    obj.setdefault("kind", res.kind)
                    obj.setdefault("apiVersion", res.group_version)
                    seen += 1
                    if controlled_by(obj, scanned):
                        continue
                    yield Document(SOURCE, None, obj)
                if progress is not None:
                    progress(res.kind, seen)
        except ClusterError as exc:
            yield SourceError(SOURCE, f"cannot list {res.kind}: {exc}")


def terminal_progress(stream: TextIO = sys.stderr) -> Callable[[str, int], None] | None:
    """A one-line progress display on a terminal; ``None`` when ``stream`` is not one."""
    if not stream.isatty():
        return None

    def show(kind: str, seen: int) -> None:
        stream.write(f"\r\033[Kscanning: {seen} objects read (listing {kind})")
        stream.flush()

    return show


def current_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context (as kubectl uses it), else ``default``."""
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except Exception:
        return "default"
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    ns = ((chosen or {}).get("context") or {}).get("namespace")
    return str(ns) if ns else "default"
