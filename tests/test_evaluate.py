from __future__ import annotations

import datetime as dt

import pytest

from policy.catalog import Catalog, load_catalog
from policy.evaluate import Engine, Result
from policy.registries import Mirror

from .helpers import mini_catalog_doc

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"
CN = "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn"
ALGO = "246618743249.dkr.ecr.us-west-2.amazonaws.com"
PUB = "public.ecr.aws/deep-learning-containers"
TODAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def mini() -> Catalog:
    return load_catalog(mini_catalog_doc())


def judge(cat: Catalog, ref: str, as_of: dt.date = TODAY, warn_days: int = 60, **kw: object) -> Result:
    return Engine(cat, as_of, warn_days, **kw).evaluate(ref)  # type: ignore[arg-type]


def codes(r: Result) -> set[str]:
    return {x.code for x in r.reasons}


@pytest.mark.parametrize(
    ("ref", "verdict", "must", "recommend"),
    [
        (
            f"{ECR}/pytorch-training:2.7.1-gpu-py312-cu128-ubuntu22.04-ec2",
            "unsupported",
            {"EOP_PASSED"},
            "2.10.1-gpu-py312-cu130-ubuntu22.04-ec2",
        ),
        (
            f"{ECR}/pytorch-training:2.9-gpu-py312-ec2",
            "unsupported",
            {"EOP_PASSED"},
            "2.10.1-gpu-py312-cu130-ubuntu22.04-ec2",
        ),
        (f"{ECR}/pytorch-training:2.10-gpu-py312-ec2", "expiring", {"EOP_SOON"}, None),
        (
            f"{ECR}/pytorch-training:2.10.0-gpu-py312-cu130-ubuntu22.04-ec2",
            "outdated",
            {"NEWER_PATCH", "EOP_SOON", "RESOLVED_BY_GRAMMAR"},
            "2.10.1-gpu-py312-cu130-ubuntu22.04-ec2",
        ),
        (f"{ECR}/pytorch-training:2.10.1-gpu-py310-cu130-ubuntu22.04-ec2", "unsupported", {"PYTHON_EOS"}, None),
        (f"{ECR}/pytorch-training:2.11.0-gpu-py312-cu130-ubuntu20.04-ec2", "unsupported", {"OS_EOS"}, None),
        (
            f"{ECR}/pytorch-training:1.12.0-gpu-py38-cu113-ubuntu20.04-ec2",
            "unsupported",
            {"EOP_PASSED", "PYTHON_EOS", "OS_EOS"},
            None,
        ),
        (f"{ECR}/pytorch-training:2.5.0-gpu-py312-cu124-ubuntu22.04-ec2", "unsupported", {"EOP_PASSED"}, None),
        (f"{ECR}/pytorch-training:2.12.0-gpu-py312-cu130-ubuntu22.04-ec2", "unknown", {"NEWER_THAN_CATALOG"}, None),
        (f"{ECR}/pytorch-training:latest", "unknown", {"TAG_LATEST"}, None),
        (f"{ECR}/pytorch-training", "unknown", {"TAG_LATEST"}, None),
        (f"{ECR}/pytorch-training@sha256:{'a' * 64}", "unknown", {"DIGEST_UNRESOLVED"}, None),
        (f"{ECR}/pytorch-training:nightly", "unknown", {"TAG_UNRECOGNISED"}, None),
        (f"{ECR}/brand-new-repo:1.0", "unknown", {"REPOSITORY_UNKNOWN"}, None),
        (f"{ALGO}/blazingtext:1", "not-dlc", {"NOT_DLC"}, None),
        (f"{ALGO}/sagemaker-xgboost:3.2-0", "supported", set(), None),
        (f"{ALGO}/sagemaker-xgboost:3.2-1", "unsupported", {"VARIANT_UNSUPPORTED"}, "3.2-0"),
        (f"{ALGO}/sagemaker-xgboost:1.0-1", "unknown", {"VERSION_UNKNOWN"}, None),
        (
            f"{ECR}/vllm:0.20.0-gpu-py312-ec2",
            "unsupported",
            {"NOT_LATEST", "CANNOT_FULLY_PATCH"},
            "0.21.0-gpu-py312-ec2",
        ),
        (f"{ECR}/vllm:0.21.0-gpu-py312-ec2", "supported", {"CANNOT_FULLY_PATCH"}, None),
        (f"{ECR}/vllm:server-cuda-v1.2", "supported", set(), None),
        (f"{ECR}/vllm:server-cuda-v1", "supported", set(), None),
        (f"{ECR}/vllm:server-cuda-v1.0", "unsupported", {"NOT_LATEST"}, "server-cuda-v1.2"),
        (f"{ECR}/vllm:server-cuda-v1.1", "unsupported", {"NOT_LATEST"}, "server-cuda-v1.2"),
        (f"{ECR}/vllm:server-cuda-v1.3", "unknown", {"NEWER_THAN_CATALOG"}, None),
        (f"{ECR}/vllm:server-cuda-v2", "unknown", {"NEWER_THAN_CATALOG"}, None),
        (
            f"{ECR}/djl-inference:0.36.0-lmi18.0.0-cu128",
            "outdated",
            {"NEWER_BUILD", "EOP_UNPUBLISHED"},
            "0.36.0-lmi20.0.0-cu128",
        ),
        (f"{ECR}/djl-inference:0.36.0-lmi20.0.0-cu128", "supported", {"EOP_UNPUBLISHED"}, None),
        ("nginx:1.25", "not-dlc", {"NOT_DLC"}, None),
        ("registry.corp.example/dlc/pytorch-training:2.10-gpu-py312-ec2", "not-dlc", {"NOT_DLC"}, None),
        ("Not/A Ref", "invalid", {"INVALID_REFERENCE"}, None),
    ],
)
def test_rules(mini: Catalog, ref: str, verdict: str, must: set[str], recommend: str | None) -> None:
    r = judge(mini, ref)
    assert r.verdict == verdict, r.reasons
    assert must <= codes(r), codes(r)
    if recommend is None:
        assert r.recommendation is None or verdict in ("unsupported", "unknown")
    else:
        assert r.recommendation is not None
        assert r.recommendation.endswith(f":{recommend}")
        assert r.recommendation.startswith(ref.rsplit(":", 1)[0].rsplit("@", 1)[0])


