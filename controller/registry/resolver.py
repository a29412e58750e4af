"""Fill a :class:`~policy.digests.DigestBook` from registries, off the hot path.

The pure engine judges a digest-only reference from the book alone; this module puts answers
there. Lookups run in a small thread pool, one per digest at a time (concurrent asks share
it); a failure is remembered for ``retry_seconds`` so a missing digest does not cost every
admission a registry round trip. ``resolve_within`` is the webhook's way in: it waits at most
its budget, and a lookup still running then goes on and answers the next request.
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
from collections.abc import Iterable, Iterator, Mapping
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


class DigestResolver:
    def __init__(
        self,
        book: DigestBook,
        client: RegistryClient,
        workers: int = 4,
        retry_seconds: float = 300.0,
        store: FileStore | None = None,
    ) -> None:
        self.book = book
        self.client = client
        self.retry_seconds = retry_seconds
        self.store = store
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="digest")
        self._inflight: dict[str, concurrent.futures.Future[bool]] = {}
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self.lookups = 0
        if store is not None:
            store.load(book)

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

    def submit(self, ref: ImageReference, loc: Location) -> concurrent.futures.Future[bool]:
        assert ref.digest is not None
        with self._lock:
            running = self._inflight.get(ref.digest)
            if running is not None:
                return running
            future = self._pool.submit(self._resolve, ref, loc)
            self._inflight[ref.digest] = future
        return future

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
            self._failed_at[digest] = time.monotonic()
            log.info("digest lookup failed", extra={"image": ref.original, "reason": str(exc)})
            return False
        except Exception as exc:  # never let a lookup thread die silently
            self.book.fail(digest, f"lookup error: {type(exc).__name__}: {exc}")
            self._failed_at[digest] = time.monotonic()
            log.exception("digest lookup crashed", extra={"image": ref.original})
            return False
        finally:
            with self._lock:
                self._inflight.pop(digest, None)
        self.book.put(digest, ident)
        self._failed_at.pop(digest, None)
        log.info("digest resolved", extra={"image": ref.original, "tag": ident.tag, "source": ident.source})
        if self.store is not None:
            try:
                self.store.save(self.book)
            except OSError as exc:
                log.warning("cannot save the digest cache: %s", exc)
        return True

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
        pending = {asyncio.wrap_future(self.submit(ref, loc)): ref for ref, loc in wanted}
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
        self._pool.shutdown(wait=False, cancel_futures=True)
