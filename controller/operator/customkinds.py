"""Watch the custom kinds the policy names (PyTorchJob, RayCluster, LeaderWorkerSet, …).

kopf's handlers are fixed when the operator starts, but the policy's ``customKinds`` change at
run time, and a kind may be installed (its CRD created) long after. So these kinds get a
list + watch thread each, found by API discovery and followed as the policy changes. A kind
counts as watched only once its first list succeeded: until then (CRD missing, or no RBAC to
list it) the Pods it controls are judged themselves, so no image goes unreported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.kube.listwatch import ListWatch

__all__ = ["CustomKinds", "KindResource"]

log = logging.getLogger("dlc_guard.operator")


@dataclass(frozen=True, slots=True)
class KindResource:
    kind: str
    group: str
    version: str
    plural: str


Deliver = Callable[[KindResource, str, Mapping[str, Any]], None]
Synced = Callable[[KindResource, str | None, list[Mapping[str, Any]]], None]


class ObjectWatch(ListWatch):
    """One custom kind, cluster-wide or in one namespace."""

    def __init__(self, res: KindResource, namespace: str | None, deliver: Deliver, synced: Synced) -> None:
        super().__init__()
        self.res, self.namespace = res, namespace
        self.name = f"watch-{res.plural}" + (f"-{namespace}" if namespace else "")
        self._deliver, self._synced = deliver, synced

    def list_call(self, api_client: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
        from kubernetes import client

        api = client.CustomObjectsApi(api_client)
        kwargs = {"group": self.res.group, "version": self.res.version, "plural": self.res.plural}
        if self.namespace:
            return api.list_namespaced_custom_object, {**kwargs, "namespace": self.namespace}
        return api.list_cluster_custom_object, kwargs

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        self._synced(self.res, self.namespace, [{"kind": self.res.kind, **o} for o in items])

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self._deliver(self.res, event_type, {"kind": self.res.kind, **obj})


class CustomKinds:
    """The set of running watches, moved to follow the policy's custom kinds."""

    def __init__(self, api_client: Any, namespaces: list[str], deliver: Deliver, synced: Synced) -> None:
        self.api_client = api_client
        self.namespaces: list[str | None] = list(namespaces)
        self.deliver, self.synced = deliver, synced
        self.watches: dict[str, list[ObjectWatch]] = {}
        self.resources: dict[str, KindResource] = {}

    def discover(self, kinds: Iterable[str]) -> dict[str, KindResource]:
        """The served collection of each kind (preferred version of its group); blocking."""
        from controller.kube.client import ClusterError
        from controller.scan.cluster import ClusterSource, discover

        try:
            found, errors = discover(ClusterSource(self.api_client), kinds)
        except ClusterError as exc:
            log.warning("discovery of custom kinds failed: %s", exc)
            return {}
        for e in errors:
            log.warning("discovery: %s", e.message)
        out = {}
        for r in found:
            group, _, version = r.group_version.rpartition("/")
            out[r.kind] = KindResource(r.kind, group, version, r.name)
        return out

    def follow(self, kinds: Iterable[str]) -> tuple[list[str], list[str]]:
        """Start watches for kinds newly named (and served), stop those no longer named; blocking
        (discovery). Returns (started, stopped)."""
        wanted = set(kinds)
        stopped = [k for k in self.watches if k not in wanted]
        for k in stopped:
            for w in self.watches.pop(k):
                w.stop()
            self.resources.pop(k, None)
        missing = [k for k in wanted if k not in self.watches]
        found = self.discover(missing) if missing else {}
        for kind, res in found.items():
            watches = [ObjectWatch(res, ns, self.deliver, self.synced) for ns in (self.namespaces or [None])]
            for w in watches:
                w.start(self.api_client)
            self.watches[kind], self.resources[kind] = watches, res
        if found:
            log.info("watching custom kinds: %s", ", ".join(sorted(found)))
        return sorted(found), stopped

    def stop(self) -> None:
        for ws in self.watches.values():
            for w in ws:
                w.stop()
        self.watches.clear()


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any]) -> Callable[..., None]:
    """``fn`` (a coroutine function) run on ``loop`` when called from a watch thread."""

    def call(*args: Any) -> None:
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(fn(*args)))

    return call