def test_recommendation_stays_in_registry_and_region(mini: Catalog) -> None:
    for host in (CN, PUB):
        r = judge(mini, f"{host}/pytorch-training:2.7.1-gpu-py312-cu128-ubuntu22.04-ec2")
        assert r.recommendation == f"{host}/pytorch-training:2.10.1-gpu-py312-cu130-ubuntu22.04-ec2"


def test_mirror(mini: Catalog) -> None:
    ref = "registry.corp.example/dlc/pytorch-training:2.7-gpu-py312-ec2"
    r = judge(mini, ref, mirrors=(Mirror("registry.corp.example/dlc"),))
    assert r.dlc and r.verdict == "unsupported"
    assert r.recommendation == "registry.corp.example/dlc/pytorch-training:2.10.1-gpu-py312-cu130-ubuntu22.04-ec2"


def test_warning_window(mini: Catalog) -> None:
    ref = f"{ECR}/pytorch-training:2.10-gpu-py312-ec2"
    assert judge(mini, ref, warn_days=60).verdict == "expiring"
    r = judge(mini, ref, warn_days=30)
    assert r.verdict == "supported"
    assert r.next_change == dt.date(2026, 12, 22)  # EOP 2027-01-21 minus 30 days
    assert judge(mini, ref, warn_days=60).next_change == dt.date(2027, 1, 22)
    assert judge(mini, ref, as_of=dt.date(2027, 1, 21)).verdict == "expiring"  # the last day of patch
    assert judge(mini, ref, as_of=dt.date(2027, 1, 22)).verdict == "unsupported"


def test_dependency_window(mini: Catalog) -> None:
    r = judge(mini, f"{ECR}/pytorch-training:2.10.1-gpu-py310-cu130-ubuntu22.04-ec2", as_of=dt.date(2026, 10, 1))
    assert "PYTHON_EOS_SOON" in codes(r)


def test_ga_plus_365_when_no_eop(mini: Catalog) -> None:
    r = judge(mini, f"{ECR}/pytorch-training:2.11.0-gpu-py312-cu130-ubuntu20.04-ec2", as_of=dt.date(2025, 5, 1))
    assert r.eop == dt.date(2027, 4, 30)
    r = judge(mini, f"{ECR}/pytorch-training:2.11.0-gpu-py312-cu130-ubuntu20.04-ec2", as_of=dt.date(2027, 3, 15))
    soon = next(x for x in r.reasons if x.code == "EOP_SOON")
    assert soon.facts["rule"] == "ga+365"


