"""A real ``dlc-guard operator`` process against a real control plane, for tests and benchmarks:
workloads created in bulk, the operator's metrics and RSS, the API server's own count of writes."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from controller.kube.client import Rest, collection_path, connect_api
from tests.cluster import ROOT, TOKEN, ControlPlane, free_port, stop

WRITES = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, log: Path | None = None) -> T:
    """Poll ``probe`` until it gives something true; a failing kubectl counts as not yet. On time
    out, the assertion says what, the last value, and the tail of ``log``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except subprocess.CalledProcessError as exc:
            last = exc.stderr
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}: {last}\n{tail}")
        time.sleep(0.5)


class Cluster:
    """A control plane with an operator process of ours beside it."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.rest = Rest(connect_api(str(cp.kubeconfig)))
        self.operator: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.log = cp.workdir / "operator.log"

    def create(self, docs: list[dict[str, Any]]) -> None:
        def post(doc: dict[str, Any]) -> None:
            path = collection_path("apps", "v1", "deployments", doc["metadata"]["namespace"])
            self.rest.request("POST", path, doc)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, docs))

    def start_operator(self, *flags: str) -> subprocess.Popen[bytes]:
        self.metrics_port = free_port()
        cmd = [sys.executable, "-m", "controller.cli.main", "operator", "--kubeconfig", str(self.cp.kubeconfig)]
        cmd += ["--as-of", "2026-11-23", "--metrics-port", str(self.metrics_port), *flags]
        self.operator = subprocess.Popen(cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
        return self.operator

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.send_signal(signal.SIGTERM)
            stop(self.operator)
            self.operator = None

    def operator_metric(self, name: str, **labels: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return -1.0
        total = 0.0
        found = False
        for line in text.splitlines():
            ours = line.startswith((name + "{", name + " "))
            if ours and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else -1.0

    def api_writes(self, resource: str, failed: bool = False) -> int:
        """Writes the API server received for ``resource`` (its own request counter)."""
        ctx = ssl.create_default_context(cafile=str(self.cp.ca))
        ctx.check_hostname = False
        req = urllib.request.Request(self.cp.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            text = r.read().decode()
        total = 0
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{") or f'resource="{resource}"' not in line:
                continue
            verb = re.search(r'verb="([A-Z]+)"', line)
            code = re.search(r'code="(\d+)"', line)
            if verb and code and verb.group(1) in WRITES and (not failed or int(code.group(1)) >= 400):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def list_all(self, group: str, version: str, plural: str, ns: str, selector: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", 500)] + ([("continue", token)] if token else [])
            if selector:
                query.append(("labelSelector", selector))
            doc = self.rest.request("GET", collection_path(group, version, plural, ns), query=query)
            out += doc.get("items") or []
            token = (doc.get("metadata") or {}).get("continue") or ""
            if not token:
                return out

    def reports(self, ns: str, api: tuple[str, str, str] = ("wgpolicyk8s.io", "v1alpha2", "policyreports")) -> int:
        return len(self.list_all(*api, ns, selector="app.kubernetes.io/managed-by=dlc-guard"))

    def settled(self, workloads: int) -> bool:
        """The operator tracks them all and has nothing left to write."""
        return (
            self.operator_metric("dlcguard_operator_workloads") == workloads
            and self.operator_metric("dlcguard_report_backlog") == 0
        )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
