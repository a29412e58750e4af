"""Hostile load against a real ``dlc-guard webhook`` process: what a caller with only "create pod"
rights (or any pod that reaches port 8443) can make it hold. Memory is read from ``/proc``.

Covered here: unique huge image strings, unique ``kind``/``operation`` values in metrics labels,
huge values echoed into errors and logs, callers that go away mid-body, a connection flood, slow
headers, slow bodies and idle keep-alives, big bodies in flight, a certificate written with the
wrong key under load, SIGTERM under load, mTLS, and a digest flood against a real registry.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import stop
from tests.tls import write_cert, write_client_cert
from tests.webhookproc import Webhook, launch, review

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    w = launch(tmp_path_factory.mktemp("hostile"))
    try:
        yield w
    finally:
        stop(w.proc)


def test_unique_huge_image_strings_are_refused_and_not_kept(webhook: Webhook) -> None:
    conn = webhook.connection()
    prefix = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:"
    warm = prefix + "x" * (1 << 20)
    for _ in range(5):  # the process's buffers reach their working size first
        webhook.post(conn, review(warm + uuid.uuid4().hex))
    before = webhook.rss_kib()
    n = 150
    for i in range(n):
        status, body = webhook.post(conn, review(f"{prefix}{i:06d}" + "y" * (1 << 20)))
        assert status == 200
        resp = json.loads(body)["response"]
        assert resp["allowed"] is True  # invalid is not DLC-judged; it is refused by the API server
        assert len(body) < 4096, "the answer does not echo the megabyte back"
    grown = (webhook.rss_kib() - before) / 1024
    # each kept string would cost 1 MiB (150 MiB in all): allow for allocator noise only
    assert grown < 40, f"RSS grew {grown:.0f} MiB over {n} unique 1 MiB images"
    conn.close()


def test_metric_labels_come_from_known_sets(webhook: Webhook) -> None:
    conn = webhook.connection()
    for i in range(2000):
        webhook.post(conn, review("nginx:1.27", kind=f"Kind{i}x" * 4, operation=f"OP{i}"))
    conn.close()
    metrics = webhook.get("/metrics")
    assert len(metrics) < 64 * 1024, f"/metrics is {len(metrics)} bytes after 2000 unique kinds"
    assert b'kind="other"' in metrics and b'operation="other"' in metrics
    assert b"Kind1999x" not in metrics


def test_huge_values_are_not_echoed_into_answers_or_logs(webhook: Webhook) -> None:
    conn = webhook.connection()
    huge = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "K" * (2 << 20), "request": {}}).encode()
    for _ in range(30):
        status, body = webhook.post(conn, huge)
        assert status == 400 and len(body) < 1024
    conn.close()
    time.sleep(0.2)
    lines = [ln for ln in webhook.log.read_text().splitlines() if "bad admission request" in ln]
    assert lines and all(len(ln) < 1024 for ln in lines)
    assert len(lines) <= 12, f"{len(lines)} log lines for 30 bad requests: repeated errors are rate-limited"


def test_a_caller_that_goes_away_mid_body_costs_one_short_line(webhook: Webhook) -> None:
    before = webhook.log.read_text()
    for _ in range(20):
        raw = socket.create_connection(("127.0.0.1", webhook.port))
        s = webhook.ctx().wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"kind":'
        )
        s.close()
    time.sleep(1.0)
    added = webhook.log.read_text()[len(before) :]
    assert "Traceback" not in added, added[:2000]
    assert len(added.splitlines()) <= 12, added[:2000]
    assert webhook.proc.poll() is None
    assert webhook.get("/healthz") == b"ok"


def metric(w: Webhook, name: str) -> float:
    """The sum of a metric's samples on /metrics."""
    total = 0.0
    for line in w.get("/metrics").decode().splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def many_files() -> Iterator[None]:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_tls(w: Webhook, first: bytes = b"") -> ssl.SSLSocket:
    s = w.ctx().wrap_socket(socket.create_connection(("127.0.0.1", w.port), timeout=30), server_hostname="127.0.0.1")
    if first:
        s.sendall(first)
    return s


def closed_by_server(s: socket.socket, within: float) -> tuple[bool, bytes]:
    """Whether the server closed ``s`` within ``within`` seconds, and what it sent first."""
    s.settimeout(within)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got
    except (ConnectionError, ssl.SSLError):
        return True, got


