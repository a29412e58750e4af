"""Fill a :class:`~policy.digests.DigestBook` from registries, off the hot path.

The pure engine judges a digest-only reference from the book alone; this module puts answers
there. Lookups run on a few worker threads from a bounded queue (see :class:`DigestResolver`),
one per digest at a time (concurrent asks share it); a failure is remembered for
``retry_seconds`` so a missing digest does not cost every admission a registry round trip.
``resolve_within`` is the webhook's way in: it waits at most its budget, and a lookup still
running then goes on and answers the next request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.registry.oci import RegistryClient, RegistryError
from policy.digests import DigestBook
from policy.evaluate import Engine
from policy.policy import Policy
from policy.reference import ImageReference, InvalidReference, parse_reference
from policy.registries import Location, identify
from policy.workloads import containers_of, pod_spec_paths

log = logging.getLogger("dlc_guard.digests")

__all__ = ["DigestResolver", "FileStore", "images_of"]
FAILURES_KEPT = 8192
"""Recent failures remembered (not asked again for ``retry_seconds``); the oldest go first."""


def images_of(items: Iterable[object], policy: Policy) -> Iterator[str]:
    """Every container image of the pod-bearing objects among ``items`` (documents or objects)."""
    for item in items:
        obj = getattr(item, "obj", item)
        if not isinstance(obj, Mapping):
            continue
        paths = pod_spec_paths(str(obj.get("kind") or ""), policy.custom_kinds)
        if paths is not None:
            yield from (c.image for c in containers_of(obj, paths))


class FileStore:
    """The book on disk as JSON (written atomically), for the CLI and single-process use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self, book: DigestBook) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("digest cache %s unreadable, starting empty: %s", self.path, exc)
            return
        for problem in book.load(raw):
            log.warning("digest cache %s: skipped %s", self.path, problem)

    def save(self, book: DigestBook) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".digests-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(book.to_dict(), f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


@dataclass(eq=False)
class _Job:
    ref: ImageReference
    loc: Location
    future: concurrent.futures.Future[bool]
    seq: int
    deadline: float | None
    """Someone (an admission review) waits for the answer until then."""

    @property
    def registry(self) -> str:
        return self.ref.registry

    def waited_on(self, now: float) -> bool:
        return self.deadline is not None and self.deadline > now


