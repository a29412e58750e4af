"""Routes around enforcement, tried as a namespace user without admin rights would.

A real etcd + kube-apiserver, the chart's own ValidatingWebhookConfiguration (and its annotating
MutatingWebhookConfiguration) in ``enforce`` mode, the webhook and the operator as processes
under their service accounts. ``alice`` is a team member: her token authenticates her, and
RBAC gives her what Kubernetes' ``admin`` role gives a namespace (the bootstrap
``system:aggregate-to-admin/edit/view`` roles it aggregates, plus the chart's roles that
aggregate into them) in namespace ``team``, and ``kubectl debug`` there. Every test acts as
her, through ``kubectl``, and each one is a route that was open before it was closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.cluster import (
    ControlPlane,
    control_plane,
    deployment,
    garbage_collector,
    install_crds,
    pod,
    service_account,
    stop,
)
from tests.registry import PYTORCH_26_LABELS, registry
from tests.test_e2e import (
    CATALOG,
    NEW,
    NS,
    OLD,
    OPERATOR_SA,
    RELEASE,
    WEBHOOK_SA,
    Product,
    catalog_config_map,
    point_at,
    render_chart,
    wait_for,
)
from tests.test_e2e import pytestmark as E2E_MARKS
from tests.tls import write_cert

pytestmark = list(E2E_MARKS)  # the same tools, skipped the same way

TEAM = "team"
ALICE = ("alice", ["team-developers", "system:authenticated"])
ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
VLLM_OLD = "vllm:0.22.0-gpu-py312-cu130-ubuntu22.04-ec2"  # only the newest vLLM is supported
SUPPORTED_TAG = "2.10.0-gpu-py313-cu130-ubuntu22.04-ec2"
PYTORCHJOB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "pytorchjobs.kubeflow.org"},
    "spec": {
        "group": "kubeflow.org",
        "scope": "Namespaced",
        "names": {
            "kind": "PyTorchJob",
            "plural": "pytorchjobs",
            "singular": "pytorchjob",
            "listKind": "PyTorchJobList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def pytorchjob(name: str, image: str) -> dict[str, Any]:
    template = {"spec": {"containers": [{"name": "pytorch", "image": image}]}}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": TEAM},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": template}}},
    }


class Team:
    """kubectl as alice."""

    def __init__(self, cp: ControlPlane) -> None:
        self.kubeconfig = cp.kubeconfig_as(ALICE[0])
        self.cp = cp

    def kubectl(self, *args: str, stdin: str | None = None) -> Any:
        import subprocess

        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "-n", TEAM, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def apply(self, *docs: dict[str, Any], flags: tuple[str, ...] = ()) -> Any:
        return self.kubectl("apply", *flags, "-f", "-", stdin="---\n".join(yaml.safe_dump(d) for d in docs))


@dataclass
class World:
    p: Product
    alice: Team
    old_digest: str
    """An image whose labels say PyTorch 2.6, pushed to the mirror under a supported tag."""


def refused(r: Any, *words: str) -> str:
    assert r.returncode != 0, f"admitted:\n{r.stdout}{r.stderr}"
    for w in words:
        assert w in r.stderr, r.stderr
    return str(r.stderr)


def denied_by_us(r: Any) -> str:
    return refused(r, "dlc-guard denied this object")


@pytest.fixture(scope="module", name="w")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bypass")
    users = [service_account(NS, WEBHOOK_SA), service_account(NS, OPERATOR_SA), ALICE]
    with (
        control_plane(tmp / "control-plane", users) as cp,
        garbage_collector(cp),
        registry(tmp / "registry") as reg,
    ):
        cert, key = write_cert(tmp)
        p = Product(cp, tmp, cert, key, reg)
        install_crds(cp)
        p.apply(PYTORCHJOB_CRD)
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        for ns in (NS, TEAM, "other"):
            cp.kubectl("create", "namespace", ns)
        # there before dlc-guard: a pod whose init container runs an old image, and a training job
        legacy = pod("legacy", TEAM, NEW)
        legacy["spec"]["initContainers"] = [{"name": "fetch", "image": OLD}]
        assert p.apply(legacy, pytorchjob("train", OLD), deployment("grandfathered", TEAM, OLD)).returncode == 0
        job_pod = pod("train-master-0", TEAM, OLD)
        job_pod["metadata"]["ownerReferences"] = [
            {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "train", "uid": "u-1", "controller": True}
        ]
        assert p.apply(job_pod).returncode == 0
        docs = render_chart(
            f"{reg.host}/dlc",
            "webhook.mutating.enabled=true",
            'json:webhook.extraRules=[{"apiGroups":["kubeflow.org"],"resources":["pytorchjobs"]}]',
        )
        hooks = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
        rest = [d for d in docs if not d["kind"].endswith("WebhookConfiguration")]
        r = p.apply(catalog_config_map(CATALOG), *rest)
        assert r.returncode == 0, r.stderr
        # alice: a namespace admin of "team", as the admin ClusterRole would make her, plus kubectl debug
        bindings = ["system:aggregate-to-admin", "system:aggregate-to-edit", "system:aggregate-to-view"]
        bindings += [d["metadata"]["name"] for d in rest if d["kind"] == "ClusterRole" and _aggregates(d)]
        for role in bindings:
            cp.kubectl(
                "create",
                "rolebinding",
                f"alice-{role.replace(':', '-')}",
                f"--clusterrole={role}",
                "--user=alice",
                "-n",
                TEAM,
            )
        cp.kubectl(
            "create", "role", "debugger", "--verb=get,patch,update", "--resource=pods/ephemeralcontainers", "-n", TEAM
        )
        cp.kubectl("create", "rolebinding", "alice-debugger", "--role=debugger", "--user=alice", "-n", TEAM)
        # what Kubeflow's own aggregated roles give a namespace editor
        cp.kubectl(
            "create",
            "role",
            "training",
            "--verb=get,list,watch,create,update,patch,delete",
            "--resource=pytorchjobs.kubeflow.org",
            "-n",
            TEAM,
        )
        cp.kubectl("create", "rolebinding", "alice-training", "--role=training", "--user=alice", "-n", TEAM)
        p.start_webhook()
        for hook in hooks:
            path = "/mutate" if hook["kind"].startswith("Mutating") else "/validate"
            r = p.apply(point_at(hook, f"https://127.0.0.1:{p.webhook_port}{path}", cert.read_bytes()))
            assert r.returncode == 0, r.stderr
        p.start_operator()
        # an image pushed under a supported tag whose content is PyTorch 2.6 (end of patch)
        old_digest = reg.image("dlc/pytorch-training", PYTORCH_26_LABELS, tag=SUPPORTED_TAG)
        try:
            yield World(p, Team(cp), old_digest)
        finally:
            for proc in p.operators:
                if proc.poll() is None:
                    stop(proc)
            p.stop_webhook()


def _aggregates(role: dict[str, Any]) -> bool:
    labels = role["metadata"].get("labels") or {}
    return labels.get("rbac.authorization.k8s.io/aggregate-to-admin") == "true"


# -- hole 1: /mutate poisoned the decision cache ---------------------------------------------------


def test_with_the_mutating_webhook_enforce_still_denies_and_admits(w: World) -> None:
    alice = w.alice
    # the API server calls /mutate first, then /validate with the same object: each gets its own answer
    denied_by_us(alice.apply(deployment("poison", TEAM, OLD)))
    r = alice.apply(deployment("fine", TEAM, NEW))
    assert r.returncode == 0, r.stderr  # a patch in a validating answer would make the API server refuse
    got = json.loads(alice.kubectl("get", "deploy", "fine", "-o", "json").stdout)
    assert got["metadata"]["annotations"]["dlc-guard.io/verdict"] == "supported"  # /mutate did its part


# -- hole 2: self-service opt-out by label ----------------------------------------------------------


def test_an_ignore_label_on_the_workload_opts_nothing_out(w: World) -> None:
    alice = w.alice
    denied_by_us(alice.kubectl("run", "x", f"--image={OLD}", "--labels=dlcguard.io/ignore=true"))
    denied_by_us(alice.apply(deployment("labelled", TEAM, OLD, {"dlcguard.io/ignore": "true"})))


def test_a_team_member_cannot_label_the_namespace_out(w: World) -> None:
    alice = w.alice
    refused(alice.kubectl("label", "namespace", TEAM, "dlcguard.io/ignore=true"), "forbidden")


def test_self_service_exemptions_are_named_in_the_policy_status(w: World) -> None:
    p = w.p
    p.patch_policy({"exemptions": [{"objectSelector": {"matchLabels": {"legacy": "yes"}}, "reason": "old"}]})
    try:

        def said() -> str | None:
            doc = p.get("dlcguardpolicy", "default") or {}
            for c in (doc.get("status") or {}).get("conditions") or []:
                if c["type"] == "Accepted" and "self-service" in c["message"]:
                    return str(c["message"])
            return None

        message = wait_for(said, 30, "the self-service warning in the policy status", p)
        assert "exemptions[0]" in message and "legacy=yes" in message
    finally:
        p.patch_policy({"exemptions": None})


# -- hole 3: name:tag@digest was judged by the tag ------------------------------------------------


def test_a_supported_tag_does_not_vouch_for_an_old_digest(w: World) -> None:
    p, alice = w.p, w.alice
    image = f"{p.reg.host}/dlc/pytorch-training:{SUPPORTED_TAG}@{w.old_digest}"
    err = denied_by_us(alice.apply(pod("pinned", TEAM, image)))
    assert "PyTorch 2.6" in err or "2.6" in err, err


# -- hole 4: kubectl debug and per-container UPDATE ------------------------------------------------


def test_kubectl_debug_with_an_old_image_is_denied(w: World) -> None:
    alice = w.alice
    assert alice.apply(pod("target", TEAM, NEW)).returncode == 0
    denied_by_us(alice.kubectl("debug", "target", f"--image={OLD}", "--container=dbg"))
    r = alice.kubectl("debug", "target", f"--image={NEW}", "--container=dbg-new")
    assert r.returncode == 0, r.stderr


def test_an_image_already_in_another_container_is_not_grandfathered(w: World) -> None:
    alice = w.alice
    # "legacy" ran OLD in its init container before dlc-guard: that does not let "main" switch to it
    denied_by_us(alice.kubectl("set", "image", "pod/legacy", f"main={OLD}"))


# -- hole 5: registry spellings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        f"{ECR}:443/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2",
        f"public.ecr.aws:443/deep-learning-containers/{VLLM_OLD}",
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecr-public/deep-learning-containers/{VLLM_OLD}",
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com:443/cache/deep-learning-containers/{VLLM_OLD}",
        "763104351884.DKR.ECR.US-WEST-2.AMAZONAWS.COM/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2",
    ],
)
def test_registry_spellings_are_the_same_registry(w: World, image: str) -> None:
    alice = w.alice
    denied_by_us(alice.apply(pod("spelled", TEAM, image)))


# -- hole 6: custom kinds in the operator ----------------------------------------------------------


def test_the_operator_reports_custom_kinds_once(w: World) -> None:
    p = w.p

    def reported() -> dict[str, Any] | None:
        rep = p.report(TEAM) or {}
        kinds = {r["resources"][0]["kind"] for r in rep.get("results") or []}
        return rep if "PyTorchJob" in kinds else None

    rep = wait_for(reported, 45, "a PolicyReport result for the PyTorchJob", p)
    names = [(r["resources"][0]["kind"], r["resources"][0]["name"]) for r in rep["results"]]
    assert ("PyTorchJob", "train") in names
    assert ("Pod", "train-master-0") not in names  # reported at its owner, once
    job = p.get("pytorchjob", "train", "-n", TEAM)
    assert job["metadata"]["annotations"]["dlc-guard.io/verdict"] == "unsupported"


def test_the_webhook_judges_custom_kinds(w: World) -> None:
    alice = w.alice
    denied_by_us(alice.apply(pytorchjob("new-train", OLD)))


# -- DLCGuardException -----------------------------------------------------------------------------


def exception(name: str, ns: str, expires: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "dlcguard.io/v1alpha1",
        "kind": "DLCGuardException",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "reason": "migration tracked in ML-123",
            "expires": expires,
            "images": ["*pytorch-training:2.6.*"],
            **spec,
        },
    }


def test_a_team_member_cannot_grant_herself_an_exception(w: World) -> None:
    alice = w.alice
    refused(alice.apply(exception("mine", TEAM, "2027-01-31")), "forbidden")
    # nor give herself the approver role (RBAC refuses to grant what she does not hold)
    refused(
        alice.kubectl(
            "create",
            "rolebinding",
            "me-approver",
            f"--clusterrole={RELEASE}-dlc-guard-exception-approver",
            "--user=alice",
        ),
        "forbidden",
    )
    assert alice.kubectl("get", "dlcguardexceptions").returncode == 0  # but she may see them


def test_an_approved_exception_applies_until_it_expires(w: World) -> None:
    p, alice = w.p, w.alice
    doc = deployment("legacy-app", TEAM, OLD)
    denied_by_us(alice.apply(doc))
    granted = exception("legacy", TEAM, "2027-01-31", match={"names": ["legacy-app", "legacy-app-*"]})
    assert p.apply(granted).returncode == 0  # the cluster admin grants it
    try:

        def admitted() -> bool:  # a new object each time: an unchanged existing one is not re-judged
            probe = deployment("legacy-app-probe", TEAM, OLD)
            return alice.apply(probe, flags=("--dry-run=server",)).returncode == 0

        wait_for(admitted, 20, "the exception to reach the webhook", p)
        assert alice.apply(doc).returncode == 0
        denied_by_us(alice.apply(deployment("other-app", TEAM, OLD)))  # names outside it stay judged

        def skipped() -> dict[str, Any] | None:
            rep = p.report(TEAM) or {}
            for r in rep.get("results") or []:
                if r["resources"][0]["name"] == "legacy-app" and r["result"] == "skip":
                    return dict(r)
            return None

        r = wait_for(skipped, 45, "a skip result naming the exception", p)
        assert r["properties"]["exception"] == f"{TEAM}/legacy"
        # expired: it stops applying without a restart
        expired = json.dumps({"spec": {"expires": "2026-11-22"}})
        p.kubectl("patch", "dlcguardexception", "legacy", "-n", TEAM, "--type=merge", "-p", expired)
        wait_for(lambda: not admitted(), 20, "the expired exception to stop applying", p)
    finally:
        p.kubectl("delete", "dlcguardexception", "legacy", "-n", TEAM, "--ignore-not-found")


def test_an_exception_reaches_other_namespaces_only_from_a_trusted_one(w: World) -> None:
    p = w.p
    doc = deployment("cross", "other", OLD)
    assert p.apply(exception("reach", TEAM, "2027-01-31", namespaces=["other"])).returncode == 0
    trusted = exception("from-security", NS, "2027-01-31", namespaces=["other"], match={"names": ["ok"]})
    assert p.apply(trusted).returncode == 0
    try:
        wait_for(
            lambda: p.apply(deployment("ok", "other", OLD), flags=("--dry-run=server",)).returncode == 0,
            20,
            "the trusted namespace's exception to apply",
            p,
        )
        r = p.apply(doc, flags=("--dry-run=server",))
        assert r.returncode != 0 and "dlc-guard denied" in r.stderr, "an exception in 'team' exempted 'other'"
    finally:
        p.kubectl("delete", "dlcguardexception", "reach", "-n", TEAM, "--ignore-not-found")
        p.kubectl("delete", "dlcguardexception", "from-security", "-n", NS, "--ignore-not-found")


# -- every other route ---------------------------------------------------------------------------


def _templated(kind: str, api: str, image: str, init: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": NEW if init else image}]}
    if init:
        spec["initContainers"] = [{"name": "init", "image": image}]
    template = {"metadata": {"labels": {"app": "r"}}, "spec": spec}
    body: dict[str, Any] = {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": f"r-{kind.lower()}", "namespace": TEAM},
    }
    if kind == "Pod":
        body["spec"] = spec
    elif kind == "PodTemplate":
        body["template"] = template
    elif kind == "CronJob":
        job = {"template": {**template, "spec": {**spec, "restartPolicy": "Never"}}}
        body["spec"] = {"schedule": "0 0 * * *", "jobTemplate": {"spec": job}}
    elif kind == "Job":
        body["spec"] = {"template": {**template, "spec": {**spec, "restartPolicy": "Never"}}}
    elif kind == "ReplicationController":
        body["spec"] = {"selector": {"app": "r"}, "template": template}
    else:
        body["spec"] = {"selector": {"matchLabels": {"app": "r"}}, "template": template}
        if kind == "StatefulSet":
            body["spec"]["serviceName"] = "r"
    return body


KINDS = [
    ("Pod", "v1"),
    ("Deployment", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"),
    ("Job", "batch/v1"),
    ("CronJob", "batch/v1"),
    ("ReplicationController", "v1"),
    ("PodTemplate", "v1"),
]


@pytest.mark.parametrize("init", [False, True], ids=["containers", "initContainers"])
@pytest.mark.parametrize(("kind", "api"), KINDS, ids=[k for k, _ in KINDS])
def test_every_kind_and_container_list_is_judged(w: World, kind: str, api: str, init: bool) -> None:
    doc = _templated(kind, api, OLD, init)
    plural = f"{kind.lower()}s"
    if w.alice.kubectl("auth", "can-i", "create", plural).stdout.strip() == "yes":
        denied_by_us(w.alice.apply(doc))
        denied_by_us(w.alice.apply(doc, flags=("--dry-run=server",)))
    else:  # a team cannot create these at all (PodTemplate): whoever can is judged the same
        refused(w.alice.apply(doc), "forbidden")
        denied_by_us(w.p.apply(doc))


def test_swapping_the_image_of_an_admitted_deployment_is_judged(w: World) -> None:
    alice = w.alice
    assert alice.apply(deployment("swap", TEAM, NEW)).returncode == 0
    denied_by_us(alice.kubectl("set", "image", "deployment/swap", f"main={OLD}"))
    patch = json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": OLD}])
    denied_by_us(alice.kubectl("patch", "deployment", "swap", "--type=json", "-p", patch))


def test_an_unchanged_old_image_in_its_own_container_still_updates(w: World) -> None:
    # "grandfathered" ran OLD before enforcement: changing something else is not a new image
    alice = w.alice
    r = alice.kubectl("patch", "deployment", "grandfathered", "-p", json.dumps({"spec": {"replicas": 2}}))
    assert r.returncode == 0, r.stderr
    swap = {
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": OLD}, {"name": "side", "image": OLD}]}}}
    }
    denied_by_us(alice.kubectl("patch", "deployment", "grandfathered", "-p", json.dumps(swap)))  # a new container


def test_the_operators_identity_is_not_an_exemption_for_others(w: World) -> None:
    alice = w.alice
    r = alice.kubectl("--as=system:serviceaccount:dlc-guard:rel-dlc-guard-operator", "run", "y", f"--image={OLD}")
    refused(r, "forbidden")  # impersonation is not hers to use


def test_the_api_server_refuses_an_exception_without_expiry(w: World) -> None:
    doc = exception("forever", TEAM, "2027-01-31")
    del doc["spec"]["expires"]
    r = w.p.apply(doc)
    assert r.returncode != 0 and "spec.expires" in r.stderr, r.stderr
