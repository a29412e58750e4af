"""Every tag in the upstream data resolves to its own repository, framework and version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.upstream import import_upstream
from policy.catalog import Catalog, load_catalog
from policy.evaluate import Engine
from policy.version import InvalidVersion, Version, parse_version

from .conftest import AS_OF


def _data_version(raw: dict[str, Any]) -> Version:
    text = str(raw["version"])
    try:
        return parse_version(text)
    except InvalidVersion:
        return parse_version(text.split("-py")[0])


def _records(upstream: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        (str(p.relative_to(upstream)), yaml.safe_load(p.read_text()))
        for p in sorted((upstream / "data").glob("*/*.yml"))
    ]


def _registry(catalog: Catalog, family_dir: str, raw: dict[str, Any]) -> str:
    fixed = [acct for acct, fams in catalog.fixed_accounts.items() if family_dir in fams]
    if fixed:
        return f"{fixed[0]}.dkr.ecr.us-east-1.amazonaws.com"
    fams = [f for f in catalog.families.values() if f.name.split("/")[0] == family_dir]
    if fams and fams[0].registry == "algorithms":
        return f"{catalog.algorithm_accounts['us-west-2']}.dkr.ecr.us-west-2.amazonaws.com"
    return f"{catalog.dlc_accounts['us-west-2']}.dkr.ecr.us-west-2.amazonaws.com"


def test_every_upstream_tag_resolves(upstream: Path) -> None:
    catalog = load_catalog(import_upstream(upstream).document)
    engine = Engine(catalog, AS_OF)
    records = _records(upstream)
    # a floating tag belongs to the newest record that lists it
    owners: dict[tuple[str, str], tuple[Version, str, dict[str, Any]]] = {}
    for where, raw in records:
        repo = str(raw.get("ecr_repository") or where.split("/")[1])
        for tag in raw["tags"]:
            v = _data_version(raw)
            key = (repo, str(tag))
            if key not in owners or v > owners[key][0]:
                owners[key] = (v, where, raw)
    assert len(owners) > 400
    failures = []
    for (repo, tag), (version, where, raw) in sorted(owners.items()):
        family_dir = where.split("/")[1]
        ref = f"{_registry(catalog, family_dir, raw)}/{repo}:{tag}"
        r = engine.evaluate(ref)
        got = parse_version(r.version) if r.version else None
        ok = (
            r.dlc
            and r.verdict not in ("unknown", "invalid", "not-dlc")
            and r.repository == repo
            and r.framework == raw["framework"]
            and got is not None
            and got.release[: len(version.release)] == version.release
            and got.pkg == version.pkg
        )
        if not ok:
            failures.append(f"{where} {tag}: {r.verdict} {r.repository} {r.framework} {r.version} {r.summary}")
    assert not failures, "\n".join(failures)


def test_embedded_catalog_is_current(upstream: Path, catalog: Catalog) -> None:
    """`make catalog` was run after the last change to the importer, overlay or data (the
    import is reproducible: the same data gives the same catalog, whatever the day)."""
    assert import_upstream(upstream).document == catalog.document


@pytest.mark.parametrize("region", ["us-east-1", "af-south-1", "cn-north-1", "eu-central-2", "mx-central-1"])
def test_region_accounts_imported(catalog: Catalog, region: str) -> None:
    assert region in catalog.dlc_accounts
    assert len(catalog.dlc_accounts[region]) == 12


def test_import_reports_data_fixes(upstream: Path) -> None:
    result = import_upstream(upstream)
    assert any("0.20.1-gpu-sagemaker.yml" in w and "platform" in w for w in result.warnings)