def test_a_connection_flood_is_capped_and_reviews_still_answered(tmp_path: Path, many_files: None) -> None:
    cap = 150
    w = launch(tmp_path, f"--max-connections={cap}")
    try:
        conn = w.connection()
        w.post(conn, review("nginx:1.27"))
        conn.close()
        before = w.rss_kib()
        held: list[socket.socket] = []
        # 900 sockets that never start TLS, then 300 that finish it and sit on half a request
        for _ in range(900):
            held.append(socket.create_connection(("127.0.0.1", w.port), timeout=30))
        for _ in range(300):
            held.append(open_tls(w, b"POST /validate HTTP/1.1\r\nHost: x\r\n"))
        time.sleep(1.0)
        grown = (w.rss_kib() - before) / 1024
        # each connection asyncio holds costs ~300 KiB upstream (1200 of them: ~350 MiB)
        assert grown < 48, f"RSS grew {grown:.0f} MiB with 1200 connections open"
        assert metric(w, "dlcguard_connections_open") <= cap + 32
        assert metric(w, "dlcguard_connections_closed_total") >= 1200 - cap - 32
        # the flood is still open, and a caller with a real review gets its answer
        image = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:1.13-cpu"
        for _ in range(20):
            conn = w.connection()
            status, body = w.post(conn, review(image))
            assert status == 200 and json.loads(body)["response"]["uid"]
            conn.close()
        for s in held:
            s.close()
    finally:
        stop(w.proc)


