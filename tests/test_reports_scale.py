"""Reports at the size of a busy cluster, on a real API server with its garbage collector.

5,000 DLC Deployments in one namespace: every one gets a report of its own and no write fails;
the counts add up; a deleted workload's report leaves by garbage collection; a restarted
operator with nothing changed writes nothing (counted by the API server itself); writes are
paced. Then OpenReports: with its CRDs present, Reports appear beside the PolicyReports and
validate against the upstream schema.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import pytest
import yaml

from controller.kube.client import Rest, collection_path, connect_api
from tests.cluster import (
    ROOT,
    TOKEN,
    ControlPlane,
    available,
    control_plane,
    deployment,
    free_port,
    garbage_collector,
    install_crds,
    stop,
)

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
BIG, N = "big", 5000
WRITES = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
SHARED = ROOT.parent / "shared" / "report-crds"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Path | None = None) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.5)


class Cluster:
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
        import ssl

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


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with control_plane(tmp_path_factory.mktemp("scale")) as cp, garbage_collector(cp):
        install_crds(cp)
        cp.kubectl("create", "namespace", BIG)
        c = Cluster(cp)
        c.create([deployment(f"w{i:04d}", BIG, OLD if i % 2 else NEW) for i in range(N)])
        try:
            yield c
        finally:
            c.stop_operator()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_every_workload_gets_its_report_and_no_write_fails(big: Cluster) -> None:
    proc = big.start_operator("--report-writes-per-second", "500", "--report-burst", "100", "--report-concurrency", "8")
    started = time.monotonic()
    wait_for("5,000 reports written", lambda: big.settled(N) and big.reports(BIG) == N, 600, big.log)
    print(f"\n5,000 workloads reported in {time.monotonic() - started:.0f} s; operator RSS {rss_mib(proc.pid):.0f} MiB")
    assert big.api_writes("policyreports", failed=True) == 0, "no report write failed"
    assert big.operator_metric("dlcguard_report_writes_total", result="error") in (-1.0, 0.0)
    reports = big.list_all("wgpolicyk8s.io", "v1alpha2", "policyreports", BIG)
    deployments = big.list_all("apps", "v1", "deployments", BIG)
    assert {r["scope"]["uid"] for r in reports} == {d["metadata"]["uid"] for d in deployments}
    assert all(r["metadata"]["name"] == r["scope"]["uid"] for r in reports)
    totals: dict[str, int] = {}
    for r in reports:
        for k, v in r["summary"].items():
            totals[k] = totals.get(k, 0) + v
    assert totals == {"pass": N // 2, "fail": N // 2, "warn": 0, "error": 0, "skip": 0}
    assert big.operator_metric("dlcguard_report_results", namespace=BIG, result="fail") == N // 2
    biggest = max(len(json.dumps(r)) for r in reports)
    assert biggest < 8192, "a report's size does not grow with its namespace"
    table = big.cp.kubectl("get", "policyreports", "-n", BIG, "--no-headers").stdout
    assert len(table.splitlines()) == N


def test_a_deleted_workload_takes_its_report_with_it(big: Cluster) -> None:
    gone = [f"w{i:04d}" for i in range(10)]
    uids = {}
    for name in gone:
        uids[name] = big.rest.request("GET", collection_path("apps", "v1", "deployments", BIG) + f"/{name}")[
            "metadata"
        ]["uid"]
        big.rest.request("DELETE", collection_path("apps", "v1", "deployments", BIG) + f"/{name}")
    path = collection_path("wgpolicyk8s.io", "v1alpha2", "policyreports", BIG)

    def collected() -> bool:
        return all(big.rest.request("GET", f"{path}/{uid}", ok_missing=True) is None for uid in uids.values())

    wait_for("garbage collection of the deleted workloads' reports", collected, 60, big.log)
    assert big.reports(BIG) == N - len(gone)


def test_a_restart_with_nothing_changed_writes_nothing(big: Cluster) -> None:
    workloads = N - 10
    wait_for("the operator to see the deletions", lambda: big.settled(workloads), 60, big.log)
    big.stop_operator()
    reports, annotations = big.api_writes("policyreports"), big.api_writes("deployments")
    big.start_operator("--report-writes-per-second", "500", "--report-burst", "100")
    wait_for("the restarted operator to list everything", lambda: big.settled(workloads), 300, big.log)
    wait_for("its report list", lambda: f"found {workloads} reports of ours" in big.log.read_text(), 60, big.log)
    time.sleep(5)  # a few more rounds of the writer and of the background loop
    assert big.settled(workloads)
    assert big.api_writes("policyreports") - reports == 0, "no report written"
    assert big.api_writes("deployments") - annotations == 0, "no annotation written"


def test_writes_are_paced(big: Cluster) -> None:
    big.stop_operator()
    big.cp.kubectl("create", "namespace", "paced")
    n, rate, burst = 300, 50, 10
    big.create([deployment(f"p{i:03d}", "paced", OLD) for i in range(n)])
    before = big.api_writes("policyreports")
    big.start_operator("--report-writes-per-second", str(rate), "--report-burst", str(burst))
    wait_for("the first paced report", lambda: big.api_writes("policyreports") > before, 300, big.log)
    first = time.monotonic()
    wait_for("every paced report", lambda: big.api_writes("policyreports") - before >= n, 120, big.log)
    elapsed = time.monotonic() - first
    # a token bucket of `burst` refilled at `rate` cannot go faster than this (a floor, not a timing goal)
    assert elapsed >= (n - 2 * burst) / rate, f"{n} writes in {elapsed:.1f} s: not paced"
    assert big.api_writes("policyreports") - before == n, "the 4,990 unchanged reports were not written"


# -- OpenReports -----------------------------------------------------------------------------------


def test_openreports_beside_policyreports_validate_upstream(tmp_path: Path) -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not here")
    with control_plane(tmp_path / "cp") as cp:
        install_crds(cp, ())  # the chart's own CRDs; the report APIs from upstream, as Kyverno clusters have them
        for sub in ("wgpolicyk8s", "openreports"):
            cp.kubectl("apply", "--server-side", "-f", str(SHARED / sub))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        cp.kubectl("create", "namespace", "ml")
        c = Cluster(cp)
        c.create([deployment("old", "ml", OLD), deployment("new", "ml", NEW)])
        policy = {"apiVersion": "dlcguard.io/v1alpha1", "kind": "DLCGuardPolicy", "metadata": {"name": "default"}}
        cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({**policy, "spec": {}}))
        try:
            c.start_operator()
            api = ("openreports.io", "v1alpha1", "reports")
            wait_for("two Reports", lambda: c.reports("ml", api) == 2 and c.reports("ml") == 2, 60, c.log)
            schema = yaml.safe_load((SHARED / "openreports" / "openreports.io_reports.yaml").read_text())
            schema = schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            for rep in c.list_all(*api, "ml"):
                jsonschema.validate(rep, schema)
                assert rep["source"] == "dlc-guard" and rep["scope"]["kind"] == "Deployment"
                assert rep["results"] and all(r["properties"]["image"] for r in rep["results"])
            fails = {r["scope"]["name"]: r["summary"]["fail"] for r in c.list_all(*api, "ml")}
            assert fails == {"old": 1, "new": 0}

            def reporting() -> dict[str, Any] | None:
                doc = json.loads(cp.kubectl("get", "dlcguardpolicy", "default", "-o", "json").stdout)
                conds = {x["type"]: x for x in (doc.get("status") or {}).get("conditions") or []}
                rep = conds.get("Reporting")
                return rep if rep and "openreports.io" in rep["message"] else None

            cond = wait_for("the policy to say where reports go", reporting, 60, c.log)
            assert cond["status"] == "True" and "wgpolicyk8s.io/v1alpha2" in cond["message"], cond
            assert "writing openreports.io/v1alpha1 Reports and wgpolicyk8s.io/v1alpha2" in c.log.read_text()
        finally:
            c.stop_operator()
