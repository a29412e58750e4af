"""``python -m bench --hostile``: what a hostile caller makes a real ``dlc-guard webhook``
process hold, and whether normal reviews get through meanwhile. One run, five figures:

- RSS with 1,000 idle connections open (and the cap's evictions);
- RSS after 1,000 reviews with unique 1 MB images;
- /metrics size after 10,000 unique ``kind`` values;
- latency of normal reviews during a 600-connection slowloris (headers trickled byte by byte,
  connections reopened as the webhook closes them);
- failed reviews during a rolling restart: a second process started, the first sent SIGTERM,
  traffic routed by readiness the way the endpoints controller routes a Service.

RSS is read from ``/proc/PID/status``; the chart's memory limit (256 MiB) is the yardstick.
"""

from __future__ import annotations

import http.client
import json
import resource
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster import stop as stop_process
from tests.tls import write_cert
from tests.webhookproc import Webhook, launch, review

LIMIT_MIB = 256
"""The chart's memory limit for a webhook replica."""


OLD = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.6.0-gpu-py312"


def start(tmp: Path, cert: Path, key: Path, name: str, *args: str) -> Webhook:
    directory = tmp / name
    directory.mkdir()
    return launch(directory, *args, cert=(cert, key))


def rss_mib(w: Webhook) -> float:
    return round(w.rss_kib() / 1024, 1)


def post(w: Webhook, conn: http.client.HTTPSConnection, body: bytes) -> int:
    return w.post(conn, body)[0]


def idle_connections(p: Webhook, n: int = 1000) -> dict[str, Any]:
    base = rss_mib(p)
    held = []
    for _ in range(n):
        s = p.ctx().wrap_socket(
            socket.create_connection(("127.0.0.1", p.port), timeout=10), server_hostname="127.0.0.1"
        )
        held.append(s)
    time.sleep(1.0)
    rss = rss_mib(p)
    for s in held:
        s.close()
    return {"connections": n, "rss_before_mib": base, "rss_mib": rss}


def unique_huge_images(p: Webhook, n: int = 1000) -> dict[str, Any]:
    conn = p.connection()
    prefix = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:"
    for i in range(n):
        post(p, conn, review(f"{prefix}{i:06d}" + "y" * (1 << 20)))
    conn.close()
    return {"images": n, "image_bytes": 1 << 20, "rss_mib": rss_mib(p)}


def unique_kinds(p: Webhook, n: int = 10_000) -> dict[str, Any]:
    conn = p.connection()
    for i in range(n):
        post(p, conn, review("nginx:1.27", kind=f"Kind{i}"))
    conn.close()
    with urllib.request.urlopen(f"https://127.0.0.1:{p.port}/metrics", context=p.ctx(), timeout=10) as r:
        size = len(r.read())
    return {"kinds": n, "metrics_bytes": size, "rss_mib": rss_mib(p)}


def slowloris(p: Webhook, attackers: int = 600, reviews: int = 500) -> dict[str, Any]:
    stop = threading.Event()
    opened = [0]

    def attack() -> None:
        socks: list[ssl.SSLSocket] = []
        while not stop.is_set():
            while len(socks) < attackers and not stop.is_set():
                try:
                    s = p.ctx().wrap_socket(
                        socket.create_connection(("127.0.0.1", p.port), timeout=5), server_hostname="127.0.0.1"
                    )
                    s.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\n")
                    socks.append(s)
                    opened[0] += 1
                except OSError:
                    break
            alive = []
            for s in socks:
                try:
                    s.sendall(b"X")  # one header byte at a time, for ever
                    alive.append(s)
                except OSError:
                    s.close()
            socks = alive
            time.sleep(0.5)
        for s in socks:
            s.close()

    t = threading.Thread(target=attack, daemon=True)
    t.start()
    time.sleep(3.0)  # the flood at full strength
    latencies, failures = [], 0
    conn = p.connection()
    body = review(OLD)
    for _ in range(reviews):
        started = time.perf_counter()
        try:
            ok = post(p, conn, body) == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = p.connection()
        if ok:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failures += 1
        time.sleep(0.01)
    conn.close()
    rss = rss_mib(p)
    stop.set()
    t.join(30)
    latencies.sort()
    pct = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else None  # noqa: E731
    return {
        "attackers": attackers,
        "attacker_connections_opened": opened[0],
        "reviews": reviews,
        "failed": failures,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "rss_mib": rss,
    }


