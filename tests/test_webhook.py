"""Contract tests: the real app on a real TLS socket, real AdmissionReview bodies."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from controller.kube.namespaces import NamespaceLabels
from controller.webhook.server import STATE, WebhookSettings, listen, make_app, make_ssl_context

from .tls import write_cert

OLD = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
SOON = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.10-gpu-py313-ec2"
OUTDATED = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.36.0-lmi20.0.0-cu128"


class Server:
    def __init__(self, url: str, cert: Path, key: Path, workdir: Path, app: web.Application) -> None:
        self.url, self.cert, self.key, self.workdir, self.app = url, cert, key, workdir, app

    def ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        return ctx


async def start(
    tmp_path: Path, policy: str | None = None, namespace_labels: Any = None, **kw: Any
) -> tuple[Server, web.AppRunner]:
    logging.getLogger("dlc_guard").setLevel(logging.INFO)  # log records are built, as in production
    cert, key = write_cert(tmp_path)
    policy_file = None
    if policy is not None:
        policy_file = tmp_path / "policy.yaml"
        policy_file.write_text(policy)
    s = WebhookSettings(
        tls_cert=str(cert),
        tls_key=str(key),
        policy_file=str(policy_file) if policy_file else None,
        reload_seconds=0.1,
        as_of=dt.date(2026, 11, 23),
        namespace="dlc-guard",
        port=0,
        **kw,
    )
    app = make_app(s, CollectorRegistry(), namespace_labels=namespace_labels)
    runner, site = await listen(app)
    return Server(f"https://127.0.0.1:{site.port}", cert, key, tmp_path, app), runner


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    srv, runner = await start(tmp_path, "spec:\n  mode: enforce\n")
    yield srv
    await runner.cleanup()


def pod(
    images: list[str], name: str = "p", labels: dict[str, str] | None = None, init: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": f"init{i}", "image": im} for i, im in enumerate(init)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def wrap(kind: str, spec_images: list[str]) -> dict[str, Any]:
    podspec = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(spec_images)]}
    template = {"metadata": {"labels": {"app": "x"}}, "spec": podspec}
    group = {
        "Deployment": "apps/v1",
        "ReplicaSet": "apps/v1",
        "StatefulSet": "apps/v1",
        "DaemonSet": "apps/v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1",
        "ReplicationController": "v1",
        "PodTemplate": "v1",
        "PyTorchJob": "kubeflow.org/v1",
        "RayCluster": "ray.io/v1",
        "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1",
    }[kind]
    obj: dict[str, Any] = {"apiVersion": group, "kind": kind, "metadata": {"name": "w"}}
    if kind == "CronJob":
        obj["spec"] = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "PodTemplate":
        obj["template"] = template
    elif kind == "PyTorchJob":
        obj["spec"] = {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "template": template},
                "Worker": {"replicas": 2, "template": template},
            }
        }
    elif kind == "RayCluster":
        obj["spec"] = {"headGroupSpec": {"template": template}, "workerGroupSpecs": [{"template": template}]}
    elif kind == "LeaderWorkerSet":
        obj["spec"] = {"leaderWorkerTemplate": {"workerTemplate": template}}
    else:
        obj["spec"] = {"template": template}
    return obj


def review(
    obj: dict[str, Any],
    operation: str = "CREATE",
    namespace: str = "team-a",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    kind = obj["kind"]
    group, _, version = obj["apiVersion"].rpartition("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


async def post(srv: Server, body: Any, path: str = "/validate", raw: bytes | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s:
        data = raw if raw is not None else json.dumps(body).encode()
        async with s.post(srv.url + path, data=data, ssl=srv.ssl(), headers={"Content-Type": "application/json"}) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except json.JSONDecodeError:
                return r.status, text


def check_response(body: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    resp = body["response"]
    assert resp["uid"] == sent["request"]["uid"]
    assert isinstance(resp["allowed"], bool)
    assert set(resp) <= {"uid", "allowed", "status", "warnings", "auditAnnotations", "patch", "patchType"}
    for w in resp.get("warnings", []):
        assert isinstance(w, str) and len(w) <= 256
    for k, v in resp.get("auditAnnotations", {}).items():
        assert isinstance(k, str) and isinstance(v, str)
    if not resp["allowed"]:
        assert resp["status"]["code"] == 403 and resp["status"]["message"]
    return resp


KINDS = [
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "PodTemplate",
    "PyTorchJob",
    "RayCluster",
    "LeaderWorkerSet",
]


async def test_enforce_denies_pod_naming_image_and_fix(server: Server) -> None:
    sent = review(pod([NEW, OLD]))
    status, body = await post(server, sent)
    assert status == 200
    resp = check_response(body, sent)
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert "'c1'" in msg and OLD in msg and "end of patch" in msg
    assert "use 763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.10" in msg
    assert resp["auditAnnotations"]["verdict"] == "unsupported"


@pytest.mark.parametrize("kind", KINDS)
async def test_every_kind_is_judged(server: Server, kind: str) -> None:
    sent = review(wrap(kind, [OLD]))
    _, body = await post(server, sent)
    assert check_response(body, sent)["allowed"] is False
    sent = review(wrap(kind, [NEW]))
    _, body = await post(server, sent)
    assert check_response(body, sent)["allowed"] is True


async def test_init_and_ephemeral_containers(server: Server) -> None:
    sent = review(pod([NEW], init=[OLD]))
    _, body = await post(server, sent)
    assert "init0" in check_response(body, sent)["status"]["message"]
    p = pod([NEW])
    p["spec"]["ephemeralContainers"] = [{"name": "debug", "image": OLD}]
    sent = review(p, operation="UPDATE", old=pod([NEW]))
    _, body = await post(server, sent)
    assert "debug" in check_response(body, sent)["status"]["message"]


async def test_supported_non_dlc_and_other_objects_allowed(server: Server) -> None:
    for obj in (
        pod([NEW, "nginx:1.25"]),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}},
    ):
        sent = review(obj)
        _, body = await post(server, sent)
        resp = check_response(body, sent)
        assert resp["allowed"] is True and "warnings" not in resp


async def test_enforce_warns_below_deny_level(server: Server) -> None:
    sent = review(pod([OUTDATED]))
    _, body = await post(server, sent)
    resp = check_response(body, sent)
    assert resp["allowed"] is True
    assert any("outdated" in w and "0.36.0-lmi28.0.0-cu130" in w for w in resp["warnings"])


async def test_update_does_not_judge_unchanged_images_harder(server: Server) -> None:
    old = pod([OLD])
    new = pod([OLD], labels={"touched": "yes"})
    sent = review(new, operation="UPDATE", old=old)
    _, body = await post(server, sent)
    resp = check_response(body, sent)
    assert resp["allowed"] is True
    assert resp["warnings"]  # still told, not blocked
    sent = review(pod([OLD, OLD.replace("2.6.0", "2.7.1").replace("cu126", "cu128")]), operation="UPDATE", old=old)
    _, body = await post(server, sent)
    assert check_response(body, sent)["allowed"] is False  # a newly added unsupported image is denied


async def test_delete_and_connect_are_skipped(server: Server) -> None:
    sent = review(pod([OLD]), operation="DELETE")
    _, body = await post(server, sent)
    assert check_response(body, sent)["allowed"] is True


async def test_exempt_namespaces(server: Server) -> None:
    for ns in ("kube-system", "dlc-guard"):
        sent = review(pod([OLD]), namespace=ns)
        _, body = await post(server, sent)
        assert check_response(body, sent)["allowed"] is True


async def test_warn_and_audit_modes(tmp_path: Path) -> None:
    for mode in ("warn", "audit"):
        d = tmp_path / mode
        d.mkdir()
        srv, runner = await start(d, f"spec:\n  mode: {mode}\n")
        try:
            sent = review(wrap("Deployment", [OLD, SOON]))
            _, body = await post(srv, sent)
            resp = check_response(body, sent)
            assert resp["allowed"] is True
            assert resp["auditAnnotations"]["verdict"] == "unsupported"
            if mode == "warn":
                assert any(OLD in w and "unsupported" in w for w in resp["warnings"])
                # the API server keeps 256 characters of a warning: the image to move to must fit
                assert all(len(w) <= 256 for w in resp["warnings"])
                old = next(w for w in resp["warnings"] if OLD in w)
                assert old.endswith("; use tag 2.10.0-gpu-py313-cu130-ubuntu22.04-ec2"), old
            else:
                assert "warnings" not in resp
        finally:
            await runner.cleanup()


POLICY_EXEMPT = """
apiVersion: dlcguard.io/v1alpha1
kind: DLCGuardPolicy
spec:
  mode: enforce
  namespaces:
    sandbox: {mode: warn}
  exemptions:
    - objectSelector: {matchLabels: {dlc-guard.io/exempt: "true"}}
      reason: ticket ML-1
    - namespaces: ["legacy-*"]
      images: ["*/pytorch-training:2.6*"]
      expires: "2027-01-31"
    - namespaces: ["expired"]
      expires: "2026-01-01"
