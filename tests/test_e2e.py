"""End to end, the way users meet dlc-guard: a real etcd + kube-apiserver on loopback, the real
``kubectl``, the webhook and the operator as local processes under their own service accounts'
identities with the RBAC, CRDs, policy and ValidatingWebhookConfiguration of the rendered Helm
chart (the webhook's ``clientConfig`` pointed at the local server). Nothing runs pods here: they
are admitted and stored.

The tests share one control plane and run in file order; each leaves the policy as it found it
unless it says otherwise.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.cluster import (
    BIN,
    ControlPlane,
    available,
    control_plane,
    deployment,
    free_port,
    garbage_collector,
    install_crds,
    namespace_report,
    pod,
    service_account,
    stop,
)
from tests.conftest import ROOT
from tests.registry import PYTORCH_26_LABELS, Registry, registry
from tests.tls import write_cert

pytestmark = [
    pytest.mark.skipif(available() is not None, reason=str(available())),
    pytest.mark.skipif(not (BIN / "helm").exists(), reason="helm missing: run `make tools`"),
    pytest.mark.skipif(not (BIN / "registry").exists(), reason="registry missing: run `make tools`"),
    pytest.mark.e2e,
]

NS = "dlc-guard"
RELEASE = "rel"
WEBHOOK_SA, OPERATOR_SA = f"{RELEASE}-dlc-guard-webhook", f"{RELEASE}-dlc-guard-operator"
AS_OF = "2026-11-23"
ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
OLD_FIX = f"{ECR}/pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-ec2"
OLD_FIX_TAG = OLD_FIX.rpartition(":")[2]
SOON = f"{ECR}/pytorch-training:2.10-gpu-py313-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
T = TypeVar("T")
DIGESTS_CM = f"{RELEASE}-dlc-guard-digests"


@dataclass
class Product:
    cp: ControlPlane
    tmp: Path
    cert: Path
    key: Path
    reg: Registry
    webhook_port: int = field(default_factory=free_port)
    webhook: subprocess.Popen[bytes] | None = None
    operators: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    # -- processes ------------------------------------------------------------------------
    def digest_args(self) -> list[str]:
        """As the chart passes them, plus the test registry's CA."""
        return [
            "--resolve-digests",
            "--digest-cache=none",
            f"--digest-configmap={DIGESTS_CM}",
            f"--registry-ca={self.reg.ca}",
        ]

    def _spawn(self, name: str, argv: list[str], user: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        env = {**os.environ, "POD_NAMESPACE": NS, "DLC_GUARD_LOG_LEVEL": "INFO"}
        return subprocess.Popen(
            [sys.executable, "-m", "controller.cli.main", *argv, "--kubeconfig", str(self.cp.kubeconfig_as(user))],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )

    def start_webhook(self) -> None:
        self.webhook = self._spawn(
            "webhook",
            [
                "webhook",
                "--host=127.0.0.1",
                f"--port={self.webhook_port}",
                f"--tls-cert={self.cert}",
                f"--tls-key={self.key}",
                "--policy-resource=default",
                "--watch-namespaces",
                "--watch-exceptions",
                "--catalog-refresh-minutes=0.05",
                f"--as-of={AS_OF}",
                *self.digest_args(),
            ],
            service_account(NS, WEBHOOK_SA)[0],
        )
        ctx = ssl.create_default_context(cafile=str(self.cert))

        def ready() -> bool:
            assert self.webhook is not None and self.webhook.poll() is None, self.tail()
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.webhook_port}/readyz", context=ctx, timeout=2):
                    return True
            except OSError:
                return False

        wait_for(ready, 30, "webhook ready", self)

    def stop_webhook(self) -> None:
        if self.webhook is not None:
            stop(self.webhook)
            self.webhook = None

    def start_operator(self, lifetime: int = 5) -> subprocess.Popen[bytes]:
        proc = self._spawn(
            "operator",
            [
                "operator",
                "--peering=dlc-guard",
                f"--peering-lifetime={lifetime}",
                "--metrics-port=0",
                f"--as-of={AS_OF}",
                "--catalog-refresh-minutes=0.05",
                *self.digest_args(),
            ],
            service_account(NS, OPERATOR_SA)[0],
        )
        self.operators.append(proc)
        return proc

    def tail(self, n: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-n:]}" for p in self.logs if p.exists())

    # -- kubectl ----------------------------------------------------------------------------
    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl(*args, stdin=stdin, check=check)

    def apply(self, *docs: dict[str, Any], flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        text = "---\n".join(yaml.safe_dump(d) for d in docs)
        return self.kubectl("apply", *flags, "-f", "-", stdin=text, check=False)

    def get(self, *args: str) -> Any:
        r = self.kubectl("get", *args, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def patch_policy(self, spec: dict[str, Any]) -> None:
        self.kubectl("patch", "dlcguardpolicy", "default", "--type=merge", "-p", json.dumps({"spec": spec}))

    def await_admission(self, doc: dict[str, Any], allowed: bool, timeout: float, what: str) -> None:
        """Poll with server-side dry runs until the webhook admits (or refuses) ``doc``."""

        def settled() -> bool:
            return (self.apply(doc, flags=("--dry-run=server",)).returncode == 0) == allowed

        wait_for(settled, timeout, what, self)

    def report(self, ns: str) -> dict[str, Any] | None:
        return namespace_report(self.kubectl, ns)


def wait_for(fn: Callable[[], T | None], timeout: float, what: str, product: Product | None = None) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{product.tail() if product else ''}")
        time.sleep(0.25)


def render_chart(mirror: str, *sets: str) -> list[dict[str, Any]]:
    extra = [a for s in sets for a in ("--set-json" if s.startswith("json:") else "--set", s.removeprefix("json:"))]
    out = subprocess.run(
        [
            str(BIN / "helm"),
            "template",
            RELEASE,
            str(ROOT / "deploy" / "helm" / "dlc-guard"),
            "-n",
            NS,
            "--set",
            "policy.mode=enforce",
            "--set",
            f"policy.catalog.configMap.namespace={NS}",
            "--set",
            "policy.catalog.configMap.name=dlc-catalog",
            "--set",
            "webhook.timeoutSeconds=5",
            "--set",
            "crds.install=never",  # the harness installed them (install_crds)
            "--set",
            f"policy.mirrors={{{mirror}}}",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def point_at(vwc: dict[str, Any], url: str, ca: bytes) -> dict[str, Any]:
    vwc = copy.deepcopy(vwc)
    for hook in vwc["webhooks"]:
        hook["clientConfig"] = {"url": url, "caBundle": base64.b64encode(ca).decode()}
    return vwc


CATALOG = json.loads((ROOT / "policy" / "data" / "catalog.json").read_text())


def catalog_config_map(catalog: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dlc-catalog", "namespace": NS},
        "data": {"catalog.json": json.dumps(catalog)},
    }


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    tmp = tmp_path_factory.mktemp("e2e")
    users = [service_account(NS, WEBHOOK_SA), service_account(NS, OPERATOR_SA)]
    with (
        control_plane(tmp / "control-plane", users) as cp,
        garbage_collector(cp),
        registry(tmp / "registry") as reg,
    ):
        cert, key = write_cert(tmp)
        p = Product(cp, tmp, cert, key, reg)
        install_crds(cp)
        for ns in (NS, "ml", "team-a", "sandbox", "lab", "bulk"):
            cp.kubectl("create", "namespace", ns)
        cp.kubectl("label", "namespace", "lab", "tier=research")
        # workloads that were there before dlc-guard was installed
        pinned = f"{reg.host}/dlc/pytorch-training@{reg.image('dlc/pytorch-training', PYTORCH_26_LABELS)}"
        p.apply(
            deployment("trainer", "ml", OLD),
            deployment("soon", "ml", SOON),
            deployment("serving", "ml", NEW),
            deployment("pinned", "ml", pinned),
        )
        docs = render_chart(f"{reg.host}/dlc")
        vwc = next(d for d in docs if d["kind"] == "ValidatingWebhookConfiguration")
        rest = [d for d in docs if d["kind"] != "ValidatingWebhookConfiguration"]
        r = p.apply(catalog_config_map(CATALOG), *rest)
        assert r.returncode == 0, r.stderr
        p.start_webhook()
        r = p.apply(point_at(vwc, f"https://127.0.0.1:{p.webhook_port}/validate", cert.read_bytes()))
        assert r.returncode == 0, r.stderr
        p.start_operator()
        try:
            yield p
        finally:
            for proc in p.operators:
                if proc.poll() is None:
                    stop(proc)
            p.stop_webhook()


def denied(p: Product, *docs: dict[str, Any], flags: tuple[str, ...] = ()) -> str:
    r = p.apply(*docs, flags=flags)
    assert r.returncode != 0, f"admitted:\n{r.stdout}{r.stderr}"
    return r.stderr


def admitted(p: Product, *docs: dict[str, Any], flags: tuple[str, ...] = ()) -> str:
    r = p.apply(*docs, flags=flags)
    assert r.returncode == 0, f"refused:\n{r.stderr}\n{p.tail()}"
    return r.stderr


# -- policy resource ---------------------------------------------------------------------------


def test_operator_accepts_the_charts_policy(product: Product) -> None:
    def accepted() -> bool:
        doc = product.get("dlcguardpolicy", "default") or {}
        conds = (doc.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Accepted" and c["status"] == "True" for c in conds)

    wait_for(accepted, 30, "policy Accepted=True", product)
    shown = product.kubectl("get", "dlcguardpolicy").stdout
    assert "enforce" in shown and "True" in shown


# -- enforce -------------------------------------------------------------------------------------


def test_enforce_denies_an_end_of_patch_deployment_and_pod(product: Product) -> None:
    err = denied(product, deployment("old-trainer", "team-a", OLD))
    assert "denied the request" in err and OLD in err and OLD_FIX in err, err
    err = denied(product, pod("old-pod", "team-a", OLD))
    assert OLD in err and OLD_FIX in err, err
    assert product.get("deploy", "old-trainer", "-n", "team-a") is None


def test_enforce_admits_supported_and_non_dlc_images(product: Product) -> None:
    admitted(product, deployment("serving", "team-a", NEW), pod("web", "team-a", "nginx:1.27"))
    assert product.get("deploy", "serving", "-n", "team-a") is not None


def test_dry_run_is_judged_but_changes_nothing(product: Product) -> None:
    err = denied(product, deployment("dry", "team-a", OLD), flags=("--dry-run=server",))
    assert "(dry run)" in err, err
    out = admitted(product, deployment("dry-new", "team-a", NEW), flags=("--dry-run=server",))
    assert product.get("deploy", "dry-new", "-n", "team-a") is None, out


def test_excluded_namespaces_are_never_sent(product: Product) -> None:
    # the release namespace is excluded by the chart's namespaceSelector, and so is any
    # namespace labelled dlcguard.io/ignore=true
    admitted(product, deployment("own", NS, OLD))
    product.kubectl("label", "namespace", "sandbox", "dlcguard.io/ignore=true")
    admitted(product, deployment("legacy", "sandbox", OLD))


def test_policy_exemptions_apply_within_seconds(product: Product) -> None:
    exemptions = [
        {"namespaceSelector": {"matchLabels": {"tier": "research"}}, "reason": "research clusters"},
        {"objectSelector": {"matchLabels": {"dlcguard.io/exempt": "yes"}}, "expires": "2027-01-31", "reason": "x"},
    ]
    denied(product, deployment("lab-old", "lab", OLD))
    product.patch_policy({"exemptions": exemptions})
    try:
        product.await_admission(
            deployment("lab-old", "lab", OLD), True, 15, "the namespaceSelector exemption to reach the webhook"
        )
        admitted(product, deployment("lab-old", "lab", OLD))
        admitted(product, deployment("labelled", "team-a", OLD, {"dlcguard.io/exempt": "yes"}))
        denied(product, deployment("unlabelled", "team-a", OLD))
    finally:
        product.patch_policy({"exemptions": None})


# -- warn ----------------------------------------------------------------------------------------


def test_warn_mode_admits_and_kubectl_prints_warnings(product: Product) -> None:
    product.patch_policy({"mode": "warn"})
    try:
        product.await_admission(pod("probe", "team-a", OLD), True, 15, "warn mode to reach the webhook")
        err = admitted(product, deployment("warned", "team-a", OLD))
        warnings = [line for line in err.splitlines() if line.startswith("Warning:")]
        assert warnings and any(OLD in w for w in warnings), err
        assert any(w.endswith("use tag " + OLD_FIX.rpartition(":")[2]) for w in warnings), err
        assert product.get("deploy", "warned", "-n", "team-a") is not None
    finally:
        product.patch_policy({"mode": "enforce"})
    product.await_admission(pod("probe", "team-a", OLD), False, 15, "enforce mode back in the webhook")


def test_an_invalid_policy_edit_is_refused_and_the_last_good_one_stays(product: Product) -> None:
    # the CRD's rules let an empty scope through; the webhook judging dlc-guard's own kinds does not
    r = product.kubectl(
        "patch",
        "dlcguardpolicy",
        "default",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"exemptions": [{"namespaces": [], "reason": "everything, by mistake"}]}}),
        check=False,
    )
    assert r.returncode != 0 and "spec.exemptions[0]: an exemption must name namespaces" in r.stderr, r.stderr
    stored = product.get("dlcguardpolicy", "default") or {}
    assert not (stored.get("spec") or {}).get("exemptions"), "nothing was stored"
    denied(product, deployment("still-enforced", "team-a", OLD))


# -- operator ------------------------------------------------------------------------------------


def results_by_workload(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["resources"][0]["name"]: r for r in report.get("results") or []}


def test_operator_reports_annotates_and_records_events_for_existing_workloads(product: Product) -> None:
    def complete() -> dict[str, Any] | None:
        rep = product.report("ml")
        return rep if rep and {"trainer", "soon", "serving"} <= set(results_by_workload(rep)) else None

    rep = wait_for(complete, 45, "the ml PolicyReport", product)
    by = results_by_workload(rep)
    assert by["trainer"]["result"] == "fail" and by["serving"]["result"] == "pass"
    # the chart's policy warns from "outdated" up: an expiring image passes, and says so
    assert by["soon"]["result"] == "pass" and by["soon"]["properties"]["verdict"] == "expiring"
    assert by["soon"]["properties"]["eop"] == "2027-01-21"
    assert rep["summary"]["fail"] >= 1 and rep["summary"]["pass"] >= 1
    ann = product.get("deploy", "trainer", "-n", "ml")["metadata"]["annotations"]
    assert ann["dlc-guard.io/verdict"] == "unsupported"
    soon = product.get("deploy", "soon", "-n", "ml")["metadata"]["annotations"]
    assert soon["dlc-guard.io/verdict"] == "expiring"
    assert soon["dlc-guard.io/next-change"] == "2027-01-22"  # the day after its EOP

    def event() -> bool:
        events = product.get("events", "-n", "ml", "--field-selector", "involvedObject.name=trainer") or {}
        return any(e["reason"] == "DLCImageUnsupported" for e in events.get("items", []))

    wait_for(event, 30, "a DLCImageUnsupported event", product)
    listed = product.kubectl("get", "policyreports", "-n", "ml", "-o", "wide").stdout
    assert "trainer" in listed and "Deployment" in listed


def test_a_catalog_change_moves_expiring_to_unsupported(product: Product) -> None:
    from bench.reports import ended_early

    # PyTorch 2.10 reaches end of patch three weeks early (framework and family dates alike)
    admitted(product, catalog_config_map(ended_early(CATALOG)))
    try:

        def moved() -> bool:
            rep = product.report("ml")
            return bool(rep) and results_by_workload(rep)["soon"]["properties"]["verdict"] == "unsupported"

        wait_for(moved, 45, "the operator to re-judge with the new catalog", product)
        ann = product.get("deploy", "soon", "-n", "ml")["metadata"]["annotations"]
        assert ann["dlc-guard.io/verdict"] == "unsupported"
        # the webhook follows the same catalog source
        product.await_admission(pod("soon-pod", "team-a", SOON), False, 30, "the webhook to deny with the new catalog")
    finally:
        admitted(product, catalog_config_map(CATALOG))


# -- digest-pinned images -----------------------------------------------------------------------


def test_digest_pinned_images_are_resolved_through_the_registry(product: Product) -> None:
    def pinned() -> dict[str, Any] | None:
        rep = product.report("ml")
        hit = results_by_workload(rep).get("pinned") if rep else None
        # (the catalog test before this one restored the catalog: wait until its fix is offered)
        return hit if hit and hit["properties"].get("recommendation", "").endswith(OLD_FIX_TAG) else None

    result = wait_for(pinned, 45, "the operator to resolve the pinned digest", product)
    assert result["result"] == "fail" and result["properties"]["version"] == "2.6.0"
    assert result["properties"]["verdict"] == "unsupported"
    # the operator shares what it learnt with the webhook through a ConfigMap
    cm = wait_for(lambda: product.get("configmap", DIGESTS_CM, "-n", NS), 30, "the digests ConfigMap", product)
    image = product.get("deploy", "pinned", "-n", "ml")["spec"]["template"]["spec"]["containers"][0]["image"]
    digest = image.rpartition("@")[2]
    assert json.loads(cm["data"]["digests.json"])["digests"][digest]["tag"] == OLD.rpartition(":")[2]
    err = denied(product, pod("pinned-pod", "team-a", image))
    assert image in err and "unsupported" in err, err
    # a digest the registry never saw: judged unknown, with the reason, within the budget
    missing = image.rpartition("@")[0] + "@sha256:" + "0" * 64
    err = admitted(product, pod("unknown-digest", "team-a", missing))
    assert "no such digest" in err and "unknown" in err, err


# -- restart and high availability ------------------------------------------------------------


def bulk_report_names(product: Product) -> list[str] | None:
    rep = product.report("bulk")
    if not rep:
        return None
    return [r["resources"][0]["name"] for r in rep.get("results") or []]


def test_killed_mid_scan_the_operator_converges_without_duplicates(product: Product) -> None:
    for proc in product.operators:
        stop(proc)
    product.operators.clear()
    product.kubectl("label", "namespace", "bulk", "dlcguard.io/ignore=true")  # fast to create
    items = [deployment(f"w{i:03d}", "bulk", OLD if i % 2 else NEW) for i in range(150)]
    admitted(product, *items)
    first = product.start_operator()
    wait_for(lambda: bulk_report_names(product), 60, "a first partial bulk report", product)
    first.send_signal(signal.SIGKILL)  # no goodbye: whatever it had in memory is lost
    first.wait()
    product.operators.clear()
    a, b = product.start_operator(), product.start_operator()

    def converged() -> list[str] | None:
        names = bulk_report_names(product)
        return names if names and len(set(names)) == 150 else None

    names = wait_for(converged, 90, "the bulk report to converge", product)
    assert len(names) == 150, "one result per workload, no duplicates"
    rep = product.report("bulk")
    assert rep is not None
    assert sum(rep["summary"].values()) == 150
    assert rep["summary"]["fail"] == 75 and rep["summary"]["pass"] == 75

    # two replicas: one works, the other waits; kill the worker and the other takes over
    logs = {proc: product.logs[-2 + i] for i, proc in enumerate((a, b))}
    standby = wait_for(
        lambda: next((p for p, log in logs.items() if "standing by: another replica works" in log.read_text()), None),
        30,
        "one replica to pause in favour of the other",
        product,
    )
    active = a if standby is b else b
    active.send_signal(signal.SIGKILL)
    active.wait()
    admitted(product, deployment("after-failover", "bulk", OLD))
    wait_for(
        lambda: "after-failover" in (bulk_report_names(product) or []),
        60,
        "the standby to take over after the peering lifetime",
        product,
    )
    assert standby.poll() is None


# -- webhook outage ------------------------------------------------------------------------------


def test_failure_policy_decides_when_the_webhook_is_down(product: Product) -> None:
    def failure_policy(value: str) -> None:
        patch = [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": value}]
        product.kubectl(
            "patch",
            "validatingwebhookconfiguration",
            f"{RELEASE}-dlc-guard-webhook",
            "--type=json",
            "-p",
            json.dumps(patch),
        )

    product.stop_webhook()
    try:
        failure_policy("Fail")
        err = denied(product, pod("while-down", "team-a", "nginx:1.27"))
        assert "failed calling webhook" in err, err
        failure_policy("Ignore")
        admitted(product, pod("while-down", "team-a", "nginx:1.27"))
    finally:
        product.start_webhook()
