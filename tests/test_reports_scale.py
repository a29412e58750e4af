"""Reports at the size of a busy cluster, on a real API server with its garbage collector.

5,000 DLC Deployments in one namespace: every one gets a report of its own and no write fails;
the counts add up; a deleted workload's report leaves by garbage collection; a restarted
operator with nothing changed writes nothing (counted by the API server itself); writes are
paced. Then OpenReports: with its CRDs present, Reports appear beside the PolicyReports and
validate against the upstream schema.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from controller.kube.client import collection_path
from tests.cluster import ROOT, available, control_plane, deployment, garbage_collector, install_crds
from tests.operatorproc import Cluster, rss_mib, wait_for

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
BIG, N = "big", 5000
WRITES = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
SHARED = ROOT.parent / "shared" / "report-crds"


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


def test_a_report_someone_else_edited_is_rewritten_at_restart(big: Cluster) -> None:
    """Whoever may write PolicyReports could keep the fingerprint and change the results; a
    restarted operator trusts a fingerprint only on a report nobody else has written."""
    workloads = N - 10
    path = collection_path("wgpolicyk8s.io", "v1alpha2", "policyreports", BIG)
    victim = big.list_all("wgpolicyk8s.io", "v1alpha2", "policyreports", BIG)[0]
    name, truth = victim["metadata"]["name"], victim["summary"]
    forged = {**truth, "pass": truth["fail"], "fail": truth["pass"]}  # a passing report told as failing, or back
    assert forged != truth
    big.stop_operator()
    big.cp.kubectl("patch", "policyreport", name, "-n", BIG, "--type=merge", "-p", json.dumps({"summary": forged}))
    assert big.rest.request("GET", f"{path}/{name}")["summary"] == forged
    before = big.api_writes("policyreports")
    big.start_operator("--report-writes-per-second", "500", "--report-burst", "100")
    wait_for("the forged report rewritten", lambda: big.rest.request("GET", f"{path}/{name}")["summary"] == truth, 300)
    wait_for("the restarted operator to settle", lambda: big.settled(workloads), 300, big.log)
    assert big.api_writes("policyreports") - before == 1, "that report alone"


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