def test_slow_headers_slow_bodies_and_idle_connections_are_cut_off(tmp_path: Path) -> None:
    w = launch(tmp_path, "--header-timeout=1", "--body-timeout=1", "--idle-timeout=2")
    try:
        # headers trickled a byte at a time: closed once they take longer than the header timeout
        trickle = open_tls(w, b"POST /validate HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        for ch in b"Host: x\r\nX-Slow: " + b"a" * 40:
            try:
                trickle.sendall(bytes([ch]))
            except (ConnectionError, ssl.SSLError):
                closed = True
                break
            time.sleep(0.1)
        if not closed:
            closed, _ = closed_by_server(trickle, 3)
        assert closed and time.monotonic() - started < 4.5, "slow headers were held"
        # a body promised and not sent: 408 after the body timeout
        slow = open_tls(w, b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        started = time.monotonic()
        closed, sent = closed_by_server(slow, 5)
        assert closed and sent.startswith(b"HTTP/1.1 408"), sent[:200]
        assert time.monotonic() - started < 4
        # an idle keep-alive is closed after the idle timeout, not before
        idle = w.connection()
        assert w.post(idle, review("nginx:1.27"))[0] == 200
        time.sleep(1.0)
        assert w.post(idle, review("nginx:1.27"))[0] == 200, "reused within the idle timeout"
        assert idle.sock is not None
        closed, _ = closed_by_server(idle.sock, 4)
        assert closed, "an idle keep-alive was kept past the idle timeout"
        assert metric(w, 'dlcguard_connections_closed_total{reason="slow"}') >= 1
        assert metric(w, 'dlcguard_connections_closed_total{reason="idle"}') >= 1
    finally:
        stop(w.proc)


def test_big_bodies_in_flight_are_bounded_by_the_body_budget(tmp_path: Path) -> None:
    w = launch(tmp_path, "--body-budget=8", "--body-timeout=20")
    try:
        size = 3_000_000
        head = f"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
        started = [open_tls(w, head + b'{"a": "' + b"x" * 1000) for _ in range(4)]
        time.sleep(0.5)
        # two 3 MB bodies fit in 8 MiB; the others are shed at once instead of being buffered
        answers = [closed_by_server(s, 2) for s in started]
        shed = [sent for closed, sent in answers if sent.startswith(b"HTTP/1.1 503")]
        assert len(shed) == 2, [sent[:40] for _, sent in answers]
        # the two that fit are still being read; a small review is answered beside them
        conn = w.connection()
        assert w.post(conn, review("nginx:1.27"))[0] == 200
        conn.close()
        for s in started:
            s.close()
        time.sleep(0.5)
        # the budget came back when those callers went away
        again = open_tls(w, head + b"{")
        assert closed_by_server(again, 1) == (False, b""), "a body that fits is read, not shed"
        again.close()
    finally:
        stop(w.proc)


class Load:
    """Reviews sent without pause from a few threads (new connections and kept-alive ones), each
    outcome recorded; ``stop()`` ends the load."""

    def __init__(self, w: Webhook, threads: int = 4, fresh_every: int = 3) -> None:
        import threading

        self.w, self.fresh_every = w, fresh_every
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        conn: http.client.HTTPSConnection | None = None
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                if conn is None or n % self.fresh_every == 0:
                    if conn is not None:
                        conn.close()
                    conn = self.w.connection()
                status, _ = self.w.post(conn, review("nginx:1.27"))
                outcome = None if status == 200 else f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"{type(exc).__name__}: {exc}"
                conn = None
            with self._lock:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failures.append(outcome)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def progresses(self, seconds: float) -> bool:
        """Whether reviews are still being answered: more succeed over the next ``seconds``."""
        before = self.ok
        time.sleep(seconds)
        return self.ok > before


def test_a_certificate_written_with_the_wrong_key_leaves_the_served_pair_working(tmp_path: Path) -> None:
    cert, key = write_cert(tmp_path)
    w = launch(tmp_path, cert=(cert, key))
    try:
        load = Load(w)
        try:
            time.sleep(0.5)
            other = tmp_path / "other"
            other.mkdir()
            new_cert, new_key = write_cert(other, "rotated")
            # the certificate arrives first, its key later (or never): the old pair must go on serving
            os.replace(new_cert, cert)
            deadline = time.monotonic() + 15
            while "certificate reload failed" not in w.log.read_text():
                assert time.monotonic() < deadline, w.log.read_text()[-2000:]
                time.sleep(0.2)
            assert load.progresses(1.5), "reviews went on after the failed reload"
        finally:
            load.stop()
        assert not load.failures, load.failures[:5]
        # the matching key lands: the new pair is served
        os.replace(new_key, key)
        trust_new = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 15
        while True:
            try:
                with (
                    socket.create_connection(("127.0.0.1", w.port), timeout=5) as raw,
                    trust_new.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    break
            except ssl.SSLError:
                assert time.monotonic() < deadline, "the new pair was never served"
                time.sleep(0.2)
    finally:
        stop(w.proc)


def test_sigterm_under_load_drains_without_a_failed_review(tmp_path: Path) -> None:
    import signal

    w = launch(tmp_path, "--drain-seconds=3")
    load = Load(w)
    try:
        time.sleep(0.5)
        w.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # unready at once: the endpoints controller takes the pod out of the Service
        deadline = signalled + 2
        while True:
            try:
                w.get("/readyz")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                break
            assert time.monotonic() < deadline, "still ready after SIGTERM"
            time.sleep(0.05)
        # callers keep arriving for a while, as they would until routing moves away
        time.sleep(1.5)
        assert load.progresses(0.5), "reviews were still answered during the drain"
    finally:
        load.stop()
    assert not load.failures, load.failures[:5]
    assert w.proc.wait(30) == 0
    assert time.monotonic() - signalled >= 3, "stopped before the drain period ended"
    assert "Traceback" not in w.log.read_text()


def test_client_ca_admits_only_callers_with_its_certificate(tmp_path: Path) -> None:
    ca, client_cert, client_key = write_client_cert(tmp_path)
    w = launch(tmp_path, f"--client-ca={ca}")
    try:
        # the kubelet's probes present no certificate: health and readiness still answer
        assert w.get("/readyz") == b"ready"
        anonymous = w.connection()
        status, body = w.post(anonymous, review("nginx:1.27"))
        assert status == 403 and b"client certificate" in body
        anonymous.close()
        # the API server's client certificate (signed by the CA) is admitted
        ctx = w.ctx()
        ctx.load_cert_chain(str(client_cert), str(client_key))
        conn = http.client.HTTPSConnection("127.0.0.1", w.port, context=ctx, timeout=30)
        status, body = w.post(conn, review("nginx:1.27"))
        assert status == 200 and json.loads(body)["response"]["allowed"] is True
        conn.close()
        # a certificate from any other CA fails the handshake
        other_dir = tmp_path / "other"
        other_dir.mkdir()
        _, other_cert, other_key = write_client_cert(other_dir)
        ctx = w.ctx()
        ctx.load_cert_chain(str(other_cert), str(other_key))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            conn = http.client.HTTPSConnection("127.0.0.1", w.port, context=ctx, timeout=30)
            w.post(conn, review("nginx:1.27"))
    finally:
        stop(w.proc)


def test_a_digest_flood_is_queued_within_bounds_and_admission_lookups_still_answered(tmp_path: Path) -> None:
    from tests.registry import PYTORCH_26_LABELS, available, registry, silent_server

    if available() is not None:
        pytest.skip(str(available()))
    with registry(tmp_path / "registry") as reg, silent_server() as slow:
        real = reg.image("dlc/pytorch-training", PYTORCH_26_LABELS, salt="flood")
        policy = f"spec:\n  mode: enforce\n  mirrors: ['{slow}/dlc', '{reg.host}/dlc']\n"
        w = launch(
            tmp_path,
            "--resolve-digests",
            f"--registry-ca={reg.ca}",
            "--digest-cache=none",
            "--digest-budget=0.05",
            policy_text=policy,
        )
        try:
            conn = w.connection()
            # 3,000 unique digests at a registry that never answers, 100 per pod
            for r in range(30):
                images = [f"{slow}/dlc/pytorch-training@sha256:{r:032x}{i:032x}" for i in range(100)]
                body = json.loads(review("nginx:1.27"))
                body["request"]["object"]["spec"]["containers"] = [
                    {"name": f"c{i}", "image": im} for i, im in enumerate(images)
                ]
                status, _ = w.post(conn, json.dumps(body).encode())
                assert status == 200
            assert metric(w, "dlcguard_digest_lookups_queued") <= 1024, "the lookup queue is bounded"
            # a review that waits on a digest at the other registry still gets its answer in time
            status, answer = w.post(conn, review(f"{reg.host}/dlc/pytorch-training@{real}"))
            resp = json.loads(answer)["response"]
            deadline = time.monotonic() + 10
            while resp["allowed"] and time.monotonic() < deadline:  # the budget is 50 ms: a retry or two
                time.sleep(0.2)
                resp = json.loads(w.post(conn, review(f"{reg.host}/dlc/pytorch-training@{real}"))[1])["response"]
            assert resp["allowed"] is False and "2.6" in resp["status"]["message"], resp
            conn.close()
        finally:
            stop(w.proc)
