"""Hostile load against a real ``dlc-guard webhook`` process: what a caller with only "create pod"
rights (or any pod that reaches port 8443) can make it hold. Memory is read from ``/proc``.

Covered here: unique huge image strings, unique ``kind``/``operation`` values in metrics labels,
huge values echoed into errors and logs, and callers that go away mid-body.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster import free_port, stop
from tests.conftest import ROOT
from tests.tls import write_cert

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


@dataclass
class Webhook:
    proc: subprocess.Popen[bytes]
    port: int
    cert: Path
    log: Path

    def ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx(), timeout=30)

    def post(self, conn: http.client.HTTPSConnection, body: bytes) -> tuple[int, bytes]:
        conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}", context=self.ctx(), timeout=30) as r:
            return bytes(r.read())


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    tmp = tmp_path_factory.mktemp("hostile")
    cert, key = write_cert(tmp)
    policy = tmp / "policy.yaml"
    policy.write_text("spec:\n  mode: enforce\n")
    port = free_port()
    log = tmp / "webhook.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli.main",
            "webhook",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--tls-cert={cert}",
            f"--tls-key={key}",
            f"--policy={policy}",
            "--as-of=2026-11-23",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "DLC_GUARD_LOG_LEVEL": "INFO"},
    )
    w = Webhook(proc, port, cert, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            w.get("/readyz")
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    try:
        yield w
    finally:
        stop(proc)


def review(image: str, kind: str = "Pod", operation: str = "CREATE") -> bytes:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }
    req = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": kind},
        "operation": operation,
        "namespace": "team",
        "object": obj,
    }
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}).encode()


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
