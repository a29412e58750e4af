"""Against a real kube-apiserver (etcd + kube-apiserver from ``make tools``, on loopback):
``scan --cluster`` and the operator writing PolicyReports, annotations, Events and policy status."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from controller.cli.main import main
from controller.kube.client import connect_api
from controller.scan.cluster import ClusterSource, list_objects
from tests.cluster import (
    ControlPlane,
    available,
    control_plane,
    deployment,
    garbage_collector,
    install_crds,
    namespace_report,
    pod,
    stop,
)
from tests.conftest import ROOT
from tests.operatorproc import wait_for

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
SOON = f"{ECR}/pytorch-training:2.10-gpu-py313-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("control-plane")) as cp, garbage_collector(cp):
        install_crds(cp)
        docs = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}},
            deployment("trainer", "ml", OLD),
            deployment("soon", "ml", SOON),
            deployment("serving", "ml", NEW),
            pod("debug", "ml", OLD),
            deployment("nginx", "web", "nginx:1.27"),
        ]
        cp.kubectl("apply", "-f", "-", stdin="---\n".join(yaml.safe_dump(d) for d in docs))
        yield cp


def scan(cp: ControlPlane, *argv: str) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["scan", "--cluster", "--kubeconfig", str(cp.kubeconfig), "--as-of", "2026-11-23", "-o", "json", *argv],
        io.StringIO(),
        out,
        err,
    )
    return code, json.loads(out.getvalue())


def test_scan_cluster_all_namespaces(cluster: ControlPlane) -> None:
    code, data = scan(cluster, "-A")
    assert code == 1 and not data["errors"]
    got = {(f["kind"], f["namespace"], f["name"]): f["verdict"] for f in data["findings"]}
    assert got == {
        ("Deployment", "ml", "trainer"): "unsupported",
        ("Deployment", "ml", "soon"): "expiring",
        ("Deployment", "ml", "serving"): "supported",
        ("Pod", "ml", "debug"): "unsupported",
        ("Deployment", "web", "nginx"): "not-dlc",
    }
    assert all(f["location"]["source"] == "cluster" for f in data["findings"])


def test_scan_cluster_one_namespace_and_paging(cluster: ControlPlane) -> None:
    code, data = scan(cluster, "--namespace", "web")
    assert code == 0 and {f["name"] for f in data["findings"]} == {"nginx"}
    src = ClusterSource(connect_api(str(cluster.kubeconfig)))
    pages: list[int] = []
    docs = list(list_objects(src, ["Deployment"], "ml", progress=lambda kind, n: pages.append(n), page=1))
    assert sorted(d.obj["metadata"]["name"] for d in docs if hasattr(d, "obj")) == ["serving", "soon", "trainer"]
    assert pages == [1, 2, 3]  # one object per page, three pages


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane) -> Iterator[subprocess.Popen[str]]:
    log = (cluster.workdir / "operator.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli.main",
            "operator",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--as-of",
            "2026-11-23",
            "--metrics-port",
            "0",
            "--controller-namespace",
            "dlc-guard",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    yield proc
    stop(proc)
    log.close()


def report(cluster: ControlPlane, ns: str) -> dict[str, Any] | None:
    return namespace_report(cluster.kubectl, ns)


def test_operator_writes_reports_annotations_and_events(cluster: ControlPlane, operator: Any) -> None:
    rep = wait_for("the ml PolicyReport", lambda: report(cluster, "ml"))
    rep = wait_for("all ml results", lambda: (r := report(cluster, "ml")) and len(r["results"]) == 4 and r)
    assert rep["summary"] == {"pass": 2, "fail": 2, "warn": 0, "error": 0, "skip": 0}
    rules = {(r["resources"][0]["kind"], r["resources"][0]["name"]): r["rule"] for r in rep["results"]}
    assert rules[("Deployment", "trainer")] == "EOP_PASSED" and rules[("Pod", "debug")] == "EOP_PASSED"
    assert report(cluster, "web") is None  # no DLC images, no report
    ann = wait_for(
        "annotations",
        lambda: (
            json.loads(cluster.kubectl("get", "deploy", "trainer", "-n", "ml", "-o", "json").stdout)["metadata"]
            .get("annotations", {})
            .get("dlc-guard.io/verdict")
        ),
    )
    assert ann == "unsupported"
    events = wait_for(
        "events",
        lambda: [
            e
            for e in json.loads(cluster.kubectl("get", "events", "-n", "ml", "-o", "json").stdout)["items"]
            if e.get("reason") in ("DLCImageUnsupported", "DLCImageExpiring")
        ],
    )
    assert {e["involvedObject"]["name"] for e in events} >= {"trainer", "soon"}
    table = cluster.kubectl("get", "policyreports", "-n", "ml", "-o", "wide").stdout
    assert "FAIL" in table.splitlines()[0] and "trainer" in table and "Deployment" in table


def test_operator_follows_deletes_and_policy_status(cluster: ControlPlane, operator: Any) -> None:
    wait_for("the ml PolicyReport", lambda: report(cluster, "ml"))
    cluster.kubectl("delete", "pod", "debug", "-n", "ml", "--wait=false")
    wait_for("the pod's result to leave", lambda: (r := report(cluster, "ml")) and len(r["results"]) == 3)
    bad = {"apiVersion": "dlcguard.io/v1alpha1", "kind": "DLCGuardPolicy", "metadata": {"name": "default"}}
    # an empty list passes the CRD's rules, and no webhook runs here: stored, and the operator refuses it
    bad["spec"] = {"exemptions": [{"namespaces": [], "reason": "names nothing"}]}
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad))

    def condition() -> dict[str, Any] | None:
        obj = json.loads(cluster.kubectl("get", "dlcguardpolicy", "default", "-o", "json").stdout)
        conds = (obj.get("status") or {}).get("conditions") or []
        return conds[0] if conds else None

    cond = wait_for("a rejected policy", lambda: (c := condition()) and c["status"] == "False" and c)
    assert "an exemption must name" in cond["message"]
    good = {**bad, "spec": {"denyLevel": "expiring"}}
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(good))
    wait_for("an accepted policy", lambda: (c := condition()) and c["status"] == "True")
    rep = wait_for("expiring now fails", lambda: (r := report(cluster, "ml")) and r["summary"]["fail"] == 2 and r)
    assert {x["properties"]["verdict"] for x in rep["results"] if x["result"] == "fail"} == {"unsupported", "expiring"}


def test_operator_reads_a_new_catalog_source_at_once(cluster: ControlPlane, operator: Any) -> None:
    """The operator refreshes hourly here; a policy that names a new source is read within
    seconds (as the webhook does), not at the next refresh."""
    from bench.reports import ended_early

    doc = ended_early(json.loads((ROOT / "policy" / "data" / "catalog.json").read_text()))
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "early", "namespace": "ml"},
        "data": {"catalog.json": json.dumps(doc)},
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(cm))
    source = {"catalog": {"configMap": {"namespace": "ml", "name": "early"}}}
    cluster.kubectl("patch", "dlcguardpolicy", "default", "--type=merge", "-p", json.dumps({"spec": source}))

    def soon_verdict() -> str | None:
        rep = report(cluster, "ml") or {}
        return next(
            (x["properties"]["verdict"] for x in rep.get("results", []) if x["resources"][0]["name"] == "soon"),
            None,
        )

    wait_for("the new catalog's verdict", lambda: soon_verdict() == "unsupported", 30)
