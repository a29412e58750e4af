"""Namespace labels for ``namespaceSelector`` exemptions, kept current by list + watch.

The AdmissionReview names the namespace but not its labels, so the webhook keeps its own
copy (as Kyverno and Gatekeeper do). Until the first list has completed, labels are unknown
(``None``) and namespace-selector exemptions do not apply: an exemption is never granted on
a guess.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("dlc_guard.namespaces")

__all__ = ["NamespaceLabels"]


class NamespaceLabels:
    def __init__(self, initial: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._labels: dict[str, dict[str, str]] = {k: dict(v) for k, v in (initial or {}).items()}
        self.synced = initial is not None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, namespace: str) -> Mapping[str, str] | None:
        if not self.synced:
            return None
        return self._labels.get(namespace, {})

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return
        if event_type == "DELETED":
            self._labels.pop(name, None)
        else:
            self._labels[name] = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}

    def start(self, api_client: Any) -> None:
        self._thread = threading.Thread(target=self._run, args=(api_client,), name="namespace-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, api_client: Any) -> None:
        from kubernetes import client, watch
        from kubernetes.client.exceptions import ApiException

        v1 = client.CoreV1Api(api_client)
        while not self._stop.is_set():
            try:
                listing = v1.list_namespace()
                self._labels = {}
                for ns in listing.items or []:
                    self.apply("ADDED", api_client.sanitize_for_serialization(ns))
                self.synced = True
                w = watch.Watch()  # type: ignore[no-untyped-call]
                stream = w.stream(  # type: ignore[no-untyped-call]
                    v1.list_namespace,
                    resource_version=listing.metadata.resource_version if listing.metadata else None,
                    timeout_seconds=300,
                )
                for event in stream:
                    if self._stop.is_set():
                        w.stop()  # type: ignore[no-untyped-call]
                        return
                    self.apply(str(event.get("type")), event.get("raw_object") or {})
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("namespace watch failed: %s %s", exc.status, exc.reason)
                    self._stop.wait(5)
            except Exception as exc:  # connection loss: retry after a pause
                log.warning("namespace watch failed: %s", exc)
                self._stop.wait(5)
