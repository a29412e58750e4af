"""List, then watch, in a daemon thread: the webhook's small caches of cluster state.

A subclass says what to list (``list_call``) and what to do with the listing (``replace``)
and with each later event (``apply``). A lost connection or an expired resource version
(410 Gone) starts over from a fresh list, so a cache is never left half-updated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("dlc_guard.watch")

__all__ = ["ListWatch", "NamedObjectWatch"]


class ListWatch:
    name = "watch"
    retry_seconds = 5.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what a subclass provides --------------------------------------------------------
    def list_call(self, api_client: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
        """The typed list method and its keyword arguments (it is also the watch's source)."""
        raise NotImplementedError

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        raise NotImplementedError

    # -- running ---------------------------------------------------------------------------
    def start(self, api_client: Any) -> None:
        self._thread = threading.Thread(target=self._run, args=(api_client,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, api_client: Any) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        func, kwargs = self.list_call(api_client)
        while not self._stop.is_set():
            try:
                listing = func(**kwargs)
                if isinstance(listing, dict):  # custom objects come back as plain JSON
                    items = list(listing.get("items") or [])
                    version = (listing.get("metadata") or {}).get("resourceVersion")
                else:
                    items = [api_client.sanitize_for_serialization(i) for i in listing.items or []]
                    version = listing.metadata.resource_version if listing.metadata else None
                self.replace(items)
                w = watch.Watch()  # type: ignore[no-untyped-call]
                stream = w.stream(  # type: ignore[no-untyped-call]
                    func, resource_version=version, timeout_seconds=300, **kwargs
                )
                for event in stream:
                    if self._stop.is_set():
                        w.stop()  # type: ignore[no-untyped-call]
                        return
                    if event.get("type") == "ERROR":
                        break  # usually 410 Gone: list again
                    self.apply(str(event.get("type")), event.get("raw_object") or {})
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("%s failed: %s %s", self.name, exc.status, exc.reason)
                    self._stop.wait(self.retry_seconds)
            except Exception as exc:  # connection loss: retry after a pause
                log.warning("%s failed: %s", self.name, exc)
                self._stop.wait(self.retry_seconds)


class NamedObjectWatch(ListWatch):
    """Follow one named object of a namespace (listed and watched by ``metadata.name``):
    ``changed`` gets it each time it is listed or changes. A deletion changes nothing: what was
    last delivered stays in use until the object is written again."""

    list_method = ""
    """The ``CoreV1Api`` list method of the object's kind."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__()
        self.namespace, self.object_name = namespace, name

    def list_call(self, api_client: Any) -> tuple[Callable[..., Any], dict[str, Any]]:
        from kubernetes import client

        method = getattr(client.CoreV1Api(api_client), self.list_method)
        return method, {"namespace": self.namespace, "field_selector": f"metadata.name={self.object_name}"}

    def replace(self, items: list[Mapping[str, Any]]) -> None:
        for obj in items:
            self.changed(obj)

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        if event_type != "DELETED":
            self.changed(obj)

    def changed(self, obj: Mapping[str, Any]) -> None:
        raise NotImplementedError
