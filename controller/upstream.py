"""Reading AWS's upstream release data from a directory (the shell side of the importer).

:func:`read_upstream` parses the files of the upstream layout into a
:class:`policy.catalog.importer.Upstream`; the pure core builds the catalog from it.
:func:`import_upstream` does both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policy.catalog.importer import ImportError_, ImportResult, Upstream, build_catalog

__all__ = ["import_upstream", "read_upstream"]


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ImportError_(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ImportError_(f"{path}: cannot read: {exc.strerror}") from exc


def read_upstream(upstream: Path) -> Upstream:
    """Every file the importer needs, parsed; a missing or malformed one is named."""
    upstream = Path(upstream)
    data_dir = upstream / "data"
    if not data_dir.is_dir():
        raise ImportError_(f"{upstream}: no data/ directory (is this the upstream layout?)")
    region_md = upstream / "region_availability.md"
    if not region_md.exists():
        raise ImportError_(f"{region_md}: missing (the ECR account tables come from it)")
    records = []
    for path in sorted(data_dir.glob("*/*.yml")):
        raw = _yaml(path)
        where = f"{path.relative_to(upstream)}"
        if not isinstance(raw, dict):
            raise ImportError_(f"{where}: expected a mapping")
        records.append((where, path.parent.name, raw))
    if not records:
        raise ImportError_(f"{data_dir}: no <family>/*.yml records")
    glob = _yaml(upstream / "global.yml") if (upstream / "global.yml").exists() else None
    legacy = _yaml(upstream / "legacy_support.yml") if (upstream / "legacy_support.yml").exists() else None
    source = (upstream / "SOURCE").read_text().split() if (upstream / "SOURCE").exists() else []
    return Upstream(
        records,
        region_md.read_text(encoding="utf-8"),
        str(region_md),
        glob if isinstance(glob, dict) else {},
        legacy if isinstance(legacy, dict) else {},
        tuple(source),
    )


def import_upstream(upstream: Path, overlay: dict[str, Any] | None = None) -> ImportResult:
    """The catalog document of an upstream directory (not yet validated), and its warnings."""
    return build_catalog(read_upstream(upstream), overlay)