def rolling_restart(tmp: Path, cert: Path, key: Path, seconds_after: float = 8.0) -> dict[str, Any]:
    """Reviews from 4 threads to whichever endpoints are ready (polled every 0.5 s, as the
    endpoints controller follows readiness); a new process starts, the old one gets SIGTERM."""
    old = start(tmp, cert, key, "old", "--drain-seconds=5")
    endpoints = [old]
    lock = threading.Lock()
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    errors: list[str] = []

    def route() -> None:
        while not stop.is_set():
            with lock:
                candidates = list(endpoints)
            ready = [e for e in candidates if e.ready()]
            with lock:
                endpoints[:] = ready or endpoints
            time.sleep(0.5)

    def load(i: int) -> None:
        conns: dict[int, http.client.HTTPSConnection] = {}
        n = 0
        while not stop.is_set():
            with lock:
                e = endpoints[n % len(endpoints)]
            n += 1
            conn = conns.get(e.port) or conns.setdefault(e.port, e.connection())
            try:
                status = post(e, conn, review(OLD))
                ok = status == 200
                if not ok:
                    errors.append(f"HTTP {status}")
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                errors.append(type(exc).__name__)
                conns.pop(e.port, None)
            counts["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=route, daemon=True)] + [
        threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)
    ]
    for t in threads:
        t.start()
    time.sleep(2.0)
    new = start(tmp, cert, key, "new", "--drain-seconds=5")
    with lock:
        endpoints.append(new)
    time.sleep(1.0)
    old.proc.send_signal(signal.SIGTERM)
    time.sleep(seconds_after)
    stop.set()
    for t in threads:
        t.join(30)
    old_exit = old.proc.wait(30)
    stop_process(new.proc)
    return {
        "reviews": counts["ok"] + counts["failed"],
        "failed": counts["failed"],
        "errors": sorted(set(errors))[:5],
        "old_exit": old_exit,
    }


def run() -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    with tempfile.TemporaryDirectory(prefix="dlc-guard-hostile-") as d:
        tmp = Path(d)
        cert, key = write_cert(tmp)
        out: dict[str, Any] = {"memory_limit_mib": LIMIT_MIB}
        for name, fn in (
            ("idle", idle_connections),
            ("huge_images", unique_huge_images),
            ("kinds", unique_kinds),
            ("slowloris", slowloris),
        ):
            p = start(tmp, cert, key, name)
            try:
                out[name] = fn(p)
            finally:
                stop_process(p.proc)
        out["restart"] = rolling_restart(tmp, cert, key)
    out["targets"] = {
        "rss_under_limit": all(
            out[k]["rss_mib"] < LIMIT_MIB * 0.75 for k in ("idle", "huge_images", "kinds", "slowloris")
        ),
        "metrics_le_1mb": out["kinds"]["metrics_bytes"] <= 1 << 20,
        "slowloris_p99_le_50ms": (out["slowloris"]["p99_ms"] or 1e9) <= 50 and out["slowloris"]["failed"] == 0,
        "restart_zero_failed": out["restart"]["failed"] == 0,
    }
    return out


def markdown(h: dict[str, Any]) -> str:
    i, g, k, s, r = h["idle"], h["huge_images"], h["kinds"], h["slowloris"], h["restart"]
    under = "< 192 MiB (3/4 of the limit)"
    rows = [
        (
            f"RSS with {i['connections']:,} idle TLS connections (at rest {i['rss_before_mib']} MiB)",
            f"{i['rss_mib']} MiB",
            under,
        ),
        (f"RSS after {g['images']:,} reviews with unique 1 MiB images", f"{g['rss_mib']} MiB", under),
        (f"/metrics after {k['kinds']:,} unique kinds", f"{k['metrics_bytes']:,} bytes", "<= 1 MB"),
        (
            f"normal reviews during a {s['attackers']}-connection slowloris, p50 / p99",
            f"{s['p50_ms']} / {s['p99_ms']} ms, {s['failed']} of {s['reviews']} failed",
            "p99 <= 50 ms, none failed",
        ),
        ("RSS during that slowloris", f"{s['rss_mib']} MiB", under),
        ("rolling restart under load (new process, SIGTERM)", f"{r['failed']} of {r['reviews']:,} failed", "0"),
    ]
    lines = ["| hostile load, real webhook process, default limits | figure | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    figures = run()
    print(json.dumps(figures, indent=2))
    print(markdown(figures))
    sys.exit(0 if all(figures["targets"].values()) else 1)
