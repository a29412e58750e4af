"""The operator's other writes, off the watch path: annotations and Events, paced.

kopf calls a handler per watched object, and an object's worker holds that event's body until
the handler returns and then some. A handler that waited on its own API writes would keep
thousands of bodies alive at first sight of a big cluster. Handlers only queue here; one task
writes, at the pace the reports keep (the same token bucket), a few at a time.

Annotations are queued by object and merged (the newer value of a key wins, a removal stays a
removal), so an object that changes twice before its write gets one patch. A write that fails
for a reason that may pass (no answer, 429, 5xx) is tried again after a pause; one the API
refuses (the object is gone, or the request is wrong) is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiolimiter import AsyncLimiter

from controller.kube.client import ClusterError

__all__ = ["Write", "WriteQueue", "paced", "sleep"]

log = logging.getLogger("dlc_guard.operator.writes")

T = TypeVar("T")
EVENTS_KEPT = 10_000
"""Events waiting beyond this are dropped, oldest first (they announce; the annotations record)."""


@dataclass(slots=True)
class Write:
    what: str
    """``annotations`` or ``event`` (the metric's label)."""
    describe: str
    send: Callable[[], Any]
    """Blocking: makes the request (raises :class:`ClusterError`)."""
    patch: dict[str, str | None] = field(default_factory=dict)


class WriteQueue:
    def __init__(self, limiter: AsyncLimiter, concurrency: int, count: Callable[[str, str], None]) -> None:
        self.limiter = limiter
        self.concurrency = concurrency
        self.count = count
        self._annotations: dict[str, Write] = {}
        self._events: deque[Write] = deque(maxlen=EVENTS_KEPT)
        self.wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._annotations) + len(self._events)

    def annotate(self, key: str, patch: dict[str, str | None], send: Callable[[dict[str, str | None]], Any]) -> None:
        """Queue ``patch`` for the object ``key`` (merged into one waiting for it)."""
        waiting = self._annotations.get(key)
        merged = {**(waiting.patch if waiting else {}), **patch}
        self._annotations[key] = Write("annotations", key, lambda: send(merged), merged)
        self.wake.set()

    def event(self, describe: str, send: Callable[[], Any]) -> None:
        self._events.append(Write("event", describe, send))
        self.wake.set()

    def clear(self) -> None:
        self._annotations.clear()
        self._events.clear()

    def _take(self, n: int) -> list[Write]:
        out: list[Write] = []
        while len(out) < n and self._events:
            out.append(self._events.popleft())
        for key in list(self._annotations)[: n - len(out)]:
            out.append(self._annotations.pop(key))
        return out

    def _again(self, w: Write) -> None:
        if w.what == "event":
            self._events.appendleft(w)
        elif w.describe not in self._annotations:  # a newer patch has it merged already
            self._annotations[w.describe] = w

    async def _one(self, w: Write) -> float:
        try:
            await asyncio.to_thread(w.send)
        except ClusterError as exc:
            self.count(w.what, "error")
            if exc.status and exc.status < 500 and exc.status != 429:
                log.warning("cannot write %s of %s: %s", w.what, w.describe, exc)
                return 0.0
            self._again(w)
            log.warning("cannot write %s of %s (will retry): %s", w.what, w.describe, exc)
            return exc.retry_after or 1.0
        self.count(w.what, "ok")
        return 0.0

    async def run(self, stop: asyncio.Event, active: Callable[[], bool]) -> None:
        while not stop.is_set():
            batch = self._take(self.concurrency) if active() else []
            if not batch:
                self.wake.clear()
                await sleep(stop, self.wake, 1.0)
                continue
            pause = await paced(self.limiter, batch, self._one)
            if pause:
                await sleep(stop, asyncio.Event(), pause)


async def paced(limiter: AsyncLimiter, items: list[T], one: Callable[[T], Coroutine[Any, Any, float]]) -> float:
    """Send ``items`` through ``one`` side by side, each once the bucket gives it a token; the
    longest pause any of them asked for before the next batch."""
    tasks: list[asyncio.Task[float]] = []
    for item in items:
        await limiter.acquire()
        tasks.append(asyncio.create_task(one(item)))
    return max(await asyncio.gather(*tasks), default=0.0)


async def sleep(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Up to ``seconds``, less when told to stop or to wake."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
