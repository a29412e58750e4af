"""The operator's logic without a cluster: reports, annotations, Events, time passing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.operator.core import ANNOTATION_NEXT, ANNOTATION_VERDICT, Core
from policy.catalog import default_catalog
from policy.evaluate import Engine
from policy.policy import load_policy
from policy.report import OPENREPORTS, WGPOLICY, Flavor, WorkloadRef, document

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
SOON = f"{ECR}/pytorch-training:2.10-gpu-py313-ec2"  # EOP 2027-01-21
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
TODAY = dt.date(2026, 11, 23)


def core(today: dt.date = TODAY, policy: dict[str, Any] | None = None) -> Core:
    return Core(Engine(default_catalog(), today), load_policy(policy or {}), clock=lambda: 1_795_000_000.0)


def deployment(name: str, *images: str, ns: str = "ml", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "annotations": annotations or {}},
        "spec": {"template": {"spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}}},
    }


def report(c: Core, name: str, ns: str = "ml", flavor: Flavor = WGPOLICY) -> dict[str, Any] | None:
    """The report waiting to be written for workload ``name`` (``None``: nothing to write)."""
    for item in c.book.pending():
        if item.ref.name == name and item.ref.namespace == ns:
            return item.document(flavor)
    return None


def write_all(c: Core) -> int:
    """What the writer does: every pending report goes through; how many there were."""
    items = c.book.take(10**6)
    for item in items:
        c.book.written(item)
    return len(items)


def test_report_per_workload_with_scope_owner_results_and_summary() -> None:
    c = core()
    change = c.observe(deployment("train", OLD, "nginx"))
    assert change is not None and change.report_changed
    doc = report(c, "train")
    assert doc is not None
    assert doc["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and doc["kind"] == "PolicyReport"
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "train", "uid": "uid-train"}
    meta = doc["metadata"]
    assert (meta["name"], meta["namespace"]) == ("uid-train", "ml")  # named by uid, as Kyverno does
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "dlc-guard",
        "dlcguard.io/report": "true",
        "dlcguard.io/resource.uid": "uid-train",
    }
    assert meta["ownerReferences"] == [{**owner, "controller": False}]  # garbage-collected with it
    assert doc["scope"] == {**owner, "namespace": "ml"}
    (result,) = doc["results"]  # the non-DLC image is not reported
    assert result["policy"] == "dlc-support-policy" and result["rule"] == "EOP_PASSED"
    assert (result["result"], result["severity"], result["source"]) == ("fail", "high", "dlc-guard")
    assert "resources" not in result  # the report's scope says which workload
    props = result["properties"]
    assert props["framework"] == "PyTorch" and props["version"] == "2.6.0" and props["eop"] == "2026-01-29"
    assert props["recommendation"].startswith(f"{ECR}/pytorch-training:2.10")
    assert all(isinstance(v, str) for v in props.values())
    assert "conda-forge" in props["licenseNotice"], "no longer maintained: the seed's Anaconda answer"
    assert doc["summary"] == {"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    assert meta["annotations"]["dlcguard.io/summary"] == "0,1,0,0,0"
    c.observe(deployment("serve", NEW, SOON))
    serve = report(c, "serve")
    assert serve is not None and serve["summary"] == {"pass": 2, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    maintained = serve["results"]
    assert maintained and all("licenseNotice" not in r["properties"] for r in maintained)
    assert write_all(c) == 2
    assert c.book.summary("ml") == {"pass": 2, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    assert c.book.reports("ml") == 2


def test_openreports_carry_the_same_results() -> None:
    c = core()
    c.observe(deployment("train", OLD))
    wg, orep = report(c, "train"), report(c, "train", flavor=OPENREPORTS)
    assert wg is not None and orep is not None
    assert (orep["apiVersion"], orep["kind"], orep["source"]) == ("openreports.io/v1alpha1", "Report", "dlc-guard")
    assert orep["results"] == wg["results"] and orep["scope"] == wg["scope"] and orep["summary"] == wg["summary"]


def test_unchanged_objects_write_nothing_and_deleted_ones_leave_to_garbage_collection() -> None:
    c = core()
    first = c.observe(deployment("train", OLD))
    assert first is not None and first.report_changed
    assert write_all(c) == 1
    again = c.observe(deployment("train", OLD, annotations={ANNOTATION_VERDICT: "unsupported", ANNOTATION_NEXT: "x"}))
    assert again is not None and not again.report_changed and c.book.backlog == 0
    # deleted: its ownerReference lets garbage collection take the report; nothing to write
    assert c.forget("Deployment", "ml", "train") is False
    assert c.book.backlog == 0 and c.book.reports("ml") == 0
    # a DLC image replaced by another kind of image: the report is deleted by us
    c.observe(deployment("serve", OLD))
    write_all(c)
    c.observe(deployment("serve", "nginx"))
    (item,) = c.book.take(5)
    assert item.delete and item.ref.name == "serve"


def test_annotations_and_one_event_per_transition() -> None:
    c = core()
    change = c.observe(deployment("train", SOON))
    assert change is not None
    assert change.annotations == {ANNOTATION_VERDICT: "expiring", ANNOTATION_NEXT: "2027-01-22"}  # EOP is inclusive
    assert change.event is not None and change.event.reason == "DLCImageExpiring"
    assert "2027-01-21" in change.event.message
    # the object now carries the annotations: observing it again announces nothing
    annotated = deployment("train", SOON, annotations={k: v for k, v in change.annotations.items() if v})
    again = c.observe(annotated)
    assert again is not None and again.event is None and again.annotations is None
    # time passes: the EOP arrives, the verdict moves, one Event says so
    (moved,) = c.reevaluate(Engine(default_catalog(), dt.date(2027, 1, 22)))
    assert moved.report_changed
    assert moved.annotations is not None and moved.annotations[ANNOTATION_VERDICT] == "unsupported"
    assert moved.event is not None and moved.event.reason == "DLCImageUnsupported"
    doc = report(c, "train")
    assert doc is not None and doc["results"][0]["result"] == "fail"
    write_all(c)
    assert c.reevaluate(Engine(default_catalog(), dt.date(2027, 1, 23))) == []  # nothing new: nothing to write


def test_restart_reads_the_previous_verdict_from_the_object() -> None:
    c = core()
    annotated = deployment("train", OLD, annotations={ANNOTATION_VERDICT: "unsupported", ANNOTATION_NEXT: "2026-01-29"})
    change = c.observe(annotated)
    assert change is not None and change.event is None  # announced before the restart


def test_owned_pods_are_left_to_their_owner_and_bare_pods_are_judged() -> None:
    c = core()
    owned = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "train-abc",
            "namespace": "ml",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "train-5d", "controller": True}],
        },
        "spec": {"containers": [{"name": "c", "image": OLD}]},
    }
    assert c.observe(owned) is None
    bare = {**owned, "metadata": {"name": "debug", "namespace": "ml"}}
    change = c.observe(bare)
    assert change is not None and change.ref.kind == "Pod" and change.report_changed
    assert c.observe({"kind": "ConfigMap", "metadata": {"name": "x"}}) is None


def test_policy_exemptions_become_skip_and_exempt_namespaces_leave_no_results() -> None:
    c = core(policy={"exemptions": [{"images": ["*pytorch-training:2.6*"], "reason": "ML-9"}]})
    c.observe(deployment("train", OLD))
    doc = report(c, "train")
    assert doc is not None
    (result,) = doc["results"]
    assert result["result"] == "skip" and result["properties"]["exemption"] == "ML-9"
    c.observe(deployment("sys", OLD, ns="kube-system"))
    assert report(c, "sys", ns="kube-system") is None
    write_all(c)
    changes = c.reevaluate(policy=load_policy({"denyLevel": "expiring"}))
    assert any(ch.report_changed for ch in changes)
    doc = report(c, "train")
    assert doc is not None and doc["results"][0]["result"] == "fail"


def test_cluster_scoped_workloads_get_cluster_reports() -> None:
    ref = WorkloadRef("example.com/v1", "Trainer", "", "big", "uid-big")
    doc = document(WGPOLICY, ref, [])
    assert doc["kind"] == "ClusterPolicyReport" and "namespace" not in doc["metadata"]
    assert document(OPENREPORTS, ref, [])["kind"] == "ClusterReport"


def test_peering_allows_only_the_highest_live_priority() -> None:
    from controller.operator.handlers import peering_allows

    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    fresh = (now - dt.timedelta(seconds=2)).isoformat()
    stale = (now - dt.timedelta(seconds=120)).isoformat()
    me = {"priority": 500, "lifetime": 60, "lastseen": fresh}
    assert peering_allows({"me": me}, 500, now)
    assert not peering_allows({"me": me, "other": {"priority": 900, "lifetime": 60, "lastseen": fresh}}, 500, now)
    assert peering_allows({"me": me, "other": {"priority": 100, "lifetime": 60, "lastseen": fresh}}, 500, now)
    # a peer killed without goodbye stops counting once its lifetime has passed
    assert peering_allows({"me": me, "dead": {"priority": 900, "lifetime": 60, "lastseen": stale}}, 500, now)
    assert peering_allows({"me": me, "junk": {"priority": "high", "lastseen": "yesterday"}, "x": 3}, 500, now)


def test_an_event_names_every_affected_container_within_its_limit() -> None:
    c = core()
    images = [OLD, OLD.replace("us-west-2", "us-east-1")]
    change = c.observe(deployment("multi", *images, NEW))
    assert change is not None and change.event is not None
    msg = change.event.message
    assert msg.startswith("Deployment multi is now unsupported: container 'c0' image ")
    assert "container 'c1' image " in msg and "'c2'" not in msg, "the supported one is not named"
    many = c.observe(deployment("many", *[OLD] * 30))
    assert many is not None and many.event is not None
    assert len(many.event.message) <= 1024 and "more)" in many.event.message


def test_a_new_day_rewrites_no_report_whose_facts_did_not_change() -> None:
    c = core()
    c.observe(deployment("train", SOON))  # expiring: "end of patch ... is 2027-01-21 (in 59 days)"
    doc = report(c, "train")
    assert doc is not None and "2027-01-21" in doc["results"][0]["message"]
    assert "days)" not in doc["results"][0]["message"], "a countdown would change the report every day"
    write_all(c)
    for day in (24, 25, 26):
        changes = c.reevaluate(Engine(default_catalog(), dt.date(2026, 11, day)))
        assert not any(ch.report_changed for ch in changes)
    assert c.book.backlog == 0
