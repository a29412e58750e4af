"""The Helm chart, rendered by a real helm (``make tools``): lint, the schema of its values, the
safety properties of what it renders, server-side validation by a real kube-apiserver, and
certificate reuse and rotation across real ``helm upgrade``s."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from policy.policy import load_policy
from policy.workloads import BUILTIN_RESOURCES
from tests.cluster import BIN, ControlPlane, available, control_plane
from tests.conftest import ROOT

HELM = BIN / "helm"
CHART = ROOT / "deploy" / "helm" / "dlc-guard"
NS = "dlc-guard"
KUBE_VERSION = "1.36.0"

pytestmark = pytest.mark.skipif(not HELM.exists(), reason=f"{HELM} missing: run `make tools`")

# representative non-default values: enforce, cert-manager, an operator limited to two
# namespaces, the mutating webhook, a digest-pinned image, a catalog ConfigMap, monitoring
CUSTOM: dict[str, Any] = {
    "image": {"repository": "registry.example/dlc-guard", "digest": "sha256:" + "ab" * 32},
    "policy": {
        "mode": "enforce",
        "denyLevel": "outdated",
        "exemptions": [{"namespaces": ["research"], "expires": "2027-03-31", "reason": "migration"}],
        "catalog": {"configMap": {"namespace": NS, "name": "dlc-catalog", "key": "catalog.json"}},
    },
    "webhook": {
        "replicas": 3,
        "timeoutSeconds": 5,
        "excludeNamespaces": ["kube-system", "monitoring"],
        "mutating": {"enabled": True},
        "logDenies": True,
        "extraRules": [{"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"]}],
    },
    "operator": {"namespaces": ["ml", "research"], "replicas": 3},
    "tls": {"mode": "certManager"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {"webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
}


def helm(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=check, timeout=120, env=env)


def render(tmp_path: Path, values: dict[str, Any] | None = None, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "-n", NS, "--kube-version", KUBE_VERSION]
    if values is not None:
        f = tmp_path / "values.yaml"
        f.write_text(yaml.safe_dump(values))
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in kinds(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(tmp_path_factory.mktemp("custom"), CUSTOM)


# -- lint and values schema ---------------------------------------------------------------------


def test_helm_lint_is_clean_with_default_and_custom_values(tmp_path: Path) -> None:
    r = helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in r.stdout
    f = tmp_path / "custom.yaml"
    f.write_text(yaml.safe_dump(CUSTOM))
    r = helm("lint", "--strict", str(CHART), "-f", str(f), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in r.stdout


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("policy.mode=block", "/policy/mode"),
        ("webhook.timeoutSeconds=60", "/webhook/timeoutSeconds"),
        ("webhook.failurePolicy=Maybe", "/webhook/failurePolicy"),
        ("webhook.replicaz=2", "replicaz"),
        ("image.digest=latest", "/image/digest"),
        ("tls.mode=secret", "/tls/existingSecret"),
        ("webhook.connections.max=0", "/webhook/connections/max"),
        ("webhook.bodyBudgetMiB=1", "/webhook/bodyBudgetMiB"),
        ("webhook.clientCA.configMap=a,webhook.clientCA.secret=b", "a configMap or a secret, not both"),
    ],
)
def test_values_schema_rejects_bad_values_precisely(tmp_path: Path, setting: str, complaint: str) -> None:
    r = helm("template", "rel", str(CHART), "-n", NS, "--set", setting, check=False)
    assert r.returncode != 0
    assert complaint in r.stderr


# -- safety properties ---------------------------------------------------------------------------


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in kinds(docs, "Deployment")}


@pytest.mark.parametrize("which", ["default", "custom"])
def test_pods_run_locked_down(which: str, request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(which)
    deps = deployments(docs)
    assert set(deps) == {"webhook", "operator"}
    for name, d in deps.items():
        spec = d["spec"]["template"]["spec"]
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert "memory" in c["resources"]["limits"], name
            assert not c["image"].endswith(":latest") and (":" in c["image"] or "@" in c["image"]), name
            assert c["args"][0] == name, "one image, the subcommand chooses the component"


def test_webhook_is_highly_available(default: list[dict[str, Any]]) -> None:
    wh = deployments(default)["webhook"]
    assert wh["spec"]["replicas"] == 2
    assert wh["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_labels = wh["spec"]["template"]["metadata"]["labels"]
    pdb = one(default, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    keys = {c["topologyKey"] for c in wh["spec"]["template"]["spec"]["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    svc = one(default, "Service", "rel-dlc-guard-webhook")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    probes = wh["spec"]["template"]["spec"]["containers"][0]
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_webhook_configuration_has_safe_defaults(default: list[dict[str, Any]]) -> None:
    vwc = one(default, "ValidatingWebhookConfiguration")
    hook, own = vwc["webhooks"]
    assert own["name"] == "resources.dlcguard.io" and own["failurePolicy"] == "Ignore"
    assert own["rules"][0]["resources"] == ["dlcguardpolicies", "dlcguardexceptions"]
    assert "namespaceSelector" not in own, "exceptions in dlc-guard's own namespace are checked too"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] <= 5
    assert hook["failurePolicy"] == "Ignore", "warn mode never denies: an outage must block nothing"
    excluded = next(e for e in hook["namespaceSelector"]["matchExpressions"] if e["operator"] == "NotIn")
    assert excluded["key"] == "kubernetes.io/metadata.name"
    assert {"kube-system", NS} <= set(excluded["values"])
    # no objectSelector: a workload's owner writes its labels, so no label may switch judgement off
    assert "objectSelector" not in hook
    assert {c["name"] for c in hook["matchConditions"]} == {"not-dlc-guard-operator", "images-may-change"}
    assert f"system:serviceaccount:{NS}:rel-dlc-guard-operator" in hook["matchConditions"][0]["expression"]
    covered = {(g, r) for rule in hook["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    # kubectl debug adds containers through pods/ephemeralcontainers: judged like any other
    assert covered == {(g, plural) for g, _, plural in BUILTIN_RESOURCES.values()} | {("", "pods/ephemeralcontainers")}
    for rule in hook["rules"]:
        assert rule["operations"] == ["CREATE", "UPDATE"]
    # dlc-guard's own pods are kept out by their namespace, not by a label anyone can copy
    for d in kinds(default, "Deployment"):
        assert not any(k.startswith("dlcguard.io/") for k in d["spec"]["template"]["metadata"]["labels"])
        assert d["metadata"]["namespace"] in excluded["values"]
    assert "Mutating" not in {d["kind"][:8] for d in default}


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ((), "Ignore"),
        (("policy.mode=audit",), "Ignore"),
        (("policy.mode=enforce",), "Fail"),
        (("policy.mode=enforce", "webhook.failurePolicy=Ignore"), "Ignore"),
        (("webhook.failurePolicy=Fail",), "Fail"),
    ],
)
def test_failure_policy_follows_the_mode_unless_chosen(tmp_path: Path, sets: tuple[str, ...], expected: str) -> None:
    vwc = one(render(tmp_path, None, *sets), "ValidatingWebhookConfiguration")
    assert vwc["webhooks"][0]["failurePolicy"] == expected


def _verify(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    key = issuer.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        assert cert.signature_hash_algorithm is not None
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        assert cert.signature_hash_algorithm is not None
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    else:  # pragma: no cover - helm's genCA makes RSA keys
        raise AssertionError(f"unexpected key type {type(key)}")


def test_generated_certificate_is_signed_for_the_service(tmp_path: Path) -> None:
    default = render(tmp_path, None, "tls.mode=generate")
    secret = one(default, "Secret")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    _verify(cert, ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"rel-dlc-guard-webhook.{NS}.svc" in sans
    not_after = dt.datetime.fromisoformat(secret["metadata"]["annotations"]["dlcguard.io/not-after"])
    assert abs((not_after - cert.not_valid_after_utc).total_seconds()) < 300
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=360)
    vwc = one(default, "ValidatingWebhookConfiguration")
    assert base64.b64decode(vwc["webhooks"][0]["clientConfig"]["caBundle"]) == data["ca.crt"]
    mounted = deployments(default)["webhook"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": secret["metadata"]["name"]}} in mounted


def grants(docs: list[dict[str, Any]], account: str) -> dict[tuple[str, str, str], set[str]]:
    """(namespace or '*', group, resource) -> verbs the service account is granted."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}
    out: dict[tuple[str, str, str], set[str]] = {}
    for b in kinds(docs, "ClusterRoleBinding") + kinds(docs, "RoleBinding"):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"]):
            continue
        scope = b["metadata"].get("namespace", "*")
        ref = b["roleRef"]
        role = roles[(ref["kind"], None if ref["kind"] == "ClusterRole" else scope, ref["name"])]
        for rule in role["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    out.setdefault((scope, g, r), set()).update(rule["verbs"])
    return out


READ = {"get", "list", "watch"}


def test_rbac_grants_each_component_only_what_it_uses(default: list[dict[str, Any]]) -> None:
    for d in kinds(default, "ClusterRole") + kinds(default, "Role"):
        for rule in d["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            if "secrets" in rule["resources"]:  # the webhook's TLS Secret alone, by name (create cannot be)
                assert d["kind"] == "Role" and d["metadata"]["name"].startswith("rel-dlc-guard-tls-")
                assert rule.get("resourceNames") == ["rel-dlc-guard-webhook-tls"] or rule["verbs"] == ["create"]
    assert grants(default, "rel-dlc-guard-webhook") == {
        ("*", "dlcguard.io", "dlcguardpolicies"): READ,
        ("*", "dlcguard.io", "dlcguardexceptions"): {"list", "watch"},
        ("*", "", "namespaces"): {"list", "watch"},
        (NS, "", "configmaps"): READ,  # the shared digest answers, by name
        (NS, "", "secrets"): READ,  # its TLS Secret, by name (tls.mode controller)
    }
    operator = grants(default, "rel-dlc-guard-operator")
    workload_verbs = READ | {"patch"}  # annotations are merge patches: never create, update or delete
    for group, _, plural in BUILTIN_RESOURCES.values():
        assert operator.pop(("*", group, plural)) == workload_verbs
    assert operator == {
        ("*", "wgpolicyk8s.io", "policyreports"): READ | {"create", "patch", "delete"},
        ("*", "wgpolicyk8s.io", "clusterpolicyreports"): READ | {"create", "patch", "delete"},
        ("*", "openreports.io", "reports"): READ | {"create", "patch", "delete"},
        ("*", "openreports.io", "clusterreports"): READ | {"create", "patch", "delete"},
        ("*", "", "events"): {"create", "patch"},
        ("*", "events.k8s.io", "events"): {"create", "patch"},
        ("*", "dlcguard.io", "dlcguardpolicies"): READ,
        ("*", "dlcguard.io", "dlcguardpolicies/status"): {"get", "patch"},
        ("*", "dlcguard.io", "dlcguardexceptions"): {"list", "watch"},
        ("*", "apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
        ("*", "kopf.dev", "clusterkopfpeerings"): READ | {"patch"},
        (NS, "", "configmaps"): {"get", "patch", "create"},  # publishes the digest answers
        (NS, "", "secrets"): {"get", "update", "create"},  # keeps the webhook's TLS Secret
        ("*", "admissionregistration.k8s.io", "validatingwebhookconfigurations"): {"get", "patch"},  # caBundle
        ("*", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"): {"get", "patch"},
    }
    names = {r["metadata"]["name"]: r for r in kinds(default, "Role")}
    read = names["rel-dlc-guard-digests-read"]["rules"]
    assert read == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["rel-dlc-guard-digests"],
            "verbs": ["get", "list", "watch"],
        }
    ]


def test_operator_runs_under_peering(default: list[dict[str, Any]]) -> None:
    op = deployments(default)["operator"]
    assert op["spec"]["replicas"] == 2
    args = op["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=dlc-guard" in args
    assert one(default, "ClusterKopfPeering")["metadata"]["name"] == "dlc-guard"


def test_default_policy_resource_is_accepted_by_the_engine(default: list[dict[str, Any]]) -> None:
    doc = one(default, "DLCGuardPolicy")
    policy = load_policy(doc, "chart", NS)
    assert policy.defaults.mode == "warn"
    webhook_args = deployments(default)["webhook"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--policy-resource={doc['metadata']['name']}" in webhook_args


def test_network_policies_admit_only_the_served_ports(default: list[dict[str, Any]]) -> None:
    pols = {d["metadata"]["name"]: d for d in kinds(default, "NetworkPolicy")}
    wh = pols["rel-dlc-guard-webhook"]["spec"]
    assert wh["policyTypes"] == ["Ingress"]
    assert [p["port"] for p in wh["ingress"][0]["ports"]] == [8443]
    op = pols["rel-dlc-guard-operator"]["spec"]
    assert sorted(p["port"] for p in op["ingress"][0]["ports"]) == [8080, 8081]


# -- non-default values -------------------------------------------------------------------------


def test_custom_values_render_what_they_ask_for(custom: list[dict[str, Any]]) -> None:
    vwc = one(custom, "ValidatingWebhookConfiguration")
    hook = vwc["webhooks"][0]
    assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 5
    assert "caBundle" not in hook["clientConfig"], "cert-manager injects it"
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NS}/rel-dlc-guard-webhook"
    assert ["kubeflow.org"] in [r["apiGroups"] for r in hook["rules"]]
    assert not kinds(custom, "Secret"), "cert-manager owns the Secret"
    assert {c["spec"].get("isCA", False) for c in kinds(custom, "Certificate")} == {True, False}
    mwc = one(custom, "MutatingWebhookConfiguration")
    assert mwc["webhooks"][0]["failurePolicy"] == "Ignore" and mwc["webhooks"][0]["clientConfig"]["service"][
        "path"
    ] == ("/mutate")
    deps = deployments(custom)
    assert deps["webhook"]["spec"]["replicas"] == 3
    assert deps["webhook"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example/dlc-guard@sha256:" + "ab" * 32
    )
    assert "--log-denies" in deps["webhook"]["spec"]["template"]["spec"]["containers"][0]["args"]
    op_args = deps["operator"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=ml", "--namespace=research"} <= set(op_args)
    assert {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in kinds(custom, "KopfPeering")} == {
        ("ml", "dlc-guard"),
        ("research", "dlc-guard"),
    }
    assert not kinds(custom, "ClusterKopfPeering")
    monitors = {d["metadata"]["name"] for d in kinds(custom, "ServiceMonitor")}
    assert monitors == {"rel-dlc-guard-webhook", "rel-dlc-guard-operator"}
    policy = load_policy(one(custom, "DLCGuardPolicy"), "chart", NS)
    assert policy.defaults.mode == "enforce" and policy.exemptions[0].reason == "migration"


def test_a_limited_operator_is_bound_per_namespace(custom: list[dict[str, Any]]) -> None:
    operator = grants(custom, "rel-dlc-guard-operator")
    assert ("ml", "apps", "deployments") in operator and ("research", "apps", "deployments") in operator
    assert ("*", "apps", "deployments") not in operator
    assert operator[("*", "", "namespaces")] == {"list", "watch"}
    assert ("*", "kopf.dev", "clusterkopfpeerings") not in operator
    # the catalog ConfigMap is readable by name only
    role = one(custom, "Role", "rel-dlc-guard-catalog")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["dlc-catalog"], "verbs": ["get"]}
    ]
    assert (NS, "", "configmaps") in grants(custom, "rel-dlc-guard-webhook")


# -- a real API server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if available() is not None:
        pytest.skip(str(available()))
    with control_plane(tmp_path_factory.mktemp("chart-control-plane")) as cp:
        cp.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        for ns in (NS, "ml", "research"):
            cp.kubectl("create", "namespace", ns)
        yield cp


FOREIGN_GROUPS = ("cert-manager.io/", "monitoring.coreos.com/")


@pytest.mark.parametrize("which", ["default", "custom"])
def test_rendered_manifests_validate_on_a_real_api_server(
    which: str, request: pytest.FixtureRequest, cluster: ControlPlane
) -> None:
    docs = request.getfixturevalue(which)
    # cert-manager's and the Prometheus operator's kinds need their own CRDs, not installed here
    ours = [d for d in docs if not d["apiVersion"].startswith(FOREIGN_GROUPS)]
    foreign = {d["kind"] for d in docs} - {d["kind"] for d in ours}
    assert foreign <= {"Issuer", "Certificate", "ServiceMonitor"}
    r = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin="---\n".join(yaml.safe_dump(d) for d in ours),
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("(server dry run)") == len(ours)


def _helm_env(cp: ControlPlane, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(cp.kubeconfig),
        "HELM_CACHE_HOME": str(tmp / "cache"),
        "HELM_CONFIG_HOME": str(tmp / "config"),
        "HELM_DATA_HOME": str(tmp / "data"),
    }


def _tls(cp: ControlPlane) -> tuple[bytes, bytes, list[x509.Certificate]]:
    secret = json.loads(cp.kubectl("get", "secret", "-n", NS, "rel-dlc-guard-webhook-tls", "-o", "json").stdout)
    vwc = json.loads(cp.kubectl("get", "validatingwebhookconfiguration", "rel-dlc-guard-webhook", "-o", "json").stdout)
    bundle = base64.b64decode(vwc["webhooks"][0]["clientConfig"]["caBundle"])
    return (
        base64.b64decode(secret["data"]["tls.crt"]),
        base64.b64decode(secret["data"]["ca.crt"]),
        x509.load_pem_x509_certificates(bundle),
    )


def test_install_keeps_the_certificate_until_it_nears_expiry(cluster: ControlPlane, tmp_path: Path) -> None:
    """Real installs and upgrades: the certificate survives upgrades while it has time left; near
    expiry an upgrade issues a new one and trusts both CAs while the replicas switch over."""
    env = _helm_env(cluster, tmp_path)
    # the operator would otherwise need its peering; the webhook is what carries certificates
    base = ["rel", str(CHART), "-n", NS, "--set", "operator.enabled=false", "--set", "tls.mode=generate"]
    base.append("--wait=false")
    helm("install", *base, env=env)
    try:
        crt1, ca1, bundle1 = _tls(cluster)
        assert [c.public_bytes(Encoding.PEM) for c in bundle1] == [ca1]
        helm("upgrade", *base, env=env)
        crt2, ca2, _ = _tls(cluster)
        assert (crt2, ca2) == (crt1, ca1), "an upgrade with time left keeps the certificate"
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        cluster.kubectl(
            "annotate", "secret", "-n", NS, "rel-dlc-guard-webhook-tls", f"dlcguard.io/not-after={soon}", "--overwrite"
        )
        helm("upgrade", *base, env=env)
        crt3, ca3, bundle3 = _tls(cluster)
        assert crt3 != crt1 and ca3 != ca1, "within renewBeforeDays an upgrade issues new ones"
        assert [c.public_bytes(Encoding.PEM) for c in bundle3] == [ca3, ca1], "both CAs trusted during the switch"
        _verify(x509.load_pem_x509_certificate(crt3), x509.load_pem_x509_certificate(ca3))
        policy = json.loads(cluster.kubectl("get", "dlcguardpolicy", "default", "-o", "json").stdout)
        assert policy["spec"]["mode"] == "warn"
    finally:
        helm("uninstall", "rel", "-n", NS, env=env, check=False)


def test_exceptions_are_granted_by_rbac_not_by_the_workload_owner(
    tmp_path: Path, default: list[dict[str, Any]]
) -> None:
    crd = yaml.safe_load((CHART / "crds" / "dlcguard.io_dlcguardexceptions.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(schema["required"]) == {"reason", "expires", "images"}
    assert schema["properties"]["expires"]["format"] == "date"
    roles = {d["metadata"]["name"]: d for d in kinds(default, "ClusterRole")}
    approver, viewer = roles["rel-dlc-guard-exception-approver"], roles["rel-dlc-guard-exception-viewer"]
    assert {"create", "patch"} <= set(approver["rules"][0]["verbs"])
    assert not any("aggregate-to" in k for k in approver["metadata"]["labels"]), "no self-service by default"
    assert set(viewer["rules"][0]["verbs"]) == READ
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    bound = kinds(default, "ClusterRoleBinding") + kinds(default, "RoleBinding")
    assert not any(b["roleRef"]["name"] == "rel-dlc-guard-exception-approver" for b in bound), "bound to nobody"
    group = {"kind": "Group", "name": "platform-security", "apiGroup": "rbac.authorization.k8s.io"}
    docs = render(tmp_path, {"exceptions": {"approvers": [group]}})
    binding = one(docs, "ClusterRoleBinding", "rel-dlc-guard-exception-approver")
    assert binding["subjects"][0]["name"] == "platform-security"


def test_webhook_limits_drain_and_client_ca_reach_the_process(tmp_path: Path) -> None:
    from controller.cli.main import build_parser

    values = {
        "webhook": {
            "connections": {"max": 64, "headerTimeoutSeconds": 4, "bodyTimeoutSeconds": 6, "idleTimeoutSeconds": 30},
            "bodyBudgetMiB": 8,
            "drainSeconds": 12,
            "clientCA": {"configMap": "apiserver-webhook-ca", "key": "ca.pem"},
        }
    }
    wh = deployments(render(tmp_path, values))["webhook"]
    pod = wh["spec"]["template"]["spec"]
    c = pod["containers"][0]
    # the rendered arguments are ones the real command line accepts, with the values asked for
    args = build_parser().parse_args(c["args"])
    assert (args.max_connections, args.header_timeout, args.body_timeout, args.idle_timeout) == (64, 4, 6, 30)
    assert args.body_budget == 8 and args.drain_seconds == 12
    mount = next(m for m in c["volumeMounts"] if m["name"] == "client-ca")
    assert args.client_ca == f"{mount['mountPath']}/ca.pem"
    assert next(v for v in pod["volumes"] if v["name"] == "client-ca")["configMap"]["name"] == "apiserver-webhook-ca"
    # the kubelet waits for the drain and the in-flight reviews before it kills the pod
    assert pod["terminationGracePeriodSeconds"] >= args.drain_seconds + 20
    # by default: no client CA, and the process's own defaults agree with the chart's
    default_args = build_parser().parse_args(
        deployments(render(tmp_path))["webhook"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert default_args.client_ca is None
    assert (
        default_args.max_connections
        == build_parser().parse_args(["webhook", "--tls-cert=a", "--tls-key=b"]).max_connections
    )


def test_controller_mode_renders_the_same_every_time_and_gives_each_side_its_part(tmp_path: Path) -> None:
    from controller.cli.main import build_parser

    first, second = render(tmp_path), render(tmp_path)
    assert first == second, "helm template (Argo CD, Flux) renders the same on every run"
    assert not kinds(first, "Secret"), "no certificate in the manifests: the controller keeps it"
    for hook in one(first, "ValidatingWebhookConfiguration")["webhooks"]:
        assert "caBundle" not in hook["clientConfig"], "the controller fills the caBundle"
    deps = deployments(first)
    webhook = build_parser().parse_args(deps["webhook"]["spec"]["template"]["spec"]["containers"][0]["args"])
    operator = build_parser().parse_args(deps["operator"]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert webhook.tls_secret == operator.tls_secret == "rel-dlc-guard-webhook-tls" and webhook.tls_cert is None
    assert f"rel-dlc-guard-webhook.{NS}.svc" in operator.tls_name
    assert operator.webhook_configuration == ["rel-dlc-guard-webhook"]
    # the webhook reads the Secret by name; the operator writes it and patches the two configurations
    roles = {r["metadata"]["name"]: r for r in kinds(first, "Role") + kinds(first, "ClusterRole")}
    (read,) = roles["rel-dlc-guard-tls-read"]["rules"]
    assert read["resourceNames"] == ["rel-dlc-guard-webhook-tls"] and read["verbs"] == ["get", "list", "watch"]
    ca = roles["rel-dlc-guard-operator-webhook-ca"]["rules"][0]
    assert ca["resourceNames"] == ["rel-dlc-guard-webhook"] and ca["verbs"] == ["get", "patch"]
    r = helm("template", "rel", str(CHART), "-n", NS, "--set", "operator.enabled=false", check=False)
    assert r.returncode != 0 and "tls.mode controller needs the operator" in r.stderr


def test_an_upgrade_in_controller_mode_keeps_the_controllers_certificate_and_bundle(
    cluster: ControlPlane, tmp_path: Path
) -> None:
    """The controller's caBundle is not in the chart: a real `helm upgrade` must leave it (and the
    Secret it keeps) alone, or admission would fail until the next pass put it back."""
    from controller.kube.certkeeper import CertKeeper, KeeperSettings
    from controller.kube.client import Rest, connect_api

    env = _helm_env(cluster, tmp_path)
    base = ["rel", str(CHART), "-n", NS, "--set", "webhook.mutating.enabled=true", "--wait=false"]
    helm("install", *base, env=env)
    try:
        names = ("rel-dlc-guard-webhook", f"rel-dlc-guard-webhook.{NS}.svc")
        keeper = CertKeeper(
            Rest(connect_api(str(cluster.kubeconfig))),
            KeeperSettings(NS, "rel-dlc-guard-webhook-tls", names, ("rel-dlc-guard-webhook",)),
        )
        changes = keeper.reconcile()  # what the operator's active replica does
        assert "caBundle of rel-dlc-guard-webhook" in changes
        before = _tls(cluster)
        mwc_doc = cluster.kubectl("get", "mutatingwebhookconfiguration", "rel-dlc-guard-webhook", "-o", "json")
        mwc = json.loads(mwc_doc.stdout)
        assert mwc["webhooks"][0]["clientConfig"]["caBundle"], "both configurations follow"
        helm("upgrade", *base, "--set", "webhook.timeoutSeconds=4", env=env)
        after = _tls(cluster)
        assert (after[0], after[1]) == (before[0], before[1]), "the Secret is the controller's, not the chart's"
        assert [c.public_bytes(Encoding.PEM) for c in after[2]] == [before[1]], "the caBundle survives the upgrade"
        assert keeper.reconcile() == [], "nothing to repair"
    finally:
        helm("uninstall", "rel", "-n", NS, env=env, check=False)
        cluster.kubectl("delete", "secret", "-n", NS, "rel-dlc-guard-webhook-tls", "--ignore-not-found")
