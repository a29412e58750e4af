"""Digest-pinned images: the pure book and label reading, then real lookups against a real OCI
registry on loopback (CNCF Distribution from ``make tools``) through ``check``, ``scan``, the
webhook and the resolver: labels, indexes, tags, unknown digests, a registry down, a registry
too slow, authentication."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.cli.main import main
from controller.registry.auth import Credentials, EcrTokens, parse_docker_config
from controller.registry.oci import RegistryClient
from controller.registry.resolver import DigestResolver, FileStore
from policy.catalog import default_catalog
from policy.digests import DigestBook, DigestIdentity, tag_from_labels
from policy.evaluate import Engine
from policy.registries import Mirror
from tests.registry import PYTORCH_26_LABELS, Registry, available, registry, silent_server

AS_OF = dt.date(2026, 11, 23)
OLD_LABELS = PYTORCH_26_LABELS
OLD_TAG = "2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
FIX_TAG = "2.10.0-gpu-py313-cu130-ubuntu22.04-ec2"
SOON_TAG = "2.10-gpu-py313-ec2"
ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
MISSING = "sha256:" + "0" * 64


# -- pure -------------------------------------------------------------------------------------------


def test_labels_are_written_as_the_tag_they_describe() -> None:
    assert tag_from_labels(OLD_LABELS) == OLD_TAG
    assert tag_from_labels(OLD_LABELS, "PyTorch") == OLD_TAG
    assert tag_from_labels(OLD_LABELS, "TensorFlow") is None, "labels of another framework are not trusted"
    sm = {**OLD_LABELS, "platform": "sagemaker", "python_version": "3.12"}
    assert tag_from_labels(sm) == "2.6.0-gpu-py312-cu126-ubuntu22.04-sagemaker-v1.3"
    assert tag_from_labels({"framework_version": "2.6.0", "device_type": "cpu", "cuda_version": "cu126"}) == "2.6.0-cpu"
    assert tag_from_labels({"maintainer": "someone"}) is None
    assert tag_from_labels({"framework_version": "latest"}) is None


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=30), max_size=8))
def test_any_labels_give_a_tag_or_none(labels: dict[str, str]) -> None:
    tag = tag_from_labels(labels)
    assert tag is None or tag.startswith(labels["framework_version"].strip().lower())


def test_book_is_bounded_and_keeps_the_latest_failure() -> None:
    book = DigestBook(size=2)
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    book.fail(a, "registry down")
    assert book.failure(a) == "registry down" and book.get(a) is None
    book.put(a, DigestIdentity(OLD_TAG, "labels"))
    assert book.failure(a) is None, "an answer replaces the failure"
    book.put(b, DigestIdentity("t2", "tag"))
    book.get(a)  # a is now the most recently used
    book.put(c, DigestIdentity("t3", "tag"))
    assert a in book and c in book and b not in book and len(book) == 2
    again = DigestBook()
    assert again.load(book.to_dict()) == []
    assert again.get(a) == book.get(a)
    problems = again.load({"digests": {"sha256:xyz": {}, c: {"tag": ""}}})
    assert len(problems) == 2 and "not a sha256 digest" in problems[0]
    assert again.load([]) == ["(document): expected {'digests': {...}}"]


def test_engine_judges_a_digest_by_the_books_answer_and_never_caches_not_knowing() -> None:
    book = DigestBook()
    engine = Engine(default_catalog(), AS_OF, digests=book)
    digest = "sha256:" + "a" * 64
    image = f"{ECR}/pytorch-training@{digest}"
    first = engine.evaluate(image)
    assert first.verdict == "unknown" and first.reasons[0].code == "DIGEST_UNRESOLVED"
    book.fail(digest, "registry down")
    assert "registry down" in engine.evaluate(image).reasons[0].message
    book.put(digest, DigestIdentity(OLD_TAG, "labels"))
    r = engine.evaluate(image)
    assert r.verdict == "unsupported" and r.image == image
    assert r.framework == "PyTorch" and str(r.version) == "2.6.0"
    assert r.recommendation == f"{ECR}/pytorch-training:{FIX_TAG}"


def test_docker_config_parsing_reports_bad_documents() -> None:
    good = {
        "auths": {
            "https://reg.example:5000/v1/": {"auth": "dXNlcjpwYXNz"},
            "other.example": {"username": "u", "password": "p"},
        }
    }
    assert parse_docker_config(good) == {"reg.example:5000": ("user", "pass"), "other.example": ("u", "p")}
    with pytest.raises(ValueError, match="not base64"):
        parse_docker_config({"auths": {"x": {"auth": "%%%"}}}, "pull-secret")
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_docker_config([], "pull-secret")


class _FakeEcr:
    """AWS's own ECR API cannot exist here: a stand-in for boto3's client, returning the
    documented shape of GetAuthorizationToken."""

    def __init__(self) -> None:
        self.calls = 0

    def get_authorization_token(self, registryIds: list[str]) -> dict[str, Any]:
        self.calls += 1
        import base64

        token = base64.b64encode(b"AWS:secret-token").decode()
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)
        return {"authorizationData": [{"authorizationToken": token, "expiresAt": expires}]}


def test_ecr_hosts_use_cached_ecr_tokens() -> None:
    fake = _FakeEcr()
    creds = Credentials({}, EcrTokens(lambda region: fake))
    assert creds.for_host(ECR) == ("AWS", "secret-token")
    assert creds.for_host(ECR.upper()) == ("AWS", "secret-token")
    assert fake.calls == 1, "a token is reused until shortly before it expires"
    assert creds.for_host("registry.example") is None


@pytest.mark.parametrize(
    "host",
    [
        "763104351884.dkr-ecr.us-west-2.on.aws",  # dual-stack
        "763104351884.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "763104351884.dkr.ecr.us-west-2.amazonaws.com:443",
    ],
)
def test_every_host_judged_as_ecr_gets_an_ecr_token(host: str) -> None:
    from policy.catalog import default_catalog
    from policy.reference import parse_reference
    from policy.registries import identify

    assert identify(parse_reference(f"{host}/pytorch-training:2.6.0-gpu-py312"), default_catalog()) is not None
    creds = Credentials({}, EcrTokens(lambda region: _FakeEcr()))
    assert creds.for_host(host) == ("AWS", "secret-token"), "judged as ECR, so authenticated as ECR"

    def broken(region: str) -> Any:
        raise LookupError("ECR needs boto3 (pip install 'dlc-guard[aws]')")

    creds = Credentials({}, EcrTokens(broken))
    assert creds.for_host(ECR) is None
    assert "boto3" in creds.why_none(ECR)


def test_aws_error_text_stays_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    secret = "User: arn:aws:sts::111122223333:assumed-role/ml-platform-node is not authorized"

    class Denied(Exception):
        pass

    class _Refusing:
        def get_authorization_token(self, registryIds: list[str]) -> dict[str, Any]:
            raise Denied(secret)

    creds = Credentials({}, EcrTokens(lambda region: _Refusing()))
    with caplog.at_level("WARNING", logger="dlc_guard.registry"):
        assert creds.for_host(ECR) is None
    said = creds.why_none(ECR)  # what becomes the reason users see in kubectl
    assert "Denied" in said and "arn:aws" not in said and "ml-platform-node" not in said
    assert secret in caplog.text  # the operator of dlc-guard still has the detail


# -- a real registry --------------------------------------------------------------------------------

needs_registry = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if available() is not None:
        pytest.skip(str(available()))
    with registry(tmp_path_factory.mktemp("registry")) as r:
        yield r


@pytest.fixture(scope="module")
def images(reg: Registry) -> dict[str, str]:
    repo = "dlc/pytorch-training"
    amd = reg.image(repo, OLD_LABELS, salt="amd")
    arm = reg.image(repo, {**OLD_LABELS, "framework_version": "2.10.0"}, arch="arm64", salt="arm")
    return {
        "labels": reg.image(repo, OLD_LABELS, salt="single"),
        "index": reg.index(repo, [(arm, "arm64"), (amd, "amd64")]),
        "tagged": reg.image(repo, {"maintainer": "someone"}, tag=SOON_TAG, salt="tagged"),
        "bare": reg.image(repo, {}, salt="bare"),
    }


def ref(reg: Registry, digest: str) -> str:
    return f"{reg.host}/dlc/pytorch-training@{digest}"


def resolver_for(reg: Registry, tmp: Path | None = None, timeout: float = 5.0, **kw: Any) -> DigestResolver:
    client = RegistryClient(kw.pop("credentials", Credentials()), ca_file=str(reg.ca), timeout=timeout)
    return DigestResolver(DigestBook(), client, store=FileStore(tmp / "digests.json") if tmp else None, **kw)


def judge(resolver: DigestResolver, mirror: str, images: list[str]) -> list[Any]:
    engine = Engine(default_catalog(), AS_OF, mirrors=(Mirror(mirror),), digests=resolver.book)
    resolver.resolve_all(engine, images)
    return engine.evaluate_many(images)


@needs_registry
def test_digests_resolve_by_labels_index_and_tag(reg: Registry, images: dict[str, str]) -> None:
    resolver = resolver_for(reg)
    mirror = f"{reg.host}/dlc"
    by_labels, by_index, by_tag = judge(
        resolver, mirror, [ref(reg, images["labels"]), ref(reg, images["index"]), ref(reg, images["tagged"])]
    )
    assert by_labels.verdict == "unsupported" and str(by_labels.version) == "2.6.0"
    assert by_labels.recommendation == f"{mirror}/pytorch-training:{FIX_TAG}"
    assert by_index.verdict == "unsupported", "the index is read through its linux/amd64 manifest"
    assert by_tag.verdict == "expiring" and str(by_tag.version) == "2.10.0"
    assert resolver.book.get(images["tagged"]) == DigestIdentity(SOON_TAG, "tag")
    assert resolver.book.get(images["labels"]).source == "labels"  # type: ignore[union-attr]
    before = resolver.lookups
    judge(resolver, mirror, [ref(reg, images["labels"])])
    assert resolver.lookups == before, "an answered digest is never looked up again"


@needs_registry
def test_failures_are_unknown_with_a_reason(reg: Registry, images: dict[str, str]) -> None:
    resolver = resolver_for(reg)
    no_labels, missing = judge(resolver, f"{reg.host}/dlc", [ref(reg, images["bare"]), ref(reg, MISSING)])
    assert no_labels.verdict == "unknown"
    assert "no DLC labels and no tag" in no_labels.reasons[0].message
    assert missing.verdict == "unknown" and "no such digest" in missing.reasons[0].message
    before = resolver.lookups
    judge(resolver, f"{reg.host}/dlc", [ref(reg, MISSING)])
    assert resolver.lookups == before, "a failure is remembered for a while"


def test_a_registry_that_is_down_is_named(tmp_path: Path) -> None:
    from tests.cluster import free_port

    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    resolver = DigestResolver(DigestBook(), RegistryClient(timeout=2))
    (r,) = judge(resolver, f"{host}/dlc", [f"{host}/dlc/pytorch-training@{MISSING}"])
    assert r.verdict == "unknown" and f"{host} unreachable" in r.reasons[0].message


def test_the_webhook_budget_is_kept_when_the_registry_is_slow() -> None:
    with silent_server() as host:
        resolver = DigestResolver(DigestBook(), RegistryClient(timeout=5.0))
        engine = Engine(default_catalog(), AS_OF, mirrors=(Mirror(f"{host}/dlc"),), digests=resolver.book)
        image = f"{host}/dlc/pytorch-training@{MISSING}"
        started = time.monotonic()
        learnt = asyncio.run(resolver.resolve_within(engine, [image], budget=0.3))
        waited = time.monotonic() - started
        assert learnt is True, "the reason is news too"
        assert waited < 4.0, "the budget, not the registry's 5 s timeout, bounds the wait"
        r = engine.evaluate(image)
        assert r.verdict == "unknown" and "within the webhook's 0.3s budget" in r.reasons[0].message
        resolver.close()
    slow = DigestResolver(DigestBook(), RegistryClient(timeout=0.5))
    with silent_server() as host:
        (r,) = judge(slow, f"{host}/dlc", [f"{host}/dlc/pytorch-training@{MISSING}"])
        assert "did not answer within 0.5s" in r.reasons[0].message


@needs_registry
def test_authentication_from_a_pull_secret(tmp_path: Path) -> None:
    with registry(tmp_path / "auth", user="puller", password="s3cret") as reg:
        digest = reg.image("dlc/pytorch-training", OLD_LABELS)
        image = ref(reg, digest)
        (anonymous,) = judge(resolver_for(reg), f"{reg.host}/dlc", [image])
        assert "requires authentication: no credentials for" in anonymous.reasons[0].message
        wrong = Credentials(parse_docker_config({"auths": {reg.host: {"username": "puller", "password": "no"}}}))
        (refused,) = judge(resolver_for(reg, credentials=wrong), f"{reg.host}/dlc", [image])
        assert "refused the credentials" in refused.reasons[0].message
        good = Credentials(parse_docker_config(reg.docker_config()))
        (ok,) = judge(resolver_for(reg, credentials=good), f"{reg.host}/dlc", [image])
        assert ok.verdict == "unsupported"


@needs_registry
def test_check_and_scan_resolve_digests_and_keep_them(reg: Registry, images: dict[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "digests.json"
    common = ["--as-of", "2026-11-23", "--mirror", f"{reg.host}/dlc", "--resolve-digests"]
    common += ["--registry-ca", str(reg.ca), "--digest-cache", str(cache)]
    out, err = io.StringIO(), io.StringIO()
    code = main(["check", "-o", "json", *common, ref(reg, images["labels"])], io.StringIO(), out, err)
    assert code == 1, err.getvalue()
    (result,) = json.loads(out.getvalue())
    assert result["verdict"] == "unsupported"
    assert images["labels"] in json.loads(cache.read_text())["digests"]
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: t, namespace: ml}\nspec:\n  template:\n"
        f"    spec:\n      containers:\n      - name: main\n        image: {ref(reg, images['tagged'])}\n"
    )
    out = io.StringIO()
    code = main(["scan", str(manifest), "-o", "json", "--fail-on", "never", *common], io.StringIO(), out, err)
    doc = json.loads(out.getvalue())
    verdicts = [f["verdict"] for f in doc["findings"]]
    assert verdicts == ["expiring"], doc
    # the registry is not needed again: the cache answers
    offline = ["--as-of", "2026-11-23", "--mirror", f"{reg.host}/dlc", "--resolve-digests"]
    offline += ["--digest-cache", str(cache), "--registry-ca", str(reg.ca)]
    out = io.StringIO()
    assert main(["check", "-o", "json", *offline, ref(reg, images["tagged"])], io.StringIO(), out, err) == 0
    assert json.loads(out.getvalue())[0]["verdict"] == "expiring"


def test_bad_registry_options_are_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "auth.json"
    bad.write_text("{not json")
    err = io.StringIO()
    code = main(
        ["check", "--resolve-digests", "--registry-auth", str(bad), f"{ECR}/pytorch-training@{MISSING}"],
        io.StringIO(),
        io.StringIO(),
        err,
    )
    assert code == 2 and "not JSON" in err.getvalue()


# -- floods ------------------------------------------------------------------------------------------


def fake_digest(i: int) -> str:
    return "sha256:" + f"{i:064x}"


@needs_registry
def test_a_lookup_flood_is_bounded_and_admission_lookups_go_first(reg: Registry, images: dict[str, str]) -> None:
    with silent_server() as slow_host:
        client = RegistryClient(Credentials(), ca_file=str(reg.ca), timeout=3.0)
        resolver = DigestResolver(DigestBook(), client, workers=4, max_queued=200, per_registry=2)
        mirrors = (Mirror(f"{slow_host}/dlc"), Mirror(f"{reg.host}/dlc"))
        engine = Engine(default_catalog(), AS_OF, mirrors=mirrors, digests=resolver.book)
        # 3,000 digests at a registry that never answers (the operator's background work)
        flood = [f"{slow_host}/dlc/pytorch-training@{fake_digest(i)}" for i in range(3000)]
        started = resolver.start(engine, flood)
        assert started == 3000
        assert resolver.queued() <= 200, "the queue is bounded"
        assert resolver.refused >= 3000 - 200 - 4
        refused = engine.evaluate(flood[-1])
        assert refused.verdict == "unknown" and "too many registry lookups queued" in refused.reasons[0].message
        # an admission review waits on a digest at another registry: answered within its budget,
        # because the flooded registry holds only two of the four workers
        real = ref(reg, images["labels"])
        t0 = time.monotonic()
        assert asyncio.run(resolver.resolve_within(engine, [real], budget=2.0))
        assert engine.evaluate(real).verdict == "unsupported", "answered, not timed out"
        assert time.monotonic() - t0 < 2.0
        # ... and a flood of waited-on lookups at the same registry: the newest is served first
        same = [f"{reg.host}/dlc/pytorch-training@{fake_digest(10_000 + i)}" for i in range(150)]
        resolver.start(engine, same)
        tagged = ref(reg, images["tagged"])
        assert asyncio.run(resolver.resolve_within(engine, [tagged], budget=2.0))
        assert engine.evaluate(tagged).verdict == "expiring"
        resolver.close()
