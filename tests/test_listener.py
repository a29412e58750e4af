"""The connection guard's choices and the decision cache's bound, without a network: which
connection makes room at the cap, when a newcomer is shed or refused, what the sweeper closes.
The transports are minimal stand-ins (an address and an abort); the real listener is exercised
against a real webhook process in ``test_hostile.py``."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from typing import Any

from controller.webhook.limits import Limits
from controller.webhook.listener import ConnectionGuard, Slot
from controller.webhook.review import Decision, DecisionCache
from policy.catalog import default_catalog
from policy.evaluate import Engine
from policy.policy import load_policy


class Transport:
    port = 40000

    def __init__(self) -> None:
        Transport.port += 1
        self.peer = ("127.0.0.1", Transport.port)
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def abort(self) -> None:
        self.aborted = True


def guard(**limits: Any) -> tuple[ConnectionGuard, list[str]]:
    counted: list[str] = []
    g = ConnectionGuard(Limits(**limits), ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), counted.append)
    return g, counted


def open_(g: ConnectionGuard) -> tuple[Transport, Slot]:
    t = Transport()
    return t, g.opened(t)  # type: ignore[arg-type]


def test_at_the_cap_the_longest_waiting_idle_connection_makes_room() -> None:
    g, counted = guard(max_connections=3)
    (t1, s1), (t2, s2), (t3, s3) = open_(g), open_(g), open_(g)
    s1.since -= 30  # idle longest
    s2.rx_since = s2.since - 60  # a slow sender that began long ago: longest of all
    g.busy(s3, True)
    _, s4 = open_(g)
    assert t2.aborted and not t1.aborted and not t3.aborted
    assert not s4.shed and counted == ["evicted"]
    assert len(g.slots) == 3


def test_when_every_connection_is_busy_a_newcomer_is_shed_and_the_next_takes_its_place() -> None:
    g, counted = guard(max_connections=2)
    for _ in range(2):
        _, s = open_(g)
        g.busy(s, True)
    shed_t, shed = open_(g)
    assert shed.shed  # answered 503 once its request arrives
    _, second = open_(g)
    assert second.shed and shed_t.aborted and len(g.slots) == 3  # never more than one over the cap
    assert counted == ["shed", "evicted", "shed"]
    # a busy connection answered goes back to waiting: room is made (the shed one first, then
    # the idle one) and the newcomer is served
    busy = next(s for s in g.slots.values() if s.busy)
    g.busy(busy, False)
    assert busy.rx_since is None and not busy.busy
    _, again = open_(g)
    assert second.transport.aborted and busy.transport.aborted  # type: ignore[attr-defined]
    assert not again.shed and len(g.slots) == 2


def test_the_sweeper_closes_slow_requests_and_idle_keepalives_but_not_busy_ones() -> None:
    g, counted = guard(header_seconds=5, idle_seconds=30)
    now = time.monotonic()
    (slow_t, slow), (idle_t, idle), (busy_t, busy), (fresh_t, fresh) = open_(g), open_(g), open_(g), open_(g)
    slow.rx_since = now - 6
    idle.since = now - 31
    g.busy(busy, True)
    busy.since = now - 600
    fresh.rx_since = now - 1
    g.sweep()
    assert slow_t.aborted and idle_t.aborted and not busy_t.aborted and not fresh_t.aborted
    assert sorted(counted) == ["idle", "slow"]
    assert set(g.slots.values()) == {busy, fresh}


def test_the_decision_cache_is_bounded_by_the_characters_it_keeps() -> None:
    engine = Engine(default_catalog(), dt.date(2026, 11, 23))
    policy = load_policy({}, "test")
    cache = DecisionCache(size=1000, max_key_chars=100, max_chars=250)
    d = Decision(uid="u", allowed=True)
    cache.get(engine, policy, "k0")  # binds the cache to this engine and policy
    for i in range(10):
        cache.put(f"k{i}", d, 80)
    kept = [i for i in range(10) if cache.get(engine, policy, f"k{i}") is not None]
    assert kept == [7, 8, 9]  # 3 x 80 characters fit in 250; the oldest went first
    cache.put("huge", d, 101)
    assert cache.get(engine, policy, "huge") is None
