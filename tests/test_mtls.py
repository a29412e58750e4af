"""mTLS between a real kube-apiserver and a real ``dlc-guard webhook --client-ca``: the API
server presents its webhook client certificate (``--admission-control-config-file``, the
configuration README "Network exposure and mTLS" describes), and the webhook judges only
callers that present one."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import ControlPlane, available, control_plane, stop
from tests.tls import write_cert, write_client_cert
from tests.webhookproc import Webhook, launch

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

OLD = "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, Webhook]]:
    tmp = tmp_path_factory.mktemp("mtls")
    ca, client_cert, key_ = write_client_cert(tmp)
    # the API server's side: a client certificate for every webhook it calls
    kubeconfig = tmp / "webhook-client.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "users": [{"name": "*", "user": {"client-certificate": str(client_cert), "client-key": str(key_)}}],
            }
        )
    )
    admission = tmp / "admission.json"
    plugin = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(kubeconfig),
    }
    admission.write_text(
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [
                    {"name": "ValidatingAdmissionWebhook", "configuration": plugin},
                    {"name": "MutatingAdmissionWebhook", "configuration": plugin},
                ],
            }
        )
    )
    serving = tmp / "serving"
    serving.mkdir()
    cert, key = write_cert(serving)
    w = launch(serving, f"--client-ca={ca}", cert=(cert, key))
    try:
        flags = [f"--admission-control-config-file={admission}"]
        with control_plane(tmp / "control-plane", apiserver_args=flags) as cp:
            vwc = {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "dlc-guard-mtls"},
                "webhooks": [
                    {
                        "name": "validate.dlcguard.io",
                        "clientConfig": {
                            "url": f"https://127.0.0.1:{w.port}/validate",
                            "caBundle": base64.b64encode(cert.read_bytes()).decode(),
                        },
                        "rules": [
                            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                        ],
                        "failurePolicy": "Fail",
                        "sideEffects": "None",
                        "admissionReviewVersions": ["v1"],
                        "timeoutSeconds": 5,
                    }
                ],
            }
            cp.kubectl("apply", "-f", "-", stdin=json.dumps(vwc))
            yield cp, w
    finally:
        stop(w.proc)


def pod(name: str, image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": image}]},
        }
    )


def test_the_api_server_presents_its_certificate_and_gets_judgements(setup: tuple[ControlPlane, Webhook]) -> None:
    cp, w = setup
    denied = cp.kubectl("apply", "-f", "-", stdin=pod("old", OLD), check=False)
    assert denied.returncode != 0
    assert "denied the request" in denied.stderr and "pytorch-training" in denied.stderr, denied.stderr
    assert cp.kubectl("apply", "-f", "-", stdin=pod("web", "nginx:1.27")).returncode == 0
    assert "client certificate" not in Path(w.log).read_text()


def test_callers_without_the_certificate_are_refused(setup: tuple[ControlPlane, Webhook]) -> None:
    _, w = setup
    conn = w.connection()
    body = json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "object": {}}}
    ).encode()
    status, answer = w.post(conn, body)
    assert status == 403 and b"client certificate" in answer
    conn.close()
