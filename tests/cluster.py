"""A real control plane on loopback for tests: etcd + kube-apiserver, the way envtest starts them.

Both binaries come from ``make tools`` (built from their Go modules into ``.tools/bin``). The
API server binds 127.0.0.1 only, serves a certificate it generates for itself, authenticates
one static token for an admin (group ``system:masters``) and one per extra user (to run a
component under its service account's identity, so that RBAC is checked for real), and runs
no controllers and no kubelet: objects are admitted and stored, never run. Tests that need
ownerReferences honoured start :func:`garbage_collector` beside it (kube-controller-manager with
only its garbage collector).
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".tools" / "bin"
TOKEN = "dlc-guard-e2e-admin-token"


@dataclass(frozen=True)
class ControlPlane:
    url: str
    kubeconfig: Path
    ca: Path
    workdir: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def kubeconfig_as(self, user: str) -> Path:
        """A kubeconfig that authenticates as ``user`` (one of the extra users)."""
        path = self.workdir / f"kubeconfig-{abs(hash(user))}"
        path.write_text(_kubeconfig(self.url, self.ca, self.tokens[user]))
        return path

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )


def available() -> str | None:
    """Why the control plane cannot start here (``None`` when it can)."""
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        if not (BIN / name).exists():
            return f"{BIN / name} missing: run `make tools`"
    from shutil import which

    if which("kubectl") is None:
        return "kubectl not on PATH"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for the servers tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, ctx: ssl.SSLContext | None, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _kubeconfig(url: str, ca: Path, token: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: e2e\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\n"
        f"users:\n- name: user\n  user:\n    token: {token}\n"
        "contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: user\n    namespace: default\n"
        "current-context: e2e\n"
    )


def service_account(namespace: str, name: str) -> tuple[str, list[str]]:
    """The user name and groups a service account's token authenticates as."""
    return (
        f"system:serviceaccount:{namespace}:{name}",
        ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
    )


@contextmanager
def control_plane(
    workdir: Path, users: Sequence[tuple[str, Sequence[str]]] = (), apiserver_args: Sequence[str] = ()
) -> Iterator[ControlPlane]:
    workdir.mkdir(parents=True, exist_ok=True)
    client, peer, secure = free_port(), free_port(), free_port()
    etcd_log = workdir / "etcd.log"
    etcd = subprocess.Popen(
        [
            str(BIN / "etcd"),
            "--data-dir",
            str(workdir / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{client}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{client}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ],
        stdout=etcd_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    api: subprocess.Popen[bytes] | None = None
    try:
        _wait(f"http://127.0.0.1:{client}/health", None, etcd, etcd_log)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_key = workdir / "sa.key"
        sa_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        tokens = workdir / "tokens.csv"
        extra = {user: secrets.token_hex(16) for user, _ in users}
        lines = [f'{TOKEN},admin,admin-uid,"system:masters"']
        lines += [f'{extra[user]},{user},uid-{i},"{",".join(groups)}"' for i, (user, groups) in enumerate(users)]
        tokens.write_text("\n".join(lines) + "\n")
        certs = workdir / "certs"
        api_log = workdir / "kube-apiserver.log"
        api = subprocess.Popen(
            [
                str(BIN / "kube-apiserver"),
                "--bind-address=127.0.0.1",
                f"--secure-port={secure}",
                f"--etcd-servers=http://127.0.0.1:{client}",
                f"--cert-dir={certs}",
                f"--token-auth-file={tokens}",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://127.0.0.1/dlc-guard-e2e",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=0",
                *apiserver_args,
            ],
            stdout=api_log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "GODEBUG": ""},
        )
        ca = certs / "apiserver.crt"
        url = f"https://127.0.0.1:{secure}"
        deadline = time.monotonic() + 60
        while not ca.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _wait(url + "/readyz", ctx, api, api_log, timeout=120)
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(_kubeconfig(url, ca, TOKEN))
        yield ControlPlane(url, kubeconfig, ca, workdir, extra)
    finally:
        if api is not None:
            stop(api)
        stop(etcd)


@contextmanager
def garbage_collector(cp: ControlPlane) -> Iterator[None]:
    """kube-controller-manager running only the garbage collector (dependents leave with their
    owners), as the admin, serving nothing."""
    log = cp.workdir / "kube-controller-manager.log"
    proc = subprocess.Popen(
        [
            str(BIN / "kube-controller-manager"),
            f"--kubeconfig={cp.kubeconfig}",
            "--controllers=garbagecollector",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-gc-syncs=5",
            "--v=1",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"kube-controller-manager exited: {log.read_text()[-2000:]}")
        yield
    finally:
        stop(proc)


CHART = ROOT / "deploy" / "helm" / "dlc-guard"
REPORT_CRDS = {
    "wgpolicyk8s": ("wgpolicyk8s.io_policyreports.yaml", "wgpolicyk8s.io_clusterpolicyreports.yaml"),
    "openreports": ("openreports.io_reports.yaml", "openreports.io_clusterreports.yaml"),
}


def install_crds(cp: ControlPlane, reports: Sequence[str] = ("wgpolicyk8s",)) -> None:
    """The chart's own CRDs and the report APIs' CRDs it ships, established."""
    cp.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    for api in reports:
        for name in REPORT_CRDS[api]:
            cp.kubectl("apply", "--server-side", "-f", str(CHART / "files" / "report-crds" / name))
    cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def namespace_report(kubectl: Any, ns: str, plural: str = "policyreports") -> dict[str, Any] | None:
    """dlc-guard's reports in ``ns`` (one per workload) seen as one: their results, each naming
    its workload in ``resources`` (from the report's scope), and the summed summary.
    ``kubectl`` is a ControlPlane's or a Product's ``kubectl``."""
    import json

    r = kubectl("get", plural, "-n", ns, "-l", "app.kubernetes.io/managed-by=dlc-guard", "-o", "json", check=False)
    items = json.loads(r.stdout).get("items") or [] if r.returncode == 0 else []
    if not items:
        return None
    summary = dict.fromkeys(("pass", "fail", "warn", "error", "skip"), 0)
    results = []
    for rep in items:
        for k, v in (rep.get("summary") or {}).items():
            summary[k] = summary.get(k, 0) + v
        results += [{**x, "resources": [rep["scope"]]} for x in rep.get("results") or []]
    return {"summary": summary, "results": results, "items": items}


def deployment(name: str, ns: str, image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A one-container Deployment manifest."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def pod(name: str, ns: str, image: str) -> dict[str, Any]:
    """A one-container Pod manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "main", "image": image}]},
    }
