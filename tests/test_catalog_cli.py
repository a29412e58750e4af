"""``dlc-guard catalog info|show|import|diff``."""

from __future__ import annotations

import io
import json
from pathlib import Path

from controller.cli.main import main
from policy.catalog import default_catalog


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["catalog", *argv], io.StringIO(), out, err)
    return code, out.getvalue(), err.getvalue()


def test_info_reports_source_age_and_size() -> None:
    code, out, _ = run("info", "--as-of", "2026-11-23", "-o", "json")
    assert code == 0
    info = json.loads(out)
    cat = default_catalog()
    assert info["source"]["commit"] == cat.source["commit"]
    assert info["age_days"] == cat.age_days(__import__("datetime").date(2026, 11, 23))
    assert info["families"] == len(cat.families) and info["images"] > 100
    code, text, _ = run("info", "--as-of", "2026-11-23")
    assert f"age {info['age_days']} days" in text


def test_show_framework_line_and_repository() -> None:
    code, out, _ = run("show", "PyTorch 2.6", "-o", "json")
    doc = json.loads(out)
    assert code == 0
    assert doc["framework"]["lines"] == {"2.6": {"ga": "2025-01-29", "eop": "2026-06-30"}}
    assert any(f["repository"] == "pytorch-training" for f in doc["families"])
    assert all(i["version"].startswith("2.6") for f in doc["families"] for i in f["images"])
    code, out, _ = run("show", "pytorch-training")
    assert code == 0 and "pytorch-training" in out and "2.10" in out
    code, _, err = run("show", "no-such-thing")
    assert code == 1 and "nothing in the catalog" in err


def test_import_then_diff_finds_a_moved_eop(upstream: Path, tmp_path: Path) -> None:
    built = tmp_path / "catalog.json"
    code, _, err = run("import", str(upstream), "--out", str(built))
    assert code == 0 and "families" in err
    code, out, _ = run("diff", "embedded", str(built))
    assert code == 0 and out.strip().endswith("0 changes")
    doc = json.loads(built.read_text())
    doc["frameworks"]["PyTorch"]["lines"]["2.10"]["eop"] = "2027-06-30"
    fam = doc["families"]["pytorch-training"]
    fam["images"] = fam["images"][1:]
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    code, out, _ = run("diff", str(built), str(changed), "-o", "json")
    changes = json.loads(out)
    assert {"kind": "eop-moved", "subject": "PyTorch 2.10", "old": "2027-01-21", "new": "2027-06-30"} in changes
    assert any(c["kind"] == "images-removed" and c["subject"] == "pytorch-training" for c in changes)


def test_import_rejects_a_directory_that_is_not_upstream(tmp_path: Path) -> None:
    code, _, err = run("import", str(tmp_path))
    assert code == 2 and "no data/ directory" in err
    code, _, err = run("diff", "embedded", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