"""


async def test_exemptions_and_namespace_overrides(tmp_path: Path) -> None:
    srv, runner = await start(tmp_path, POLICY_EXEMPT)
    try:
        cases = [
            (review(pod([OLD], labels={"dlc-guard.io/exempt": "true"})), True),
            (review(pod([OLD]), namespace="legacy-app"), True),
            (review(pod([OLD.replace("2.6.0", "2.7.1").replace("cu126", "cu128")]), namespace="legacy-app"), False),
            (review(pod([OLD]), namespace="expired"), False),
            (review(pod([OLD]), namespace="sandbox"), True),
            (review(pod([OLD])), False),
        ]
        for sent, allowed in cases:
            _, body = await post(srv, sent)
            assert check_response(body, sent)["allowed"] is allowed, sent["request"]["namespace"]
    finally:
        await runner.cleanup()


async def test_mutate_adds_annotations(server: Server) -> None:
    sent = review(wrap("Deployment", [OLD]))
    _, body = await post(server, sent, "/mutate")
    resp = check_response(body, sent)
    assert resp["allowed"] is True and resp["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(resp["patch"]))
    assert patch == [
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {"dlc-guard.io/verdict": "unsupported", "dlc-guard.io/unsupported-images": f"c0={OLD}"},
        }
    ]
    obj = pod([SOON])
    obj["metadata"]["annotations"] = {"a": "b"}
    sent = review(obj)
    _, body = await post(server, sent, "/mutate")
    ops = json.loads(base64.b64decode(check_response(body, sent)["patch"]))
    assert {"op": "add", "path": "/metadata/annotations/dlc-guard.io~1verdict", "value": "expiring"} in ops
    assert any(op["path"].endswith("next-change") and op["value"] == "2027-01-22" for op in ops)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"kind": "Pod"}).encode(), "kind must be 'AdmissionReview'"),
        (
            json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {}}).encode(),
            "apiVersion",
        ),
        (json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}).encode(), "request is missing"),
        (
            json.dumps(
                {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": ""}}
            ).encode(),
            "uid",
        ),
    ],
)
async def test_bad_bodies_are_400(server: Server, raw: bytes, needle: str) -> None:
    status, body = await post(server, None, raw=raw)
    assert status == 400
    assert needle in body["error"]


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    srv, runner = await start(tmp_path, None, max_body=10_000)
    try:
        big = pod([NEW])
        big["metadata"]["annotations"] = {"x": "y" * 20_000}
        status, _ = await post(srv, review(big))
        assert status == 413
    finally:
        await runner.cleanup()


async def test_health_ready_metrics(server: Server) -> None:
    await post(server, review(pod([OLD])))
    async with aiohttp.ClientSession() as s:
        for path, needle in (
            ("/healthz", "ok"),
            ("/readyz", "ready"),
            ("/metrics", 'dlcguard_admission_requests_total{decision="deny",endpoint="validate",kind="Pod"'),
        ):
            async with s.get(server.url + path, ssl=server.ssl()) as r:
                assert r.status == 200
                assert needle in await r.text()
        async with s.get(server.url + "/metrics", ssl=server.ssl()) as r:
            text = await r.text()
    assert "dlcguard_admission_duration_seconds_bucket" in text
    assert 'dlcguard_image_verdicts_total{verdict="unsupported"}' in text
    assert "dlcguard_catalog_age_days" in text


async def test_tls_below_1_2_refused(server: Server) -> None:
    assert make_ssl_context(str(server.cert), str(server.key)).minimum_version == ssl.TLSVersion.TLSv1_2
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(server.cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
        async with aiohttp.ClientSession() as s, s.get(server.url + "/healthz", ssl=ctx):
            pass


async def test_certificate_rotation_without_restart(server: Server) -> None:
    first = server.cert.read_bytes()
    other = server.workdir / "new"
    other.mkdir()
    cert, key = write_cert(other, "rotated")
    os.replace(cert, server.cert)
    os.replace(key, server.key)
    assert server.cert.read_bytes() != first
    for _ in range(50):
        await asyncio.sleep(0.1)
        try:
            async with aiohttp.ClientSession() as s, s.get(server.url + "/healthz", ssl=server.ssl()) as r:
                if r.status == 200:
                    return  # the new certificate verifies
        except aiohttp.ClientError:
            continue
    pytest.fail("the rotated certificate was not served")


async def test_policy_reload(tmp_path: Path) -> None:
    srv, runner = await start(tmp_path, "spec:\n  mode: enforce\n")
    try:
        sent = review(pod([OLD]))
        _, body = await post(srv, sent)
        assert check_response(body, sent)["allowed"] is False
        policy = tmp_path / "policy.yaml"
        policy.write_text("spec:\n  mode: warn\n")
        os.utime(policy, (1, 1))
        for _ in range(50):
            await asyncio.sleep(0.1)
            sent = review(pod([OLD]))
            _, body = await post(srv, sent)
            if check_response(body, sent)["allowed"]:
                break
        else:
            pytest.fail("policy change not picked up")
        # a broken policy keeps the last good one
        policy.write_text("spec:\n  mode: sometimes\n")
        os.utime(policy, (2, 2))
        await asyncio.sleep(0.5)
        sent = review(pod([OLD]))
        _, body = await post(srv, sent)
        assert check_response(body, sent)["allowed"] is True
    finally:
        await runner.cleanup()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutation=st.sampled_from(["request", "object", "kind", "spec", "containers", "image", "operation", "raw"]),
    value=json_values,
)
async def test_fuzz_no_5xx(server: Server, mutation: str, value: Any) -> None:
    sent = review(wrap("Deployment", [OLD]))
    req = sent["request"]
    if mutation == "request":
        sent["request"] = value
    elif mutation == "object":
        req["object"] = value
    elif mutation == "kind":
        req["kind"] = value
    elif mutation == "spec":
        req["object"]["spec"] = value
    elif mutation == "containers":
        req["object"]["spec"]["template"]["spec"]["containers"] = value
    elif mutation == "image":
        req["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = value
    elif mutation == "operation":
        req["operation"] = value
    raw = json.dumps(value).encode() if mutation == "raw" else None
    status, body = await post(server, sent, raw=raw)
    assert status in (200, 400), body
    if status == 200:
        assert body["response"]["uid"] == sent["request"]["uid"]


def test_cli_webhook_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`dlc-guard webhook` as users run it: ready over TLS, then a clean exit on SIGTERM."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    cert, key = write_cert(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).parent / "dlc-guard"
    proc = subprocess.Popen(
        [
            str(exe),
            "webhook",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--mode",
            "enforce",
            "--log-denies",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        body = json.dumps(review(pod([OLD]))).encode()
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"webhook did not become ready: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.2)
        req = urllib.request.Request(
            f"https://127.0.0.1:{port}/validate", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            assert json.loads(r.read())["response"]["allowed"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(rec.get("msg") == "admission deny" and rec.get("worst") == "unsupported" for rec in logs), err


POLICY_NS_SELECTOR = """
spec:
  mode: enforce
  exemptions:
    - namespaceSelector:
        matchExpressions:
          - {key: team, operator: In, values: [research, legacy]}
          - {key: dlc-guard.io/enforce, operator: DoesNotExist}
      reason: research clusters
