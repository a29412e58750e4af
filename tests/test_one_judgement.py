"""The same objects through the webhook's, the operator's and scan's paths: the same verdict per
container, the same worst verdict, the same exemptions and the same sentences."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controller.operator.core import Core
from controller.scan.core import scan_documents
from controller.scan.sources import Document
from controller.webhook.review import decide
from policy.catalog import default_catalog
from policy.evaluate import Engine
from policy.policy import load_policy
from policy.report import WGPOLICY

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
SOON = f"{ECR}/pytorch-training:2.10-gpu-py313-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
EXEMPT = f"{ECR}/tensorflow-training:2.14.1-gpu-py310-cu118-ubuntu20.04-ec2"
TODAY = dt.date(2026, 11, 23)
POLICY = {
    "mode": "enforce",
    "warnLevel": "expiring",
    "exemptions": [{"images": ["*tensorflow-training:2.14*"], "reason": "ML-7"}],
}


def workload(name: str, *images: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}"},
        "spec": {"template": {"spec": {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}}},
    }


OBJECTS = [
    workload("mixed", OLD, SOON, NEW, EXEMPT, "nginx:1.27"),
    workload("fine", NEW),
    workload("soon", SOON, "redis:7"),
    workload("exempt", EXEMPT),
]


def review(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "operation": "CREATE",
            "namespace": "ml",
            "object": obj,
        },
    }


def by_webhook(obj: dict[str, Any], engine: Engine) -> tuple[dict[str, tuple[str, str | None, str]], str | None]:
    d = decide(review(obj), engine, load_policy(POLICY), TODAY)
    return {f.container.name: (f.result.verdict, f.exempt, f.sentence()) for f in d.findings}, d.worst


def by_scan(obj: dict[str, Any], engine: Engine) -> tuple[dict[str, tuple[str, str | None, str]], str | None]:
    res = scan_documents([Document("manifest.yaml", 1, obj)], engine, load_policy(POLICY), TODAY)
    (o,) = res.objects
    j = o.judgement
    return {f.container.name: (f.result.verdict, f.exempt, f.sentence()) for f in j.findings}, verdict_of(j)


def verdict_of(j: Any) -> str | None:
    return j.worst.verdict if j.worst is not None else None


def by_operator(obj: dict[str, Any], engine: Engine) -> tuple[dict[str, tuple[str, str | None, str]], str | None]:
    core = Core(engine, load_policy(POLICY), clock=lambda: 1.0)
    core.observe(obj)
    (t,) = core.tracked.values()
    j = core.judgement(t)
    assert j is not None
    return {f.container.name: (f.result.verdict, f.exempt, f.sentence()) for f in j.findings}, verdict_of(j)


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o["metadata"]["name"])
def test_one_judgement_on_every_path(obj: dict[str, Any]) -> None:
    engine = Engine(default_catalog(), TODAY)
    webhook, scan, operator = by_webhook(obj, engine), by_scan(obj, engine), by_operator(obj, engine)
    assert webhook == scan == operator
    findings, worst = webhook
    assert len(findings) == len(obj["spec"]["template"]["spec"]["containers"])
    exempt = {name for name, (_, why, _) in findings.items() if why}
    assert exempt == (
        {"c3"} if obj["metadata"]["name"] == "mixed" else {"c0"} if obj["metadata"]["name"] == "exempt" else set()
    )
    assert worst != "supported" or all(v in ("supported", "not-dlc") for v, why, _ in findings.values() if not why)


def test_what_each_path_shows_is_built_from_that_judgement() -> None:
    engine = Engine(default_catalog(), TODAY)
    obj = OBJECTS[0]
    findings, _ = by_webhook(obj, engine)
    # the operator's report: the same sentence per DLC container, without the daily countdown
    core = Core(engine, load_policy(POLICY), clock=lambda: 1.0)
    core.observe(obj)
    (item,) = list(core.book.pending())
    doc = item.document(WGPOLICY)
    messages = {r["properties"]["container"]: r["message"] for r in doc["results"]}
    assert set(messages) == {"c0", "c1", "c2", "c3"}, "non-DLC images are not reported"
    for name, text in messages.items():
        assert text == findings[name][2].replace(" (in 59 days)", "")
    # the webhook's denial and warnings name the same sentences
    d = decide(review(obj), engine, load_policy(POLICY), TODAY)
    assert not d.allowed and d.message is not None and findings["c0"][2] in d.message
    assert any(findings["c1"][2] in w for w in d.warnings)
