"""Writing the workloads' reports: which APIs, what is already there, and at what pace.

- **APIs.** ``wgpolicyk8s`` (PolicyReport), ``openreports`` (Report), ``both``, or ``auto``: every
  one of the two the cluster serves, found by discovery and looked for again while none is.
- **What is there.** Before its first write, the writer lists the reports dlc-guard wrote before
  (metadata only, in pages) and tells the book their fingerprints, so a restart with nothing
  changed writes nothing. Namespace-wide reports of earlier versions are deleted.
- **Pace.** Writes leave at most ``writes_per_second`` (a token bucket, so a catalog change that
  touches every workload drains over minutes instead of at once), ``concurrency`` at a time, by
  server-side apply. A refused write is tried again after the server's ``Retry-After`` or a
  growing pause; a report the API rejects as invalid is logged and dropped, never retried forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiolimiter import AsyncLimiter
from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.kube.client import ClusterError, Rest, collection_path
from controller.operator.writes import paced
from controller.operator.writes import sleep as _wait
from policy.report import (
    FINGERPRINT,
    FLAVORS,
    LEGACY_NAME,
    MANAGED,
    OUTCOMES,
    RESOURCE_UID,
    SUMMARY,
    Flavor,
    Pending,
    ReportBook,
)

__all__ = ["ReportSettings", "ReportWriter"]

log = logging.getLogger("dlc_guard.operator.reports")

SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
PAGE = 500
FIELD_MANAGER = "dlc-guard"
GIVE_UP = (400, 403, 422)
"""Statuses that another try would not change (logged and dropped)."""


@dataclass
class ReportSettings:
    apis: str = "auto"
    writes_per_second: float = 50.0
    burst: int = 50
    concurrency: int = 4
    rediscover_seconds: float = 10.0
    max_pause: float = 30.0


def wanted(setting: str, served: set[str]) -> list[Flavor]:
    """The report APIs to write under ``setting``, given the ones the cluster serves."""
    names = {"auto": sorted(served), "both": ["openreports", "wgpolicyk8s"]}.get(setting, [setting])
    return [FLAVORS[n] for n in names if n in served]


class ReportWriter:
    """Drains a :class:`ReportBook` into the API. ``book_of`` gives the book in use (the operator
    starts a fresh one when it stands by); ``active`` says whether this replica may write."""

    def __init__(
        self,
        rest: Rest,
        book_of: Callable[[], ReportBook],
        settings: ReportSettings,
        namespaces: list[str],
        registry: CollectorRegistry,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.rest = rest
        self.book_of = book_of
        self.settings = settings
        self.namespaces = namespaces
        self.active = active
        self.flavors: list[Flavor] = []
        self.served: set[str] = set()
        self.seeded_book: ReportBook | None = None
        self.wake = asyncio.Event()
        self.limiter = AsyncLimiter(settings.burst, settings.burst / settings.writes_per_second)
        self._shown: set[str] = set()
        self.on_flavors: Callable[[], None] = lambda: None
        """Called when the APIs written change (the operator updates the policy's status)."""
        self.writes = Counter(
            "dlcguard_report_writes_total",
            "Report writes by API, verb and result",
            ["api", "verb", "result"],
            registry=registry,
        )
        self.backlog = Gauge("dlcguard_report_backlog", "Reports waiting to be written", registry=registry)
        self.results = Gauge(
            "dlcguard_report_results",
            "Results in the namespace's reports, by outcome",
            ["namespace", "result"],
            registry=registry,
        )

    # -- what the cluster serves ------------------------------------------------------------
    def describe(self) -> tuple[bool, str]:
        """For the policy's status: whether reports are written, and where."""
        if not self.flavors:
            served = ", ".join(sorted(self.served)) or "none"
            return False, f"reports: {self.settings.apis} asked, the cluster serves {served}: nothing is written"
        kinds = " and ".join(f"{f.api_version} {f.kind}s" for f in self.flavors)
        return True, f"reports: writing {kinds}, one per workload"

    def discover(self) -> None:
        served = set()
        for f in FLAVORS.values():
            try:
                doc = self.rest.request("GET", f"/apis/{f.group}/{f.version}", ok_missing=True)
            except ClusterError as exc:
                log.warning("cannot look up %s: %s", f.api_version, exc)
                continue
            plurals = {r.get("name") for r in (doc or {}).get("resources") or []}
            if f.plural in plurals:
                served.add(f.name)
        flavors = wanted(self.settings.apis, served)
        changed = flavors != self.flavors
        self.served, self.flavors = served, flavors
        if changed or not flavors:
            ok, message = self.describe()
            (log.info if ok else log.warning)("%s", message)
            self.seeded_book = None  # what is held must be read again for the new set of APIs
            self.on_flavors()

    # -- what is there already ----------------------------------------------------------------
    def _list(self, flavor: Flavor) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        scopes: list[str | None] = list(self.namespaces) or [None]
        plurals = [flavor.plural] + ([] if self.namespaces else [flavor.cluster_plural])
        for plural in plurals:
            for ns in scopes if plural == flavor.plural else [None]:
                path = collection_path(flavor.group, flavor.version, plural, ns)
                for page in self.rest.pages(path, [("labelSelector", SELECTOR)], PAGE, METADATA_ONLY):
                    items.extend(i.get("metadata") or {} for i in page.get("items") or [])
        return items

    def seed(self, book: ReportBook) -> list[tuple[Flavor, str, str]]:
        """Tell ``book`` what every written API holds; returns the legacy reports to delete."""
        seen: dict[tuple[str, str], list[tuple[str, str]]] = {}
        legacy = []
        for flavor in self.flavors:
            for meta in self._list(flavor):
                ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
                labels = meta.get("labels") or {}
                if name == LEGACY_NAME and RESOURCE_UID not in labels:
                    legacy.append((flavor, ns, name))
                    continue
                notes = meta.get("annotations") or {}
                held = (str(notes.get(FINGERPRINT) or ""), str(notes.get(SUMMARY) or ""))
                if _touched_by_others(meta):
                    held = ("", "")  # its fingerprint vouches only for what dlc-guard wrote: rewrite it
                seen.setdefault((ns, name), []).append(held)
        for (ns, name), fps in seen.items():
            # held alike in every API, or (fingerprint "") rewritten everywhere
            same = len(fps) == len(self.flavors) and len(set(fps)) == 1
            fp, counts = fps[0] if same else ("", "")
            book.seed(ns, name, fp, parse_summary(counts))
        log.info("found %d reports of ours, %d legacy namespace reports", len(seen), len(legacy))
        return legacy

    # -- writing ------------------------------------------------------------------------------
    def _path(self, flavor: Flavor, namespace: str, name: str) -> str:
        plural = flavor.plural if namespace else flavor.cluster_plural
        return f"{collection_path(flavor.group, flavor.version, plural, namespace or None)}/{name}"

    def write(self, item: Pending) -> None:
        """One workload's report into every API written (raises :class:`ClusterError`)."""
        for flavor in self.flavors:
            path = self._path(flavor, item.ref.namespace, item.ref.report_name)
            verb = "delete" if item.delete else "apply"
            try:
                if item.delete:
                    self.rest.request("DELETE", path, ok_missing=True)
                else:
                    self.rest.request(
                        "PATCH",
                        path,
                        item.document(flavor),
                        [("fieldManager", FIELD_MANAGER), ("force", "true")],
                        "application/apply-patch+yaml",
                    )
            except ClusterError:
                self.writes.labels(flavor.name, verb, "error").inc()
                raise
            self.writes.labels(flavor.name, verb, "ok").inc()

    async def _one(self, book: ReportBook, item: Pending) -> float:
        """Write one item; the pause asked for before the next (0: none)."""
        try:
            await asyncio.to_thread(self.write, item)
        except ClusterError as exc:
            if exc.status == 404 and not item.delete:
                book.forget(item.ref)  # its namespace is gone, and the workload with it
                return 0.0
            if exc.status in GIVE_UP:
                log.error("report of %s/%s refused, not retried: %s", item.ref.namespace, item.ref.key, exc)
                book.forget(item.ref)
                return 0.0
            book.failed(item)
            log.warning("cannot write the report of %s/%s (will retry): %s", item.ref.namespace, item.ref.key, exc)
            return exc.retry_after or 1.0
        book.written(item)
        return 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: discover, seed, then write what the book holds, paced."""
        s = self.settings
        pause = 0.0
        next_discovery = next_gauges = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                book = self.book_of()
                if not self.active():
                    self.seeded_book = None
                    await _wait(stop, self.wake, 1.0)
                    continue
                if not self.flavors and loop.time() >= next_discovery:
                    await asyncio.to_thread(self.discover)
                    next_discovery = loop.time() + s.rediscover_seconds
                if not self.flavors:
                    await _wait(stop, self.wake, 1.0)
                    continue
                if self.seeded_book is not book:
                    legacy = await asyncio.to_thread(self.seed, book)
                    for flavor, ns, name in legacy:
                        path = self._path(flavor, ns, name)
                        await asyncio.to_thread(self.rest.request, "DELETE", path, ok_missing=True)
                    self.seeded_book = book
                if not book.backlog or loop.time() >= next_gauges:
                    # the namespaces' sums: when idle, or once a second while writing, not per batch
                    self._gauges(book)
                    next_gauges = loop.time() + 1.0
                batch = book.take(s.concurrency)
                if not batch:
                    self.wake.clear()
                    await _wait(stop, self.wake, 1.0)
                    continue
                asked = await paced(self.limiter, batch, partial(self._one, book))
                # refused: wait what the server asked, doubling while it goes on refusing
                pause = min(max(asked, pause * 2), s.max_pause) if asked else 0.0
                if pause:
                    await _wait(stop, asyncio.Event(), pause)
            except ClusterError as exc:
                log.warning("report writer: %s", exc)
                await _wait(stop, asyncio.Event(), 5.0)
            except Exception:  # never let the writer die: log and go on
                log.exception("report writer failed")
                await _wait(stop, asyncio.Event(), 5.0)

    def _gauges(self, book: ReportBook) -> None:
        self.backlog.set(book.backlog)
        now = set(book.namespaces())
        for ns in self._shown - now:
            for outcome in OUTCOMES:
                self.results.remove(ns, outcome)
        for ns in now:
            for outcome, n in book.summary(ns).items():
                self.results.labels(ns, outcome).set(n)
        self._shown = now


def _touched_by_others(meta: dict[str, Any]) -> bool:
    """Whether anyone but dlc-guard has written fields of a report (its managed fields say so)."""
    return any(m.get("manager") != FIELD_MANAGER for m in meta.get("managedFields") or [])


def parse_summary(text: str) -> dict[str, int]:
    """The summary annotation (``pass,fail,warn,error,skip``); anything else reads as zeros."""
    parts = text.split(",")
    if len(parts) != len(OUTCOMES) or not all(p.isdigit() for p in parts):
        return {}
    return dict(zip(OUTCOMES, map(int, parts), strict=True))
