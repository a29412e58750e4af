"""Namespace labels for ``namespaceSelector`` exemptions, kept current by list + watch.

The AdmissionReview names the namespace but not its labels, so the webhook keeps its own
copy (as Kyverno and Gatekeeper do). Until the first list has completed, labels are unknown
(``None``) and namespace-selector exemptions do not apply: an exemption is never granted on
a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.kube.listwatch import ListWatch

__all__ = ["NamespaceLabels"]


class NamespaceLabels(ListWatch):
    name = "namespace-watch"

    def __init__(self, initial: Mapping[str, Mapping[str, str]] | None = None) -> None:
        super().__init__()
        self._labels: dict[str, dict[str, str]] = {k: dict(v) for k, v in (initial or {}).items()}
        self.synced = initial is not None

    def __call__(self, namespace: str) -> Mapping[str, str] | None:
        if not self.synced:
            return None
        return self._labels.get(namespace, {})

    def list_call(self, api_client: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
        from kubernetes import client

        return client.CoreV1Api(api_client).list_namespace, {}

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        fresh = NamespaceLabels({})
        for obj in items:
            fresh.apply("ADDED", obj)
        self._labels = fresh._labels
        self.synced = True

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return
        if event_type == "DELETED":
            self._labels.pop(name, None)
        else:
            self._labels[name] = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