class DigestResolver:
    """Registry lookups on a few worker threads, from a bounded queue.

    - At most ``per_registry`` lookups run against one registry at a time, so that one slow or
      flooded registry leaves the other workers to the rest.
    - A lookup an admission review is waiting on goes first, newest first: during a flood the
      waiters of older ones have given up already (the budget is a second), and their lookups
      go on as background work, which is served oldest first.
    - At most ``max_queued`` lookups wait. Background work beyond is refused (the operator asks
      again at its next pass); a lookup admission waits on makes room by dropping the oldest
      background one, else the oldest waited-on one. Refused and dropped digests are
      ``unknown`` with that reason, and are asked again the next time they are seen.
    """

    def __init__(
        self,
        book: DigestBook,
        client: RegistryClient,
        workers: int = 4,
        retry_seconds: float = 300.0,
        store: FileStore | None = None,
        max_queued: int = 1024,
        per_registry: int = 2,
    ) -> None:
        self.book = book
        self.client = client
        self.retry_seconds = retry_seconds
        self.store = store
        self.max_queued = max_queued
        self.per_registry = per_registry
        self._queued: dict[str, _Job] = {}
        self._running: dict[str, int] = {}
        self._inflight: dict[str, concurrent.futures.Future[bool]] = {}
        self._failed_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Condition()
        self._seq = 0
        self._closed = False
        self._workers = [threading.Thread(target=self._work, name=f"digest-{i}", daemon=True) for i in range(workers)]
        for t in self._workers:
            t.start()
        self.lookups = 0
        self.refused = 0
        self.dropped = 0
        if store is not None:
            store.load(book)

    def queued(self) -> int:
        return len(self._queued)

    def wanted(self, engine: Engine, images: Iterable[str]) -> list[tuple[ImageReference, Location]]:
        """The digest-pinned DLC references among ``images`` (with a tag or without: the digest
        decides what runs) that the book cannot answer yet."""
        out: dict[str, tuple[ImageReference, Location]] = {}
        now = time.monotonic()
        for text in images:
            if "@" not in text:
                continue
            try:
                ref = parse_reference(text)
            except InvalidReference:
                continue
            if ref.digest is None or ref.digest in self.book or ref.digest in out:
                continue
            if now - self._failed_at.get(ref.digest, -1e18) < self.retry_seconds:
                continue  # failed recently: the book keeps the reason
            loc = identify(ref, engine.catalog, engine.mirrors)
            if loc is not None and loc.families:
                out[ref.digest] = (ref, loc)
        return list(out.values())

    def submit(
        self, ref: ImageReference, loc: Location, wait_until: float | None = None
    ) -> concurrent.futures.Future[bool]:
        """Queue a lookup (shared with one already queued or running for the digest); with
        ``wait_until`` (a ``time.monotonic()`` deadline) someone waits for it until then."""
        assert ref.digest is not None
        digest = ref.digest
        with self._lock:
            running = self._inflight.get(digest)
            if running is not None:
                job = self._queued.get(digest)
                if job is not None and wait_until is not None:
                    job.deadline, job.seq = max(job.deadline or 0.0, wait_until), self._next()
                    self._lock.notify()
                return running
            future: concurrent.futures.Future[bool] = concurrent.futures.Future()
            if self._closed:
                future.set_result(False)
                return future
            if len(self._queued) >= self.max_queued and not self._make_room(wait_until is not None):
                self.refused += 1
                self.book.fail(digest, "too many registry lookups queued; asked again when next seen")
                future.set_result(False)
                return future
            self._queued[digest] = _Job(ref, loc, future, self._next(), wait_until)
            self._inflight[digest] = future
            self._lock.notify()
        return future

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _make_room(self, waited_on: bool) -> bool:
        """(Locked) drop one queued lookup for a new one admission waits on."""
        if not waited_on:
            return False
        now = time.monotonic()
        jobs = list(self._queued.values())
        background = [j for j in jobs if not j.waited_on(now)]
        victim = min(background or jobs, key=lambda j: j.seq)
        digest = victim.ref.digest
        assert digest is not None
        del self._queued[digest]
        self._inflight.pop(digest, None)
        self.dropped += 1
        self.book.fail(digest, "dropped from a full registry lookup queue; asked again when next seen")
        victim.future.set_result(False)
        return True

    def _take(self) -> _Job | None:
        """(Locked) the next lookup a worker may run, or ``None``."""
        now = time.monotonic()

        def order(job: _Job) -> tuple[bool, int]:
            # waited on first, newest first; then background work, oldest first
            waited = job.waited_on(now)
            return (not waited, -job.seq if waited else job.seq)

        free = (j for j in self._queued.values() if self._running.get(j.registry, 0) < self.per_registry)
        return min(free, key=order, default=None)

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._take()
                while job is None:
                    if self._closed:
                        return
                    self._lock.wait(1.0)
                    job = self._take()
                digest = job.ref.digest
                assert digest is not None
                del self._queued[digest]
                self._running[job.registry] = self._running.get(job.registry, 0) + 1
            try:
                ok = self._resolve(job.ref, job.loc)
            except BaseException as exc:  # never lose a waiter
                job.future.set_exception(exc)
            else:
                job.future.set_result(ok)
            finally:
                with self._lock:
                    self._running[job.registry] -= 1
                    if not self._running[job.registry]:
                        del self._running[job.registry]
                    self._inflight.pop(digest, None)
                    self._lock.notify_all()

    def _resolve(self, ref: ImageReference, loc: Location) -> bool:
        assert ref.digest is not None
        digest = ref.digest
        try:
            self.lookups += 1
            # the tag the reference names first: it is the likeliest to point at the digest
            candidates = [
                *([ref.tag] if ref.tag else []),
                *(img.tag for fam in loc.families for img in sorted(fam.images, key=lambda i: i.order, reverse=True)),
            ]
            ident = self.client.resolve(ref.registry, ref.path, digest, candidates, loc.families[0].framework)
        except RegistryError as exc:
            self.book.fail(digest, str(exc))
            self._failed(digest)
            log.info("digest lookup failed", extra={"image": ref.original, "reason": str(exc)})
            return False
        except Exception as exc:  # never let a lookup thread die silently
            self.book.fail(digest, f"lookup error: {type(exc).__name__}: {exc}")
            self._failed(digest)
            log.exception("digest lookup crashed", extra={"image": ref.original})
            return False
        self.book.put(digest, ident)
        with self._lock:
            self._failed_at.pop(digest, None)
        log.info("digest resolved", extra={"image": ref.original, "tag": ident.tag, "source": ident.source})
        if self.store is not None:
            try:
                self.store.save(self.book)
            except OSError as exc:
                log.warning("cannot save the digest cache: %s", exc)
        return True

    def _failed(self, digest: str) -> None:
        with self._lock:
            self._failed_at[digest] = time.monotonic()
            self._failed_at.move_to_end(digest)
            while len(self._failed_at) > FAILURES_KEPT:
                self._failed_at.popitem(last=False)

    def resolve_all(self, engine: Engine, images: Iterable[str]) -> None:
        """Look up every unanswered digest and wait (the CLI)."""
        futures = [self.submit(ref, loc) for ref, loc in self.wanted(engine, images)]
        concurrent.futures.wait(futures)

    def start(self, engine: Engine, images: Iterable[str]) -> int:
        """Look up in the background (the operator); returns how many lookups were started."""
        wanted = self.wanted(engine, images)
        for ref, loc in wanted:
            self.submit(ref, loc)
        return len(wanted)

    async def resolve_within(self, engine: Engine, images: Iterable[str], budget: float) -> bool:
        """Wait at most ``budget`` seconds (the webhook); whether the book has news (an answer,
        or the reason there is none) for a digest it could not answer before."""
        wanted = self.wanted(engine, images)
        if not wanted:
            return False
        until = time.monotonic() + budget
        pending = {asyncio.wrap_future(self.submit(ref, loc, until)): ref for ref, loc in wanted}
        _, late = await asyncio.wait(pending, timeout=budget)
        for f in late:
            ref = pending[f]
            assert ref.digest is not None
            if ref.digest not in self.book:
                self.book.fail(
                    ref.digest,
                    f"the registry did not answer within the webhook's {budget:g}s budget; "
                    "the lookup goes on and later requests use its answer",
                )
        return True  # answers or reasons: either way the judgement changes

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for job in self._queued.values():
                job.future.set_result(False)
            self._queued.clear()
            self._inflight.clear()
            self._lock.notify_all()
