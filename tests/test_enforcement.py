"""The pure side of closing the routes around enforcement (the cluster side: test_bypass.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controller.webhook.review import DecisionCache, decide, for_mutation, response
from policy.catalog import default_catalog
from policy.digests import DigestBook, DigestIdentity
from policy.evaluate import Engine, pending
from policy.exceptions import ExceptionBook, ExceptionError, load_exception, load_exceptions
from policy.judge import ANNOTATION_UNSUPPORTED, ANNOTATION_VERDICT, annotations_for, judge_object
from policy.policy import PolicyError, load_policy

TODAY = dt.date(2026, 11, 23)
ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
OLD = f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
NEW = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023"
GOOD_TAG = "2.10.0-gpu-py313-cu130-ubuntu22.04-ec2"
DIGEST = "sha256:" + "ab" * 32
VLLM_OLD = "vllm:0.22.0-gpu-py312-cu130-ubuntu22.04-ec2"


@pytest.fixture(scope="module")
def engine() -> Engine:
    policy = load_policy({})
    return Engine(default_catalog(), TODAY, mirrors=policy.mirrors)


# -- tag@digest ----------------------------------------------------------------------------------


def test_a_supported_tag_with_an_unverified_digest_is_unknown(engine: Engine) -> None:
    r = engine.evaluate(f"{ECR}/pytorch-training:{GOOD_TAG}@{DIGEST}")
    assert r.verdict == "unknown" and r.reasons[0].code == "DIGEST_UNVERIFIED"
    assert DIGEST[:19] in r.summary and r.reasons[0].facts["tagVerdict"] in ("supported", "expiring", "outdated")
    assert pending(r)  # not cached: a registry answer may still come


def test_an_unsupported_tag_with_an_unverified_digest_stays_unsupported(engine: Engine) -> None:
    r = engine.evaluate(f"{OLD}@{DIGEST}")
    assert r.verdict == "unsupported"
    assert "DIGEST_UNVERIFIED" in {x.code for x in r.reasons}


def test_the_digest_answer_decides_whatever_the_tag_says() -> None:
    book = DigestBook()
    book.put(DIGEST, DigestIdentity("2.6.0-gpu-py312-cu126-ubuntu22.04-ec2", "labels"))
    e = Engine(default_catalog(), TODAY, mirrors=load_policy({}).mirrors, digests=book)
    r = e.evaluate(f"{ECR}/pytorch-training:{GOOD_TAG}@{DIGEST}")
    assert r.verdict == "unsupported" and r.version == "2.6.0"
    assert not pending(r)


# -- registry spellings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        f"{ECR}:443/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2",
        "763104351884.DKR.ECR.US-WEST-2.AMAZONAWS.COM/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2",
        f"public.ecr.aws:443/deep-learning-containers/{VLLM_OLD}",
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecr-public/deep-learning-containers/{VLLM_OLD}",
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/a/b/deep-learning-containers/{VLLM_OLD}",
    ],
)
def test_spellings_of_a_dlc_registry_are_judged(engine: Engine, image: str) -> None:
    assert engine.evaluate(image).verdict == "unsupported"


def test_pull_through_prefixes_come_from_the_policy() -> None:
    cached = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/cache/deep-learning-containers/{VLLM_OLD}"
    only = Engine(default_catalog(), TODAY, mirrors=load_policy({"pullThroughCaches": ["ecr-public"]}).mirrors)
    assert only.evaluate(cached).verdict == "not-dlc"
    off = Engine(default_catalog(), TODAY, mirrors=load_policy({"pullThroughCaches": []}).mirrors)
    assert off.evaluate(cached).verdict == "not-dlc"
    r = Engine(default_catalog(), TODAY, mirrors=load_policy({}).mirrors).evaluate(cached)
    assert r.recommendation is not None and r.recommendation.startswith(cached.rsplit(":", 1)[0] + ":")


def test_another_port_is_another_registry(engine: Engine) -> None:
    assert engine.evaluate(f"public.ecr.aws:5000/deep-learning-containers/{VLLM_OLD}").verdict == "not-dlc"


# -- per-container pre-existing images -------------------------------------------------------------


def pod(containers: list[tuple[str, str]], init: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": n, "image": i} for n, i in containers]}
    if init:
        spec["initContainers"] = [{"name": n, "image": i} for n, i in init]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def review(obj: dict[str, Any], old: dict[str, Any] | None = None, uid: str = "u") -> dict[str, Any]:
    req: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "UPDATE" if old else "CREATE",
        "namespace": "team",
        "object": obj,
    }
    if old:
        req["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


ENFORCE = load_policy({"mode": "enforce"})


def test_an_image_of_another_container_is_not_grandfathered(engine: Engine) -> None:
    old = pod([("main", NEW)], init=[("fetch", OLD)])
    moved = pod([("main", OLD)], init=[("fetch", OLD)])
    d = decide(review(moved, old), engine, ENFORCE, TODAY)
    assert not d.allowed and "'main'" in (d.message or "") and "'fetch'" not in (d.message or "")
    same = pod([("main", NEW), ("side", NEW)], init=[("fetch", OLD)])
    assert decide(review(same, old), engine, ENFORCE, TODAY).allowed  # fetch kept its own image


def test_a_renamed_container_is_a_new_container(engine: Engine) -> None:
    old = pod([("main", OLD)])
    assert decide(review(pod([("main", OLD)]), old), engine, ENFORCE, TODAY).allowed
    assert not decide(review(pod([("other", OLD)]), old), engine, ENFORCE, TODAY).allowed


def test_an_ephemeral_container_is_judged_on_its_own(engine: Engine) -> None:
    old = pod([("main", OLD)])
    debugged = pod([("main", OLD)])
    debugged["spec"]["ephemeralContainers"] = [{"name": "main", "image": OLD}]
    assert not decide(review(debugged, old), engine, ENFORCE, TODAY).allowed  # same name, other list


# -- /mutate and /validate share the decision cache ------------------------------------------------


def test_mutating_answers_never_leak_into_validating_ones(engine: Engine) -> None:
    cache = DecisionCache()
    body = review(pod([("main", OLD)]))
    first = decide(body, engine, ENFORCE, TODAY, cache=cache)
    mutated = response(for_mutation(body, first))["response"]
    assert mutated["allowed"] is True and "patch" in mutated
    again = response(decide(review(pod([("main", OLD)]), uid="v"), engine, ENFORCE, TODAY, cache=cache))["response"]
    assert cache.hits == 1 and again["allowed"] is False and "patch" not in again and again["uid"] == "v"


# -- exceptions ------------------------------------------------------------------------------------


def exc(ns: str = "team", name: str = "x", **spec: Any) -> dict[str, Any]:
    base = {"reason": "ticket ML-1", "expires": "2027-01-31", "images": ["*pytorch-training:2.6.*"]}
    return {
        "apiVersion": "dlcguard.io/v1alpha1",
        "kind": "DLCGuardException",
        "metadata": {"namespace": ns, "name": name},
        "spec": {**base, **spec},
    }


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"expires": None}, "spec.expires: required"),
        ({"expires": "soon"}, "spec.expires: 'soon' is not a date"),
        ({"reason": ""}, "spec.reason: required"),
        ({"images": []}, "spec.images: must name at least one glob"),
        ({"images": None}, "spec.images: required"),
        ({"match": {"labels": {}}}, "spec.match.labels: unknown field"),
        ({"extra": 1}, "spec.extra: unknown field"),
    ],
)
def test_bad_exceptions_are_refused_with_the_field_named(spec: dict[str, Any], problem: str) -> None:
    doc = exc(**spec)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}
    with pytest.raises(ExceptionError) as err:
        load_exception(doc)
    assert problem in str(err.value)


def test_one_bad_exception_does_not_take_the_others_down() -> None:
    good, bad = load_exceptions([exc(name="ok"), exc(name="broken", expires="never")])
    assert [e.name for e in good] == ["ok"] and len(bad) == 1 and "team/broken" in bad[0]


def judge(policy: Any, ns: str, name: str, image: str, container: str = "main", engine: Engine | None = None) -> Any:
    obj = {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": container, "image": image}]},
    }
    e = engine or Engine(default_catalog(), TODAY)
    return judge_object(obj, e, policy, TODAY).findings[0]


def test_an_exception_covers_its_own_namespace_only_unless_trusted() -> None:
    policy = load_policy({}, controller_namespace="dlc-guard")
    ours = load_exception(exc())
    reach = load_exception(exc(name="reach", namespaces=["other", "team"]))
    trusted = load_exception(exc(ns="dlc-guard", name="sec", namespaces=["oth*"]))
    p = policy.with_exceptions((ours, reach, trusted))
    assert judge(p, "team", "a", OLD).exception == "team/x"
    other = judge(p, "other", "a", OLD)
    assert other.exception == "dlc-guard/sec"  # not team/reach: team is not an exception namespace
    assert judge(policy.with_exceptions((ours, reach)), "other", "a", OLD).exempt is None


def test_an_exception_matches_names_containers_images_and_dates() -> None:
    e = load_exception(exc(containers=["train*"], match={"names": ["job-*"], "selector": {"matchLabels": {}}}))
    p = load_policy({}).with_exceptions((e,))
    assert judge(p, "team", "job-1", OLD, "trainer").exempt == "DLCGuardException team/x: ticket ML-1"
    assert judge(p, "team", "other", OLD, "trainer").exempt is None
    assert judge(p, "team", "job-1", OLD, "sidecar").exempt is None
    assert judge(p, "team", "job-1", NEW, "trainer").exempt is None
    late = Engine(default_catalog(), dt.date(2027, 2, 1))
    obj = {"kind": "Pod", "metadata": {"name": "job-1"}, "spec": {"containers": [{"name": "trainer", "image": OLD}]}}
    assert judge_object(obj, late, p, dt.date(2027, 2, 1), namespace="team").findings[0].exempt is None  # expired


def test_annotations_leave_exempt_images_out() -> None:
    e = load_exception(exc(containers=["old"]))
    p = load_policy({}).with_exceptions((e,))
    obj = {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "old", "image": OLD}, {"name": "new", "image": NEW}]},
    }
    j = judge_object(obj, Engine(default_catalog(), TODAY), p, TODAY, namespace="team")
    assert j is not None
    ann = annotations_for(j.findings)
    assert ann[ANNOTATION_VERDICT] == "supported" and ANNOTATION_UNSUPPORTED not in ann
    assert j.worst is not None and j.worst.verdict == "supported"


def test_policy_names_its_self_service_exemptions() -> None:
    p = load_policy({"exemptions": [{"namespaces": ["a"]}, {"objectSelector": {"matchLabels": {"x": "y"}}}]})
    assert p.self_service == ["exemptions[1] matches objectSelector x=y: labels the owner sets"]


def test_the_exception_book_follows_events_and_reports_each_rejection_once() -> None:
    book = ExceptionBook()
    assert book.replace([exc(name="ok"), exc(name="broken", expires="never")]) != []
    assert [e.name for e in book.exceptions] == ["ok"]
    assert book.apply("MODIFIED", exc(name="ok", reason="renewed")) == []  # the same rejection is not said twice
    assert book.exceptions[0].reason == "renewed"
    book.apply("DELETED", exc(name="ok"))
    assert book.exceptions == ()
    assert book.apply("MODIFIED", exc(name="broken")) == [] and [e.name for e in book.exceptions] == ["broken"]


# -- the Anaconda notice in kubectl warnings -----------------------------------------------------------


@pytest.mark.parametrize(("setting", "lines"), [("reports", 0), ("warnings", 1), ("off", 0)])
def test_the_anaconda_notice_reaches_warnings_only_when_the_policy_asks(setting: str, lines: int) -> None:
    policy = load_policy({"spec": {"mode": "warn", "anacondaNotice": setting}})
    engine = Engine(default_catalog(), TODAY, mirrors=policy.mirrors, anaconda_notice=setting != "off")
    d = decide(review(pod([("a", OLD), ("b", OLD.replace("us-west-2", "us-east-1"))])), engine, policy, TODAY)
    notices = [w for w in d.warnings if "conda-forge" in w]
    assert len(notices) == lines, d.warnings  # one line for the review, however many images
    assert len(d.warnings) == 2 + lines
    assert all(len(w) <= 256 for w in d.warnings)


def test_a_bad_anaconda_notice_setting_is_refused_precisely() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy({"spec": {"anacondaNotice": "loud"}})
    assert "spec.anacondaNotice: expected one of ['reports', 'warnings', 'off'], got 'loud'" in str(err.value)


# -- dlc-guard's own resources -------------------------------------------------------------------------


def own_review(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    req = {"uid": "u", "kind": {"group": "dlcguard.io", "version": "v1alpha1", "kind": kind}, "operation": "CREATE"}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {**req, "object": obj}}


def test_own_resources_are_judged_as_the_controllers_will_read_them(engine: Engine) -> None:
    bad_policy = {"apiVersion": "dlcguard.io/v1alpha1", "kind": "DLCGuardPolicy", "metadata": {"name": "p"}}
    bad_policy["spec"] = {"exemptions": [{"namespaces": []}], "warnDays": "soon"}
    d = decide(own_review("DLCGuardPolicy", bad_policy), engine, ENFORCE, TODAY)
    assert not d.allowed and d.message is not None
    assert "spec.exemptions[0]" in d.message and "spec.warnDays" in d.message
    bad_exception = exc(expires="2027-02-30")
    d = decide(own_review("DLCGuardException", bad_exception), engine, ENFORCE, TODAY)
    assert not d.allowed and d.message is not None and "spec.expires" in d.message
    good = decide(own_review("DLCGuardException", exc()), engine, ENFORCE, TODAY)
    assert good.allowed and good.decision == "allow"
    # the same kind names in another group are nobody's business here
    other = own_review("DLCGuardPolicy", bad_policy)
    other["request"]["kind"]["group"] = "example.com"
    assert decide(other, engine, ENFORCE, TODAY).decision == "skip"


# -- readable where people look --------------------------------------------------------------------


def test_a_denial_names_each_container_on_its_own_line(engine: Engine) -> None:
    other = OLD.replace("us-west-2", "us-east-1")
    d = decide(review(pod([("train", OLD), ("side", other), ("web", NEW)])), engine, ENFORCE, TODAY)
    assert not d.allowed and d.message is not None
    first, *lines = d.message.split("\n")
    assert first == "dlc-guard denied this object: "
    assert [ln.split(" image ")[0] for ln in lines] == ["container 'train'", "container 'side'"]
    assert all("; use " in ln for ln in lines), "each line says what to move to"
    single = decide(review(pod([("train", OLD)])), engine, ENFORCE, TODAY)
    assert single.message is not None and "\n" not in single.message


def test_the_unsupported_images_annotation_names_the_images(engine: Engine) -> None:
    j = judge_object(pod([("train", OLD), ("web", NEW)]), engine, ENFORCE, TODAY, namespace="team")
    assert j is not None
    assert annotations_for(j.findings)[ANNOTATION_UNSUPPORTED] == f"train={OLD}"