def test_major_version_exception(mini: Catalog) -> None:
    r = judge(
        mini, f"{ECR}/tensorflow-training:1.15.5-gpu-py312-ubuntu22.04-ec2", as_of=dt.date(2021, 3, 1), warn_days=0
    )
    # two years from GA (2021-10-15) or six months after upstream EOL (2021-01-01 + 182d): the earlier
    assert r.eop == dt.date(2021, 7, 2)
    assert "MAJOR_VERSION_EXCEPTION" in codes(r)
    assert r.verdict == "supported"
    assert (
        judge(mini, f"{ECR}/tensorflow-training:1.15.5-gpu-py312-ubuntu22.04-ec2", as_of=dt.date(2021, 7, 3)).verdict
        == "unsupported"
    )
    r2 = judge(
        mini, f"{ECR}/tensorflow-training:2.0.0-gpu-py312-ubuntu22.04-ec2", as_of=dt.date(2020, 1, 1), warn_days=0
    )
    assert r2.eop == dt.date(2020, 9, 29)  # GA + 365
    assert "MAJOR_VERSION_EXCEPTION" not in codes(r2)


def test_reasons_carry_facts(mini: Catalog) -> None:
    r = judge(mini, f"{ECR}/pytorch-training:2.7.1-gpu-py312-cu128-ubuntu22.04-ec2")
    eop = next(x for x in r.reasons if x.code == "EOP_PASSED")
    assert eop.facts["eop"] == "2026-04-23"
    assert eop.facts["source"].startswith("pytorch-training 2.7")
    d = r.to_dict()
    assert d["eop"] == "2026-04-23" and d["verdict"] == "unsupported" and d["dlc"] is True


def test_cache_returns_same_answer(mini: Catalog) -> None:
    e = Engine(mini, TODAY, cache_size=2)
    refs = [f"{ECR}/pytorch-training:2.9-gpu-py312-ec2", "nginx", f"{ECR}/vllm:server-cuda-v1", "nginx"]
    first = [e.evaluate(r) for r in refs]
    second = [e.evaluate(r) for r in refs]
    assert first == second
    assert len(e._cache) <= 2


def test_invalid_warn_days(mini: Catalog) -> None:
    with pytest.raises(ValueError):
        Engine(mini, TODAY, -1)


# The table in the README, on the real embedded catalog.
README_ROWS = [
    (f"{ECR}/pytorch-training:2.3.0-gpu-py311-cu121-ubuntu20.04-sagemaker-v1.8", "unsupported", "EOP_PASSED"),
    (f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2", "unsupported", "EOP_PASSED"),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.10-gpu-py313-ec2", "expiring", "EOP_SOON"),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.13.0-cu133-amzn2023", "supported", None),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.36.0-lmi20.0.0-cu128", "outdated", "NEWER_BUILD"),
    (f"{PUB}/vllm:server-cuda-v2.3", "supported", None),
    (f"{PUB}/vllm:0.22.0-gpu-py312-cu130-ubuntu22.04-ec2", "unsupported", "NOT_LATEST"),
    (f"{ALGO}/sagemaker-scikit-learn:1.4-2", "unsupported", "VARIANT_UNSUPPORTED"),
    (f"{ALGO}/sagemaker-xgboost:3.0-5", "unsupported", "EOP_PASSED"),
    (f"{CN}/tensorflow-training:2.21.0-gpu-py312-cu129-amzn2023-sagemaker", "supported", None),
    (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference-neuronx:2.9.0-neuronx-py312-sdk2.30.0-ubuntu24.04",
        "outdated",
        "NEWER_BUILD",
    ),
    (
        # the newest line AWS releases for Hugging Face inference (with transformers 5.5.3): maintained
        f"{ECR}/huggingface-pytorch-inference:2.6.0-transformers5.5.3-gpu-py312-cu124-ubuntu22.04",
        "supported",
        "EOP_FAMILY_CURRENT",
    ),
    (f"{ECR}/pytorch-training@sha256:{'0123456789abcdef' * 4}", "unknown", "DIGEST_UNRESOLVED"),
    (f"{ECR}/mxnet-training:1.9.0-gpu-py38-cu112-ubuntu20.04-sagemaker", "unsupported", "FRAMEWORK_RETIRED"),
    (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference-neuron:"
        "1.10.2-transformers4.20.1-neuron-py37-sdk1.19.1-ubuntu18.04",
        "unsupported",
        "FRAMEWORK_RETIRED",
    ),
    ("nvcr.io/nvidia/pytorch:22.07-py3", "not-dlc", "NOT_DLC"),
]


@pytest.mark.parametrize(("ref", "verdict", "code"), README_ROWS)
def test_real_catalog(catalog: Catalog, ref: str, verdict: str, code: str | None) -> None:
    r = judge(catalog, ref)
    assert r.verdict == verdict, r.reasons
    if code:
        assert code in codes(r)
