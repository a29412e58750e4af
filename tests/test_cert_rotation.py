"""The webhook's certificate kept by the controller, on a real kube-apiserver: the operator
(``--tls-secret``, with lifetimes of seconds) issues a CA and a serving certificate, re-issues the
certificate before it expires and switches CAs, keeping the webhook configuration's caBundle in
step; the webhook (``--tls-secret``) serves each new certificate without a restart. Reviews sent
through the API server the whole time never fail."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.cluster import ControlPlane, available, control_plane, free_port, stop
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

NS = "dlc-guard"
SECRET = "dlc-guard-webhook-tls"
VWC = "dlc-guard-rotation"
OLD = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"


@dataclass
class Setup:
    cp: ControlPlane
    operator: subprocess.Popen[bytes]
    webhook: subprocess.Popen[bytes]
    logs: Path
    started: float = field(default_factory=time.monotonic)


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "controller.cli.main", *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("rotation")
    port = free_port()
    with control_plane(tmp / "control-plane") as cp:
        cp.kubectl("apply", "-f", str(ROOT / "deploy" / "helm" / "dlc-guard" / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        for ns in (NS, "team"):
            cp.kubectl("create", "namespace", ns)
        vwc = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": VWC},
            "webhooks": [
                {
                    "name": "validate.dlcguard.io",
                    "clientConfig": {"url": f"https://127.0.0.1:{port}/validate"},  # no caBundle: the keeper's
                    "rules": [
                        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team"}},
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 5,
                }
            ],
        }
        cp.kubectl("apply", "-f", "-", stdin=json.dumps(vwc))
        hours = 1 / 3600
        operator = spawn(
            [
                "operator",
                f"--kubeconfig={cp.kubeconfig}",
                "--metrics-port=0",
                f"--controller-namespace={NS}",
                f"--tls-secret={SECRET}",
                "--tls-name=127.0.0.1",
                "--tls-name=localhost",
                f"--webhook-configuration={VWC}",
                f"--tls-validity-hours={40 * hours}",
                f"--tls-renew-hours={25 * hours}",
                f"--ca-validity-hours={80 * hours}",
                f"--ca-renew-hours={45 * hours}",
                "--tls-check-seconds=1",
            ],
            tmp / "operator.log",
        )
        policy = tmp / "policy.yaml"
        policy.write_text("spec:\n  mode: enforce\n")
        webhook = spawn(
            [
                "webhook",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--tls-secret={SECRET}",
                f"--namespace={NS}",
                f"--kubeconfig={cp.kubeconfig}",
                f"--policy={policy}",
                "--as-of=2026-11-23",
            ],
            tmp / "webhook.log",
        )
        try:
            yield Setup(cp, operator, webhook, tmp)
        finally:
            stop(webhook)
            stop(operator)


def attempt(cp: ControlPlane, i: int) -> str | None:
    """A pod with an unsupported image, created as a server-side dry run: dlc-guard must deny it
    (``None``); anything else (the webhook unreachable, its certificate untrusted) is a failure."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{i}", "namespace": "team"},
        "spec": {"containers": [{"name": "main", "image": OLD}]},
    }
    r = cp.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
    if r.returncode != 0 and "dlc-guard denied this object" in r.stderr:
        return None
    return (r.stderr or r.stdout).strip()[:300] or "admitted"


def secret(cp: ControlPlane) -> dict[str, bytes]:
    r = cp.kubectl("get", "secret", SECRET, "-n", NS, "-o", "json", check=False)
    if r.returncode != 0:
        return {}
    return {k: base64.b64decode(v) for k, v in (json.loads(r.stdout).get("data") or {}).items()}


def bundle(cp: ControlPlane) -> bytes:
    doc = json.loads(cp.kubectl("get", "validatingwebhookconfiguration", VWC, "-o", "json").stdout)
    return base64.b64decode(doc["webhooks"][0]["clientConfig"].get("caBundle") or "")


def serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def test_rotations_keep_admission_working_with_no_failed_request(setup: Setup) -> None:
    cp = setup.cp
    deadline = time.monotonic() + 60
    while attempt(cp, 0) is not None:  # the keeper writes the Secret, the webhook starts serving
        assert time.monotonic() < deadline, (setup.logs / "operator.log").read_text()[-3000:] + (
            setup.logs / "webhook.log"
        ).read_text()[-3000:]
        assert setup.operator.poll() is None and setup.webhook.poll() is None
        time.sleep(1)

    failures: list[str] = []
    sent = [0]
    stop_load = threading.Event()

    def load() -> None:
        while not stop_load.is_set():
            sent[0] += 1
            outcome = attempt(cp, sent[0])
            if outcome is not None:
                failures.append(outcome)

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    serving, cas, bundles = set(), set(), set()
    try:
        end = time.monotonic() + 100  # two CA lifetimes' worth of switches, several serving certificates
        while time.monotonic() < end:
            data = secret(cp)
            if data.get("tls.crt"):
                serving.add(serial(data["tls.crt"]))
                cas.add(serial(data["ca.crt"]))
                published = bundle(cp)
                bundles.add(published)
                # whatever is served is signed by a CA the API server is given
                issuer = x509.load_pem_x509_certificate(data["tls.crt"]).issuer
                assert any(ca.subject == issuer for ca in x509.load_pem_x509_certificates(published))
            time.sleep(1)
    finally:
        stop_load.set()
        for t in threads:
            t.join(30)
    assert not failures, f"{len(failures)} of {sent[0]} reviews failed: {failures[:3]}"
    assert sent[0] > 50
    assert len(serving) >= 3, "the serving certificate was re-issued"
    assert len(cas) >= 2, "the CA was switched"
    assert len(bundles) >= 3, "the caBundle followed (staged, switched, old one dropped)"
    served = (setup.logs / "webhook.log").read_text().count("serving the TLS Secret's new certificate")
    assert served >= 3, "the webhook served each new certificate without a restart"
    assert setup.webhook.poll() is None and setup.operator.poll() is None


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    def run(*args: str) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "controller.cli.main", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
        )

    r = run("webhook", "--tls-secret=x", "--tls-cert=a", "--tls-key=b")
    assert r.returncode == 2 and "--tls-cert and --tls-key, or --tls-secret" in r.stderr
    r = run("operator", "--tls-secret=x", "--controller-namespace=n")
    assert r.returncode == 2 and "at least one --tls-name" in r.stderr
