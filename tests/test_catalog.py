from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from controller.upstream import import_upstream
from policy.catalog import CatalogError, load_catalog, load_catalog_file
from policy.catalog.importer import ImportError_, parse_region_tables

from .helpers import mini_catalog_doc


def problems(doc: Any) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(doc)
    return info.value.problems


def test_minimal_catalog_loads() -> None:
    cat = load_catalog(mini_catalog_doc())
    assert "pytorch-training" in cat.by_repository
    fam = cat.families["pytorch-training"]
    assert [str(i.version) for i in fam.images] == sorted(
        (str(i.version) for i in fam.images), key=lambda v: tuple(map(int, v.split(".")))
    )


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(schema="v0"), "schema: expected 'dlc-guard.io/catalog/v1'"),
        (
            lambda d: d["registries"]["dlc"].update({"us-west-2": "12345"}),
            "registries.dlc.us-west-2: account must be 12 digits",
        ),
        (
            lambda d: d["registries"]["dlc"].update({"mars-1": "763104351884"}),
            "registries.dlc.mars-1: not an AWS region",
        ),
        (
            lambda d: d["dependencies"]["python"].update({"3.10": "2026-13-01"}),
            "dependencies.python.3.10: '2026-13-01' is not a date",
        ),
        (
            lambda d: d["families"]["pytorch-training"]["lines"].update(
                {"2.9": {"ga": "2026-01-01", "eop": "2025-01-01"}}
            ),
            "families.pytorch-training.lines.2.9.eop: end of patch 2025-01-01 is before GA 2026-01-01",
        ),
        (
            lambda d: d["families"]["pytorch-training"]["images"][0].update(accelerator="tpu"),
            "families.pytorch-training.images[0].accelerator: 'tpu' is not one of",
        ),
        (
            lambda d: d["families"]["pytorch-training"]["images"][0].update(version="two"),
            "families.pytorch-training.images[0].version: 'two' is not a version",
        ),
        (
            lambda d: d["families"]["pytorch-training"]["images"][0].update(tags=[]),
            "families.pytorch-training.images[0].tags: an image needs at least one tag",
        ),
        (
            lambda d: d["families"]["pytorch-training"]["images"][0].update(tags=["-bad"]),
            "families.pytorch-training.images[0].tags[0]: '-bad' is not a valid tag",
        ),
        (lambda d: d["families"]["pytorch-training"].update(repository="Bad Repo"), "is not a valid repository name"),
        (
            lambda d: d["families"]["pytorch-training"].pop("framework"),
            "families.pytorch-training.framework: is required",
        ),
        (
            lambda d: d["advisories"].append(
                {"id": "x", "code": "X", "message": "m", "verdict": "bad", "match": {"tags": ["a"]}}
            ),
            "advisories[2].verdict: 'bad' is not one of",
        ),
        (
            lambda d: d["advisories"].append({"id": "x", "code": "X", "message": "m", "match": {"colour": "red"}}),
            "advisories[2].match.colour: unknown field",
        ),
        (lambda d: d["registries"].update(fixed_accounts={"007439368137": ["nope"]}), "names unknown family 'nope'"),
    ],
)
def test_validation_names_the_field(mutate: Any, needle: str) -> None:
    doc = mini_catalog_doc()
    mutate(doc)
    found = problems(doc)
    assert any(needle in p for p in found), found


def test_all_problems_reported_at_once() -> None:
    doc = mini_catalog_doc()
    doc["schema"] = "nope"
    doc["registries"]["dlc"]["us-west-2"] = "x"
    assert len(problems(doc)) >= 2


@pytest.mark.parametrize("doc", [None, [], "text", {}])
def test_not_a_catalog(doc: Any) -> None:
    assert problems(doc)


def test_load_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json: [")
    with pytest.raises(CatalogError, match="neither JSON"):
        load_catalog_file(bad)
    good = tmp_path / "good.yaml"
    good.write_text(json.dumps(mini_catalog_doc()))
    assert load_catalog_file(good).families


def test_region_tables() -> None:
    text = (
        "## Deep Learning Containers\n| a | us-east-1 | 763104351884 |\n"
        "## SageMaker Algorithm Registry\n| b | us-east-1 | 683313688378 |\n"
    )
    assert parse_region_tables(text) == ({"us-east-1": "763104351884"}, {"us-east-1": "683313688378"})


def test_importer_rejects_broken_upstream(tmp_path: Path, upstream: Path) -> None:
    with pytest.raises(ImportError_, match="no data/ directory"):
        import_upstream(tmp_path)
    (tmp_path / "data" / "pytorch-training").mkdir(parents=True)
    (tmp_path / "region_availability.md").write_text((upstream / "region_availability.md").read_text())
    (tmp_path / "data" / "pytorch-training" / "x.yml").write_text("framework: PyTorch\nversion: '2.9'\n")
    with pytest.raises(ImportError_, match=r"x.yml: missing field 'accelerator'"):
        import_upstream(tmp_path)
    (tmp_path / "data" / "pytorch-training" / "x.yml").write_text("framework: [unclosed\n")
    with pytest.raises(ImportError_, match="not valid YAML"):
        import_upstream(tmp_path)


def test_importer_picks_up_new_data(tmp_path: Path, upstream: Path) -> None:
    """A refresh sees a new version and a moved EOP date."""
    import shutil

    copy_dir = tmp_path / "upstream"
    shutil.copytree(upstream, copy_dir)
    src = copy_dir / "data" / "pytorch-training" / "2.10-gpu-ec2.yml"
    text = (
        src.read_text().replace("2.10", "2.14").replace("2027-01-21", "2027-12-01").replace("2026-01-21", "2026-12-01")
    )
    (copy_dir / "data" / "pytorch-training" / "2.14-gpu-ec2.yml").write_text(text)
    cat = load_catalog(import_upstream(copy_dir).document)
    line = cat.families["pytorch-training"].lines["2.14"]
    assert str(line.eop) == "2027-12-01"
    before = load_catalog(import_upstream(upstream).document)
    assert "2.14" not in before.families["pytorch-training"].lines
    assert (
        copy.deepcopy(before.families["pytorch-training"].lines["2.10"])
        == cat.families["pytorch-training"].lines["2.10"]
    )