"""


async def test_namespace_selector_exemptions_use_namespace_labels(tmp_path: Path) -> None:
    labels = NamespaceLabels(
        {
            "lab": {"team": "research"},
            "lab-strict": {"team": "research", "dlc-guard.io/enforce": "true"},
            "prod": {"team": "serving"},
        }
    )
    srv, runner = await start(tmp_path, POLICY_NS_SELECTOR, namespace_labels=labels)
    try:
        for namespace, allowed in (("lab", True), ("lab-strict", False), ("prod", False), ("unknown-ns", False)):
            sent = review(pod([OLD]), namespace=namespace)
            _, body = await post(srv, sent)
            resp = check_response(body, sent)
            assert resp["allowed"] is allowed, namespace
            if allowed:
                assert "research clusters" in resp["auditAnnotations"]["exempted"]
        labels.apply("MODIFIED", {"metadata": {"name": "prod", "labels": {"team": "legacy"}}})
        sent = review(pod([OLD]), namespace="prod")
        _, body = await post(srv, sent)
        assert check_response(body, sent)["allowed"] is True
    finally:
        await runner.cleanup()


async def test_namespace_selector_never_matches_before_labels_are_known(tmp_path: Path) -> None:
    srv, runner = await start(tmp_path, POLICY_NS_SELECTOR, namespace_labels=NamespaceLabels())
    try:
        sent = review(pod([OLD]), namespace="lab")
        _, body = await post(srv, sent)
        assert check_response(body, sent)["allowed"] is False
    finally:
        await runner.cleanup()


async def test_dry_run_is_judged_and_marked(server: Server) -> None:
    sent = review(pod([OLD]), dry_run=True)
    _, body = await post(server, sent)
    resp = check_response(body, sent)
    assert resp["allowed"] is False
    assert resp["status"]["message"].startswith("dlc-guard denied this object (dry run): ")
    assert resp["auditAnnotations"]["dryRun"] == "true"
    sent = review(pod([OLD]), dry_run=True)
    _, body = await post(server, sent, "/mutate")
    resp = check_response(body, sent)
    assert resp["allowed"] is True and resp["auditAnnotations"]["dryRun"] == "true" and resp["patch"]


async def test_repeated_reviews_are_answered_from_the_decision_cache(server: Server) -> None:
    cache = server.app[STATE].decisions
    first = review(pod([OLD, NEW]))
    _, a = await post(server, first)
    again = review(pod([OLD, NEW]))  # the same object from another replica: a new uid
    _, b = await post(server, again)
    assert cache.hits >= 1
    assert b["response"]["uid"] == again["request"]["uid"] != a["response"]["uid"]
    assert {k: v for k, v in a["response"].items() if k != "uid"} == {
        k: v for k, v in b["response"].items() if k != "uid"
    }
    other_ns = review(pod([OLD, NEW]), namespace="kube-system")  # a different key: not a hit
    hits = cache.hits
    _, c = await post(server, other_ns)
    assert cache.hits == hits and c["response"]["allowed"] is True
