"""A real ``dlc-guard webhook`` process on loopback, for the tests and benchmarks that need the
process itself (its memory read from ``/proc``, its signals, its TLS): launched ready, with the
calls they make to it."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import free_port, stop
from tests.conftest import ROOT
from tests.tls import write_cert

__all__ = ["Webhook", "launch", "review"]


@dataclass
class Webhook:
    proc: subprocess.Popen[bytes]
    port: int
    trust: Path
    """The certificate clients trust: the one served at launch."""
    log: Path

    def ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.trust))

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

    def ready(self) -> bool:
        try:
            self.get("/readyz")
        except OSError:  # refused, or 503 (HTTPError is an OSError)
            return False
        return True


def launch(
    tmp: Path, *args: str, cert: tuple[Path, Path] | None = None, policy_text: str = "spec:\n  mode: enforce\n"
) -> Webhook:
    """A real ``dlc-guard webhook`` process on a free loopback port, ready."""
    cert_path, key = cert or write_cert(tmp)
    policy = tmp / "policy.yaml"
    policy.write_text(policy_text)
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
            f"--tls-cert={cert_path}",
            f"--tls-key={key}",
            f"--policy={policy}",
            "--as-of=2026-11-23",
            *args,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "DLC_GUARD_LOG_LEVEL": "INFO"},
    )
    trust = tmp / "trust.crt"
    trust.write_bytes(cert_path.read_bytes())
    w = Webhook(proc, port, trust, log)
    deadline = time.monotonic() + 30
    while not w.ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(log.read_text())
        time.sleep(0.2)
    return w


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
