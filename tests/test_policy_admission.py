"""A bad edit of dlc-guard's own resources is refused in kubectl, with the field named, on a real
kube-apiserver: by the CRD schema (types, enums, formats, CEL rules) and, for what a schema cannot
say, by a real ``dlc-guard webhook`` judging its own kinds through the chart's
ValidatingWebhookConfiguration. ``kubectl explain`` describes every field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster import ControlPlane, available, control_plane, stop
from tests.conftest import ROOT
from tests.test_e2e import point_at, render_chart
from tests.webhookproc import Webhook, launch

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

CRDS = ROOT / "deploy" / "helm" / "dlc-guard" / "crds"
OWN_CRDS = ["dlcguard.io_dlcguardpolicies.yaml", "dlcguard.io_dlcguardexceptions.yaml"]


def undescribed(schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Every property (and list item, map value) without a description."""
    for name, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        if name != "metadata" and not sub.get("description"):
            yield here
        yield from undescribed(sub, here)
    for key in ("items", "additionalProperties"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            yield from undescribed(sub, f"{path}[]")


@pytest.mark.parametrize("crd", sorted(p.name for p in CRDS.glob("*.yaml")))
def test_every_field_of_the_crds_is_described(crd: str) -> None:
    doc = yaml.safe_load((CRDS / crd).read_text())
    for version in doc["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert schema.get("description"), f"{crd}: the kind itself"
        missing = [p for p in undescribed(schema) if not p.endswith("[]")]
        assert not missing, f"{crd} {version['name']}: no description for {missing}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, Webhook]]:
    tmp = tmp_path_factory.mktemp("policy-admission")
    (tmp / "webhook").mkdir()
    w = launch(tmp / "webhook")  # the real webhook, to judge dlc-guard's own kinds
    try:
        with control_plane(tmp / "control-plane") as cp:
            cp.kubectl("apply", "-f", str(CRDS / OWN_CRDS[0]), "-f", str(CRDS / OWN_CRDS[1]))
            cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            vwc = next(d for d in render_chart("registry.invalid/dlc") if d["kind"] == "ValidatingWebhookConfiguration")
            own = {**vwc, "webhooks": [h for h in vwc["webhooks"] if h["name"] == "resources.dlcguard.io"]}
            assert own["webhooks"], "the chart validates its own resources"
            pointed = point_at(own, f"https://127.0.0.1:{w.port}/validate", w.trust.read_bytes())
            cp.kubectl("apply", "-f", "-", stdin=json.dumps(pointed))
            cp.kubectl("create", "namespace", "team")
            yield cp, w
    finally:
        stop(w.proc)


def policy(**spec: Any) -> str:
    return json.dumps(
        {"apiVersion": "dlcguard.io/v1alpha1", "kind": "DLCGuardPolicy", "metadata": {"name": "p"}, "spec": spec}
    )


def apply(cp: ControlPlane, doc: str) -> tuple[int, str]:
    r = cp.kubectl("apply", "-f", "-", stdin=doc, check=False)
    return r.returncode, r.stderr


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"mode": "block"}, 'spec.mode: Unsupported value: "block"'),
        ({"modee": "enforce"}, 'unknown field "spec.modee"'),
        ({"exemptions": [{"images": ["*"], "expires": "2027-13-45"}]}, "spec.exemptions[0].expires"),
        ({"exemptions": [{"reason": "no scope"}]}, "an exemption must name namespaces, a selector or images"),
        (
            {"exemptions": [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}]},
            "In and NotIn need values",
        ),
        ({"catalog": {"url": "https://a.example/c.json", "path": "/c.json"}}, "name one catalog source"),
        ({"catalog": {"url": "file:///etc/passwd"}}, "spec.catalog.url: Invalid value"),
        ({"warnDays": -1}, "spec.warnDays"),
        # what the schema lets through and the webhook refuses: an exemption scoped by an empty list
        ({"exemptions": [{"namespaces": []}]}, "spec.exemptions[0]: an exemption must name namespaces"),
    ],
)
def test_an_invalid_policy_is_refused_with_the_field_named(
    cluster: tuple[ControlPlane, Webhook], spec: dict[str, Any], named: str
) -> None:
    cp, _ = cluster
    code, err = apply(cp, policy(**spec))
    assert code != 0 and named in err, err
    assert "dlcguardpolicies" not in cp.kubectl("get", "dlcguardpolicies", "-o", "name").stdout


def test_a_valid_policy_is_accepted_and_an_invalid_edit_of_it_refused(cluster: tuple[ControlPlane, Webhook]) -> None:
    cp, _ = cluster
    good = policy(mode="enforce", exemptions=[{"namespaces": ["legacy-*"], "expires": "2027-01-31", "reason": "r"}])
    assert apply(cp, good)[0] == 0
    code, err = apply(cp, policy(mode="enforce", exemptions=[{"namespaces": []}]))
    assert code != 0 and "DLCGuardPolicy p is invalid" in err, err
    stored = json.loads(cp.kubectl("get", "dlcguardpolicy", "p", "-o", "json").stdout)
    assert stored["spec"]["exemptions"][0]["namespaces"] == ["legacy-*"], "the good policy stays stored"
    cp.kubectl("delete", "dlcguardpolicy", "p")


def test_an_invalid_exception_is_refused_with_the_field_named(cluster: tuple[ControlPlane, Webhook]) -> None:
    cp, _ = cluster
    doc = {
        "apiVersion": "dlcguard.io/v1alpha1",
        "kind": "DLCGuardException",
        "metadata": {"name": "x", "namespace": "team"},
        "spec": {"reason": "ticket", "images": ["*"]},
    }
    code, err = apply(cp, json.dumps(doc))
    assert code != 0 and "spec.expires: Required value" in err, err


def test_kubectl_explain_describes_the_fields(cluster: tuple[ControlPlane, Webhook]) -> None:
    cp, _ = cluster
    out = cp.kubectl("explain", "dlcguardpolicy.spec.exemptions").stdout
    assert "Exemptions written by the policy's owner" in out
    assert "objectSelector" in out and "A label selector over the workload's own labels" in out
    out = cp.kubectl("explain", "dlcguardexception.spec.match.selector.matchExpressions").stdout
    assert "Requirements that must all hold" in out


def test_kubectl_explain_covers_the_anaconda_switch(cluster: tuple[ControlPlane, Webhook]) -> None:
    cp, _ = cluster
    assert "Anaconda licence" in cp.kubectl("explain", "dlcguardpolicy.spec.anacondaNotice").stdout
