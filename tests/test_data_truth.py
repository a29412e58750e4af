"""Where the data and the seed decide a verdict no single table gives: retired repositories,
families with no dates of their own (Neuron, Hugging Face), on the real catalog and on a
catalog the test controls."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from policy.catalog import Catalog, CatalogError, Family, default_catalog, load_catalog
from policy.catalog.importer import _retired_but_released
from policy.evaluate import Engine, Result
from tests.helpers import img, mini_catalog_doc

ECR = "763104351884.dkr.ecr.us-west-2.amazonaws.com"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


def catalog_date(c: Catalog) -> dt.date:
    return dt.date.fromisoformat(str(c.source["date"]))


def host(c: Catalog, fam: Family) -> str:
    for account, names in c.fixed_accounts.items():
        if fam.name in names or fam.repository in names:
            return f"{account}.dkr.ecr.us-west-2.amazonaws.com"
    accounts = c.algorithm_accounts if fam.registry == "algorithms" else c.dlc_accounts
    return f"{accounts['us-west-2']}.dkr.ecr.us-west-2.amazonaws.com"


def codes(r: Result) -> set[str]:
    return {x.code for x in r.reasons}


# Families with no maintained image on the snapshot's date that are not retired, and why.
NO_MAINTAINED_IMAGE = {
    "tensorflow-inference": (
        "AWS's own dates: its last line in the snapshot, 2.19, ended 2026-03-11; the SageMaker SDK lists a "
        "2.20.0 image the snapshot lacks, so it is not retired (tests/data/crosscheck_exceptions.yaml)"
    ),
}


def test_every_family_has_a_maintained_image_on_the_catalogs_date_unless_retired(catalog: Catalog) -> None:
    engine = Engine(catalog, catalog_date(catalog))
    without = set()
    for name, fam in sorted(catalog.families.items()):
        verdicts = {engine.evaluate(f"{host(catalog, fam)}/{fam.repository}:{i.tag}").verdict for i in fam.images}
        if verdicts <= {"unsupported", "unknown"} and fam.repository not in catalog.retired:
            without.add(name)
    unexplained = sorted(without - set(NO_MAINTAINED_IMAGE))
    assert not unexplained, "families AWS still releases with no maintained image: " + ", ".join(unexplained)
    assert without >= set(NO_MAINTAINED_IMAGE), "an explained family has a maintained image now: drop it"


def test_the_newest_neuron_line_is_maintained_and_older_lines_borrow_the_framework_table(catalog: Catalog) -> None:
    fam = catalog.families["pytorch-training-neuronx"]
    assert fam.group is None and not fam.lines, "the premise: Neuron families carry no dates of their own"
    engine = Engine(catalog, dt.date(2026, 11, 23))
    newest = max(fam.images, key=lambda i: i.order)
    r = engine.evaluate(f"{ECR}/{fam.repository}:{newest.tag}")
    assert r.verdict != "unsupported" and "EOP_FAMILY_CURRENT" in codes(r)
    current = next(x for x in r.reasons if x.code == "EOP_FAMILY_CURRENT")
    assert current.facts["framework_eop"] == "2026-10-15", "it says which table date it did not apply"
    older = max((i for i in fam.images if i.line == "2.8"), key=lambda i: i.order)
    r = engine.evaluate(f"{ECR}/{fam.repository}:{older.tag}")
    assert r.verdict == "unsupported"
    eop = next(x for x in r.reasons if x.code == "EOP_PASSED")
    assert "PyTorch table's date" in eop.message and eop.facts["source"] == "PyTorch 2.8 (framework table)"


def mini_with(**families: Any) -> Catalog:
    doc = mini_catalog_doc()
    doc["families"].update(families)
    # the PyTorch table as the table families' data makes it
    doc["frameworks"]["PyTorch"]["lines"].update(
        {"2.9": {"ga": "2025-10-15", "eop": "2026-10-15"}, "2.10": {"ga": "2026-01-21", "eop": "2027-01-21"}}
    )
    return load_catalog(doc)


def neuron(*versions: str) -> dict[str, Any]:
    return {
        "repository": "pytorch-training-neuronx",
        "framework": "PyTorch",
        "registry": "dlc",
        "images": [
            img(v, [f"{v}-neuronx-py312-sdk2.30.0-ubuntu24.04"], accelerator="neuronx", platform="sagemaker")
            for v in versions
        ],
    }


def test_a_newer_line_of_the_family_hands_the_older_one_to_the_framework_table() -> None:
    as_of = dt.date(2026, 11, 1)  # PyTorch 2.9's table date (2026-10-15) has passed
    ref = f"{ECR}/pytorch-training-neuronx:2.9.0-neuronx-py312-sdk2.30.0-ubuntu24.04"
    only = Engine(mini_with(**{"pytorch-training-neuronx": neuron("2.9.0")}), as_of).evaluate(ref)
    assert only.verdict == "supported" and "EOP_FAMILY_CURRENT" in codes(only)
    both = Engine(mini_with(**{"pytorch-training-neuronx": neuron("2.9.0", "2.10.1")}), as_of).evaluate(ref)
    assert both.verdict == "unsupported" and "EOP_PASSED" in codes(both)
    assert both.recommendation is not None
    assert both.recommendation.endswith(":2.10.1-neuronx-py312-sdk2.30.0-ubuntu24.04")


def test_table_families_keep_the_framework_table_as_their_own(catalog: Catalog) -> None:
    # pytorch-training shares the PyTorch support rows (upstream framework_groups): no borrowing
    r = Engine(catalog, dt.date(2026, 11, 23)).evaluate(f"{ECR}/pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2")
    eop = next(x for x in r.reasons if x.code == "EOP_PASSED")
    assert "table's date" not in eop.message


# -- retired repositories ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "framework"),
    [
        ("mxnet-training:1.9.0-gpu-py38-cu112-ubuntu20.04-sagemaker", "MXNet"),
        ("mxnet-inference:1.9.0-cpu-py38-ubuntu20.04-sagemaker", "MXNet"),
        ("pytorch-inference-eia:1.5.1-cpu-py3", "PyTorch"),
        ("tensorflow-inference-eia:2.3.0-cpu", "TensorFlow"),
        ("pytorch-inference-graviton:2.4.0-cpu-py311-ubuntu22.04-sagemaker", "PyTorch"),
        ("huggingface-tensorflow-trcomp-training:2.6.3-transformers4.17.0-gpu-py38-cu112-ubuntu20.04", "TensorFlow"),
    ],
)
def test_retired_repositories_are_unsupported_with_their_source(catalog: Catalog, image: str, framework: str) -> None:
    r = Engine(catalog, dt.date(2026, 11, 23)).evaluate(f"{ECR}/{image}")
    assert r.verdict == "unsupported" and r.dlc and r.framework == framework
    reason, notice = r.reasons
    assert reason.code == "FRAMEWORK_RETIRED" and reason.facts["source"]
    assert notice.code == "ANACONDA_LICENSE"
    assert r.recommendation is None or "graviton" not in r.recommendation


def test_a_retired_repository_recommends_its_successors_newest_maintained_image(catalog: Catalog) -> None:
    engine = Engine(catalog, catalog_date(catalog))
    eu = "763104351884.dkr.ecr.eu-west-1.amazonaws.com"
    r = engine.evaluate(f"{eu}/pytorch-training-neuron:1.11.0-neuron-py38-sdk2.4.0-ubuntu20.04")
    assert r.verdict == "unsupported" and r.reasons[0].facts["successor"] == "pytorch-training-neuronx"
    assert r.recommendation is not None
    assert r.recommendation.startswith(f"{eu}/pytorch-training-neuronx:")
    assert engine.evaluate(r.recommendation).verdict in ("supported", "expiring")


def test_a_repository_that_is_only_new_stays_unknown(catalog: Catalog) -> None:
    r = Engine(catalog, dt.date(2026, 11, 23)).evaluate(f"{ECR}/some-new-dlc:1.0.0-gpu-py312")
    assert r.verdict == "unknown" and codes(r) == {"REPOSITORY_UNKNOWN"}


def test_a_retired_repository_still_in_the_data_is_retired_after_its_last_end_of_patch(catalog: Catalog) -> None:
    ref = f"{ECR}/pytorch-inference:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2"
    before = Engine(catalog, dt.date(2026, 5, 1)).evaluate(ref)
    assert "FRAMEWORK_RETIRED" not in codes(before) and before.verdict != "unsupported"
    after = Engine(catalog, dt.date(2026, 11, 23)).evaluate(ref)
    assert after.verdict == "unsupported" and {"FRAMEWORK_RETIRED", "EOP_PASSED"} <= codes(after)


def retired_doc(**entry: Any) -> dict[str, Any]:
    doc = mini_catalog_doc()
    base = {"repository": "pytorch-training", "framework": "PyTorch", "reason": "test", "source": "test data"}
    doc["retired"] = [{**base, **entry}]
    return doc


def test_a_newer_line_than_the_retirement_names_is_judged_as_usual_and_the_importer_says_so() -> None:
    doc = retired_doc(last_line="2.7")
    engine = Engine(load_catalog(doc), dt.date(2026, 6, 1))
    old = engine.evaluate(f"{ECR}/pytorch-training:2.7.1-gpu-py312-cu128-ubuntu22.04-ec2")
    assert "FRAMEWORK_RETIRED" in codes(old)
    assert "FRAMEWORK_RETIRED" not in codes(
        engine.evaluate(f"{ECR}/pytorch-training:2.10.1-gpu-py312-cu130-ubuntu22.04-ec2")
    )
    (warning,) = _retired_but_released(copy.deepcopy(doc))
    assert "pytorch-training" in warning and "2.9, 2.10, 2.11" in warning


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"source": None}, "retired[0].source: is required"),
        ({"successor": "no-such-repo"}, "retired[0].successor: 'no-such-repo' is not a repository"),
        ({"last_eop": "soon"}, "retired[0].last_eop: 'soon' is not a date"),
        ({"since": "2024"}, "retired[0].since: unknown field"),
    ],
)
def test_bad_retired_entries_are_refused_precisely(entry: dict[str, Any], problem: str) -> None:
    doc = retired_doc(**entry)
    doc["retired"][0] = {k: v for k, v in doc["retired"][0].items() if v is not None}
    with pytest.raises(CatalogError) as err:
        load_catalog(doc)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


# -- the seed's Anaconda answer ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "notice"),
    [
        ("pytorch-training:2.6.0-gpu-py312-cu126-ubuntu22.04-ec2", True),  # past its end of patch
        ("pytorch-training:2.10.0-gpu-py313-cu130-ubuntu22.04-ec2", False),  # maintained (expiring)
        ("mxnet-training:1.9.0-gpu-py38-cu112-ubuntu20.04-sagemaker", True),  # retired
    ],
)
def test_images_no_longer_maintained_carry_the_anaconda_notice(catalog: Catalog, image: str, notice: bool) -> None:
    r = Engine(catalog, dt.date(2026, 11, 23)).evaluate(f"{ECR}/{image}")
    assert bool(r.notices) is notice
    if notice:
        (n,) = r.notices
        assert n.code == "ANACONDA_LICENSE" and n.severity == "info"
        assert "conda-forge" in n.message and "licence" in n.message
        assert r.main_reason is not None and r.main_reason.code != "ANACONDA_LICENSE", "it never carries the verdict"
    off = Engine(catalog, dt.date(2026, 11, 23), anaconda_notice=False).evaluate(f"{ECR}/{image}")
    assert not off.notices and off.verdict == r.verdict


def test_an_outdated_build_carries_the_notice_too(catalog: Catalog) -> None:
    r = Engine(catalog, dt.date(2026, 11, 23)).evaluate(
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference-neuronx:2.9.0-neuronx-py312-sdk2.30.0-ubuntu24.04"
    )
    assert r.verdict == "outdated" and [n.code for n in r.notices] == ["ANACONDA_LICENSE"]
