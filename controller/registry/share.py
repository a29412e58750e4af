"""Digest answers shared between the operator and the webhook through a ConfigMap.

The operator looks digests up in the background and publishes its book as JSON in one
ConfigMap of its namespace (kept under the 1 MiB object limit: the most recently used answers
win); the webhook's replicas watch that ConfigMap and add what it holds to their own books, so
an admission is answered from it without a registry round trip. A digest's answer never
changes, so readers only ever add.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from controller.kube.client import Rest, collection_path
from controller.kube.listwatch import NamedObjectWatch
from policy.digests import DigestBook

log = logging.getLogger("dlc_guard.digests")

__all__ = ["KEY", "SharedDigests", "publish"]

KEY = "digests.json"
LIMIT = 900 * 1024


def document(book: DigestBook, limit: int = LIMIT) -> str:
    """The book as JSON within ``limit`` bytes, dropping the least recently used answers first."""
    entries = list(book.items())
    while True:
        text = json.dumps({"digests": {d: i.to_dict() for d, i in entries}}, sort_keys=True)
        if len(text) <= limit or not entries:
            return text
        entries = entries[len(entries) // 10 + 1 :]


def publish(rest: Rest, namespace: str, name: str, book: DigestBook) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "dlc-guard"}},
        "data": {KEY: document(book)},
    }
    path = f"{collection_path('', 'v1', 'configmaps', namespace)}/{name}"
    rest.request(
        "PATCH", path, body, [("fieldManager", "dlc-guard"), ("force", "true")], "application/apply-patch+yaml"
    )


class SharedDigests(NamedObjectWatch):
    name = "digest-watch"
    list_method = "list_namespaced_config_map"

    def __init__(self, namespace: str, configmap: str, book: DigestBook) -> None:
        super().__init__(namespace, configmap)
        self.book = book

    def changed(self, obj: Mapping[str, Any]) -> None:
        text = (obj.get("data") or {}).get(KEY)
        if not text:
            return
        try:
            problems = self.book.load(json.loads(text))
        except ValueError as exc:
            log.warning("shared digests in %s/%s are not JSON: %s", self.namespace, self.object_name, exc)
            return
        for p in problems:
            log.warning("shared digests: skipped %s", p)
