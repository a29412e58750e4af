"""The webhook's TLS listener: every connection is counted from the moment it is accepted and
every one is bounded in time, so that no caller can hold the process's memory.

asyncio's TLS layer allocates a 256 KiB read buffer per connection at accept, before the
handshake; 800 idle connections cost ~290 MB. Here each accepted socket gets a
:class:`GuardedTLS` (asyncio's own TLS protocol, with a smaller buffer) that registers a
:class:`Slot`. The :class:`ConnectionGuard` then

- caps open connections at ``max_connections``. A connection arriving at the cap first makes
  room by closing the connection that has waited longest without a request in progress (an idle
  keep-alive or a slow sender); only when every connection is busy is the newcomer answered
  ``503``, and the next newcomer takes its place (so at most one connection is over the cap);
- closes a connection whose handshake and request headers have not arrived within
  ``header_seconds`` of its first byte, and an idle keep-alive after ``idle_seconds``;
- leaves the body to the handler, which reads it within ``body_seconds``.

The handler marks a slot busy for the length of a review (:meth:`ConnectionGuard.busy`), and
can ask whether its connection was admitted over the cap (:attr:`Slot.shed`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from asyncio.sslproto import SSLProtocol
from collections.abc import Callable
from typing import Any

from aiohttp import web

from controller.webhook.limits import Limits

log = logging.getLogger("dlc_guard.webhook")


class Slot:
    __slots__ = ("busy", "key", "rx_since", "shed", "since", "transport")

    def __init__(self, transport: asyncio.Transport, key: Any, now: float) -> None:
        self.transport = transport
        self.key = key
        """What the handler finds it by: the connection's HTTP protocol object (``request.protocol``)."""
        self.since = now
        """Accepted, or last answered."""
        self.rx_since: float | None = None
        """First byte received since ``since`` (``None``: silent since)."""
        self.busy = False
        self.shed = False

    def evict_order(self) -> tuple[bool, float]:
        """Shed connections first, then by when the connection started waiting for a complete
        request (older first)."""
        return (not self.shed, self.since if self.rx_since is None else self.rx_since)


class ConnectionGuard:
    def __init__(
        self, limits: Limits, ssl_context: ssl.SSLContext, count: Callable[[str], None] = lambda reason: None
    ) -> None:
        self.limits = limits
        self.ssl_context = ssl_context
        """Given to every new connection; replace it to serve a new certificate."""
        self.slots: dict[Any, Slot] = {}
        self.count = count
        """Called with ``evicted``, ``shed``, ``slow`` or ``idle`` for each such connection."""
        self._task: asyncio.Task[None] | None = None

    def factory(self, server: web.Server) -> Callable[[], GuardedTLS]:
        loop = asyncio.get_running_loop()

        def make() -> GuardedTLS:
            return GuardedTLS(self, loop, server(), self.ssl_context, self.limits)

        return make

    # slots, as the TLS layer sees them
    def opened(self, transport: asyncio.Transport, key: Any = None) -> Slot:
        """A socket was accepted: its slot (found again by ``key``, default the transport)."""
        now = time.monotonic()
        while len(self.slots) >= self.limits.max_connections:
            # a connection that will be shed anyway goes first, then the one waiting longest
            victim = min((s for s in self.slots.values() if not s.busy), key=Slot.evict_order, default=None)
            if victim is None:
                break
            self.count("evicted")
            self._close(victim)
        slot = Slot(transport, transport if key is None else key, now)
        if len(self.slots) >= self.limits.max_connections:
            slot.shed = True
            self.count("shed")
        self.slots[slot.key] = slot
        return slot

    def closed(self, slot: Slot) -> None:
        if self.slots.get(slot.key) is slot:
            del self.slots[slot.key]

    def _close(self, slot: Slot) -> None:
        self.closed(slot)
        slot.transport.abort()

    # the handler's view
    def slot_of(self, request: web.BaseRequest) -> Slot | None:
        return self.slots.get(request.protocol)

    def busy(self, slot: Slot | None, busy: bool) -> None:
        if slot is None:
            return
        slot.busy = busy
        if not busy:
            slot.since, slot.rx_since = time.monotonic(), None

    # the sweeper
    def sweep(self) -> None:
        now = time.monotonic()
        lim = self.limits
        for slot in list(self.slots.values()):
            if slot.busy:
                continue
            # a request begun but not complete in time (slow headers), or an idle keep-alive
            if slot.rx_since is None and now - slot.since > lim.idle_seconds:
                self.count("idle")
                self._close(slot)
            elif slot.rx_since is not None and now - slot.rx_since > lim.header_seconds:
                self.count("slow")
                self._close(slot)

    async def _sweeper(self) -> None:
        period = max(0.1, min(1.0, self.limits.header_seconds / 4))
        while True:
            await asyncio.sleep(period)
            self.sweep()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sweeper())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class GuardedTLS(SSLProtocol):
    """asyncio's TLS protocol, counted by the guard from accept to close."""

    max_size = 32 * 1024
    """The read buffer asyncio allocates per connection at accept (256 KiB upstream). A TLS
    record is at most 16 KiB; bigger reads only save a few loop turns on a 3 MiB body."""

    def __init__(
        self,
        guard: ConnectionGuard,
        loop: asyncio.AbstractEventLoop,
        app: asyncio.BaseProtocol,
        ctx: ssl.SSLContext,
        limits: Limits,
    ) -> None:
        # no waiter (nobody awaits the handshake; the guard sees the connection through its hooks);
        # typeshed wants a future there and an int timeout, the runtime takes None and any number
        super().__init__(
            loop,
            app,
            ctx,
            None,  # type: ignore[arg-type]
            server_side=True,
            ssl_handshake_timeout=limits.handshake_seconds,  # type: ignore[arg-type]
        )
        self._guard = guard
        self._app = app
        self._slot: Slot | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._slot = self._guard.opened(transport, self._app)
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._slot is not None:
            self._guard.closed(self._slot)
            self._slot = None
        super().connection_lost(exc)

    def buffer_updated(self, nbytes: int) -> None:
        slot = self._slot
        if slot is not None and slot.rx_since is None and not slot.busy:
            slot.rx_since = time.monotonic()
        super().buffer_updated(nbytes)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard` (TLS only)."""

    __slots__ = ("_bound_port", "_guard", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int) -> None:
        super().__init__(runner, backlog=128)
        self._guard = guard
        self._host, self._port = host, port
        self._bound_port: int | None = None

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        return self._bound_port if self._bound_port is not None else self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self._guard.factory(server), self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        sockets = getattr(self._server, "sockets", None) or []
        if sockets:
            self._bound_port = sockets[0].getsockname()[1]
        self._guard.start()

    async def stop(self) -> None:
        self._guard.stop()
        await super().stop()
