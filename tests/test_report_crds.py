"""The report CRDs are shared with other tools: shipped unchanged, installed only where absent,
never replaced, in either order with the upstream CRDs and with Kyverno's chart, on a real API
server with the real helm.

Kyverno's chart comes from Kyverno's Go module (``make tools``). Its three subcharts from remote
Helm repositories (kyverno-api, openreports, reports-server) cannot be fetched here, so the test
installs it without them; none of them carries the wgpolicyk8s CRDs, which come from its local
``crds`` subchart as in every Kyverno install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import BIN, CHART, REPORT_CRDS, ROOT, ControlPlane, available, control_plane

SHARED = ROOT.parent / "shared" / "report-crds"
KYVERNO = sorted((ROOT / ".tools" / "charts").glob("kyverno-*"))
UPSTREAM = {
    **{name: SHARED / "wgpolicyk8s" / name for name in REPORT_CRDS["wgpolicyk8s"]},
    **{name: SHARED / "openreports" / name for name in REPORT_CRDS["openreports"]},
}
WG = ("policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io")
NS = "dlc-guard"
# the CRDs are the subject: no webhook (it would be called through a Service for Kyverno's
# Deployments) and no operator
QUIET = ["--set", "webhook.enabled=false", "--set", "operator.enabled=false", "--set", "tls.mode=generate"]


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_the_shipped_report_crds_are_the_upstream_files(name: str) -> None:
    if not UPSTREAM[name].exists():
        pytest.skip(f"{UPSTREAM[name]} not here")
    assert (CHART / "files" / "report-crds" / name).read_bytes() == UPSTREAM[name].read_bytes()


def render(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(BIN / "helm"), "template", "rel", str(CHART), "-n", NS, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"]


@pytest.mark.parametrize(
    ("api", "install", "names"),
    [
        ("auto", "auto", set(WG)),
        ("wgpolicyk8s", "always", set(WG)),
        ("openreports", "auto", {"reports.openreports.io", "clusterreports.openreports.io"}),
        ("both", "auto", {*WG, "reports.openreports.io", "clusterreports.openreports.io"}),
        ("both", "never", set()),
    ],
)
def test_rendered_report_crds_keep_the_upstream_spec(api: str, install: str, names: set[str]) -> None:
    docs = render("--set", f"reports.api={api}", "--set", f"crds.install={install}")
    assert {d["metadata"]["name"] for d in docs} == names
    upstream = {}
    for path in UPSTREAM.values():
        doc = yaml.safe_load(path.read_text())
        upstream[doc["metadata"]["name"]] = doc
    for d in docs:
        up = upstream[d["metadata"]["name"]]
        assert d["spec"] == up["spec"], "every version, schema and printer column as upstream has them"
        assert d["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert up["metadata"]["annotations"].items() <= d["metadata"]["annotations"].items()


# -- a real API server ---------------------------------------------------------------------------


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[ControlPlane]:
    if available() is not None:
        pytest.skip(str(available()))
    with control_plane(tmp_path / "control-plane") as c:
        c.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
        c.kubectl("create", "namespace", NS)
        yield c


def helm(cp: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cp.workdir),  # client-go's discovery cache goes under it, not into the checkout
        "KUBECONFIG": str(cp.kubeconfig),
        "HELM_CACHE_HOME": str(cp.workdir / "helm-cache"),
        "HELM_CONFIG_HOME": str(cp.workdir / "helm-config"),
        "HELM_DATA_HOME": str(cp.workdir / "helm-data"),
    }
    r = subprocess.run([str(BIN / "helm"), *args], capture_output=True, text=True, env=env, timeout=180)
    if check:
        assert r.returncode == 0, f"helm {' '.join(args)}:\n{r.stderr}"
    return r


def crd(cp: ControlPlane, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cp.kubectl("get", "crd", name, "-o", "json").stdout)
    return doc


def fingerprint(doc: dict[str, Any]) -> tuple[Any, ...]:
    """What must not change: the spec, the stored versions, who owns it."""
    ann = doc["metadata"].get("annotations") or {}
    return (
        json.dumps(doc["spec"], sort_keys=True),
        tuple(doc["status"]["storedVersions"]),
        ann.get("meta.helm.sh/release-name"),
        doc["metadata"]["resourceVersion"],
    )


def install_dlc_guard(cp: ControlPlane, *sets: str) -> None:
    helm(cp, "upgrade", "--install", "rel", str(CHART), "-n", NS, "--wait=false", *QUIET, *sets)


def kyverno_chart(tmp: Path) -> Path:
    if not KYVERNO:
        pytest.skip("Kyverno's chart missing: run `make tools`")
    chart = tmp / "kyverno"
    shutil.copytree(KYVERNO[-1], chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["dependencies"] = [d for d in meta["dependencies"] if "repository" not in d]
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (chart / "Chart.lock").unlink(missing_ok=True)
    return chart


def install_kyverno(cp: ControlPlane, chart: Path) -> subprocess.CompletedProcess[str]:
    # no hooks: they are Jobs that wait for a kubelet this control plane does not have
    args = ["install", "kyverno", str(chart), "-n", "kyverno", "--create-namespace", "--no-hooks", "--wait=false"]
    return helm(cp, *args, check=False)


def test_upstream_crds_first_are_left_alone(cp: ControlPlane) -> None:
    for name in REPORT_CRDS["wgpolicyk8s"]:
        cp.kubectl("apply", "--server-side", "-f", str(UPSTREAM[name]))
    before = {n: fingerprint(crd(cp, n)) for n in WG}
    install_dlc_guard(cp)
    install_dlc_guard(cp)  # and an upgrade
    assert {n: fingerprint(crd(cp, n)) for n in WG} == before, "not one write to a CRD it did not install"


def test_upstream_crds_after_dlc_guard_apply_cleanly_and_uninstall_keeps_them(cp: ControlPlane) -> None:
    install_dlc_guard(cp)
    mine = crd(cp, WG[0])
    assert mine["metadata"]["annotations"]["meta.helm.sh/release-name"] == "rel"
    assert mine["status"]["storedVersions"] == ["v1beta1"]
    for name in REPORT_CRDS["wgpolicyk8s"]:
        cp.kubectl("apply", "--server-side", "-f", str(UPSTREAM[name]))  # the wg's own install, after
    after = crd(cp, WG[0])
    assert after["spec"] == mine["spec"], "the same upstream spec: nothing to replace"
    install_dlc_guard(cp)  # an upgrade still owns and keeps it
    helm(cp, "uninstall", "rel", "-n", NS)
    assert crd(cp, WG[0])["spec"] == mine["spec"], "others' reports live in it: kept on uninstall"


def test_kyverno_first_then_dlc_guard(cp: ControlPlane, tmp_path: Path) -> None:
    r = install_kyverno(cp, kyverno_chart(tmp_path))
    assert r.returncode == 0, r.stderr
    before = {n: fingerprint(crd(cp, n)) for n in WG}
    assert all(f[2] == "kyverno" for f in before.values())
    install_dlc_guard(cp)
    install_dlc_guard(cp)
    assert {n: fingerprint(crd(cp, n)) for n in WG} == before, "Kyverno's CRDs untouched, still Kyverno's"
    r = helm(cp, "upgrade", "kyverno", str(tmp_path / "kyverno"), "-n", "kyverno", "--no-hooks", check=False)
    assert r.returncode == 0, f"Kyverno still upgrades its own CRDs:\n{r.stderr}"


def test_dlc_guard_first_then_kyverno(cp: ControlPlane, tmp_path: Path) -> None:
    """A cluster that will run Kyverno leaves the CRDs to it (crds.install=never): Kyverno 1.19's
    own CRD serves v1alpha2 only, so it could not replace the upstream one once that has stored
    v1beta1 objects, whoever installed it."""
    install_dlc_guard(cp, "--set", "crds.install=never")
    r = install_kyverno(cp, kyverno_chart(tmp_path))
    assert r.returncode == 0, r.stderr
    owned = crd(cp, WG[0])
    assert owned["metadata"]["annotations"]["meta.helm.sh/release-name"] == "kyverno"
    install_dlc_guard(cp)  # auto now: Kyverno owns them, so dlc-guard leaves them be
    assert fingerprint(crd(cp, WG[0])) == fingerprint(owned)
