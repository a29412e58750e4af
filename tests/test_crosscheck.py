"""dlc-guard against an outside source: the SageMaker Python SDK's ``image_uri_config/*.json``
(shipped in ``sagemaker-core``), AWS's own table of DLC repositories, framework versions and the
registry account of every region. Every (repository, version, region) there for a DLC repository
must be judged as a DLC image of that repository and version in that account's registry, or be
retired, or be a documented exception (``tests/data/crosscheck_exceptions.yaml``, each with its
reason). An exception that no longer matches anything fails too: the list stays true.

The references are built the way the SDK builds its tags (``{version}-{processor}-{python}`` and
the container version; Hugging Face: ``{framework version}-transformers{version}-…``), from the
first processor each entry lists."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
import yaml

from policy.catalog import Catalog, default_catalog
from policy.evaluate import Engine, Result

HERE = Path(__file__).resolve().parent
EXCEPTIONS = HERE / "data" / "crosscheck_exceptions.yaml"


def config_dir() -> Path | None:
    try:
        path = Path(str(distribution("sagemaker-core").locate_file("sagemaker/core/image_uri_config")))
    except PackageNotFoundError:
        return None
    return path if path.is_dir() else None


CONFIG = config_dir()
pytestmark = pytest.mark.skipif(
    CONFIG is None, reason="sagemaker-core is not installed (make setup installs it: tests/requirements-crosscheck.txt)"
)

_DOMAINS = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
    ("eusc-", "amazonaws.eu"),
)


def ecr_host(region: str, account: str) -> str:
    domain = next((d for prefix, d in _DOMAINS if region.startswith(prefix)), "amazonaws.com")
    return f"{account}.dkr.ecr.{region}.{domain}"


@dataclass(frozen=True)
class Triple:
    source: str
    repository: str
    version: str
    region: str
    account: str
    tag: str

    @property
    def reference(self) -> str:
        return f"{ecr_host(self.region, self.account)}/{self.repository}:{self.tag}"


def _tag(conf: Mapping[str, Any], version: str, transformers: str | None, processors: list[str]) -> str:
    processor = (conf.get("processors") or processors or ["gpu"])[0]
    python = (conf.get("py_versions") or [None])[0]
    container = conf.get("container_version")
    if isinstance(container, Mapping):
        container = container.get(processor)
    parts = [version, f"transformers{transformers}" if transformers else None, processor, python, container]
    return "-".join(str(p) for p in parts if p)


def triples(catalog: Catalog) -> Iterator[Triple]:
    """Every (repository, version, region) of the SDK's table for a DLC repository: one the
    catalog knows or lists as retired, or one served from a DLC registry account."""
    assert CONFIG is not None
    dlc_accounts = set(catalog.dlc_accounts.values())
    known = set(catalog.by_repository) | set(catalog.retired)

    def walk(node: Any, key: str | None, parent: str | None, processors: list[str], source: str) -> Iterator[Triple]:
        if not isinstance(node, Mapping):
            return
        processors = list(node.get("processors") or processors)
        if "repository" in node and "registries" in node and key is not None:
            repo, regs = str(node["repository"]), node["registries"]
            framework = re.match(r"^(?:pytorch|tensorflow)(\d[\d.]*)$", key)
            version, transformers = (framework.group(1), parent) if framework else (key, None)
            if (repo in known or set(regs.values()) & dlc_accounts) and re.match(r"^\d", version):
                tag = _tag(node, version, transformers, processors)
                for region, account in regs.items():
                    yield Triple(source, repo, version, str(region), str(account), tag)
        for k, v in node.items():
            yield from walk(v, str(k), key, processors, source)

    for path in sorted(CONFIG.glob("*.json")):
        yield from walk(json.loads(path.read_text()), None, None, [], path.name)


def problem(t: Triple, r: Result, catalog: Catalog) -> str | None:
    """What is wrong with dlc-guard's judgement of ``t`` (``None``: it agrees with the SDK)."""
    if not r.dlc:
        return "not-dlc"
    if r.repository != t.repository:
        return "repository"
    codes = {x.code for x in r.reasons}
    if "FRAMEWORK_RETIRED" in codes:
        return None
    if t.repository in catalog.retired and catalog.retired[t.repository].last_line is None:
        return "not-retired"  # (a line newer than a retirement's last line is judged as usual)
    if "REPOSITORY_UNKNOWN" in codes:
        return "repository-unknown"
    if r.version is None or "TAG_UNRECOGNISED" in codes:
        return "tag-unrecognised"
    if "NEWER_THAN_CATALOG" in codes:
        return "newer-than-catalog"
    v = r.version
    if not (v == t.version or v.startswith((t.version + ".", t.version + "+")) or t.version.startswith(v + ".")):
        return "version"
    return None


@pytest.fixture(scope="module")
def judged() -> tuple[Catalog, list[tuple[Triple, str | None]]]:
    catalog = default_catalog()
    engine = Engine(catalog, dt.date(2026, 11, 23))
    out = []
    for t in triples(catalog):
        out.append((t, problem(t, engine.evaluate(t.reference), catalog)))
    return catalog, out


def test_the_sdk_table_is_read_whole(judged: tuple[Catalog, list[tuple[Triple, str | None]]]) -> None:
    _, rows = judged
    repos = {t.repository for t, _ in rows}
    assert len(rows) > 10_000, "the SDK's table has tens of thousands of (repository, version, region)"
    assert {"pytorch-training", "tensorflow-inference", "huggingface-pytorch-training", "mxnet-training"} <= repos
    assert {t.region for t, _ in rows} >= {"us-gov-west-1", "cn-north-1", "us-iso-east-1", "eusc-de-east-1"}


def test_every_dlc_image_in_the_sdk_table_is_judged_as_aws_says_or_excepted_with_a_reason(
    judged: tuple[Catalog, list[tuple[Triple, str | None]]],
) -> None:
    _, rows = judged
    exceptions = yaml.safe_load(EXCEPTIONS.read_text())
    covered = {(e["repository"], e["problem"]): e for e in exceptions}
    for e in exceptions:
        assert e.get("reason"), f"exception {e['repository']}/{e['problem']} needs a reason"
    mismatches: Counter[tuple[str, str]] = Counter((t.repository, p) for t, p in rows if p is not None)
    example = {(t.repository, p): t for t, p in rows if p is not None}
    unexplained = [
        f"{repo} {p} ({n} triples, e.g. {example[(repo, p)].reference})"
        for (repo, p), n in sorted(mismatches.items())
        if (repo, p) not in covered
    ]
    assert not unexplained, "dlc-guard disagrees with the SDK's table:\n" + "\n".join(unexplained)
    stale = [f"{repo} {p}" for (repo, p) in covered if (repo, p) not in mismatches]
    assert not stale, "exceptions that no longer match anything (remove them):\n" + "\n".join(stale)


def test_accounts_agree_with_the_catalog_in_every_region(
    judged: tuple[Catalog, list[tuple[Triple, str | None]]],
) -> None:
    catalog, rows = judged
    wrong = sorted(
        {
            f"{t.region}: the SDK says {t.account}, the catalog {catalog.dlc_accounts.get(t.region)}"
            for t, _ in rows
            if t.repository in catalog.by_repository
            and all(f.registry == "dlc" for f in catalog.by_repository[t.repository])
            and t.account in set(catalog.dlc_accounts.values()) | {"763104351884"}
            and catalog.dlc_accounts.get(t.region) != t.account
        }
    )
    assert not wrong, "\n".join(wrong)
