"""Build a catalog document from AWS's upstream release data.

The upstream layout (the ``aws/deep-learning-containers`` repository, or a mirror of it)::

    data/<family>/<version>-<accelerator>-<platform>.yml   one released image line
    legacy_support.yml                                      GA / EOP of older versions
    global.yml                                              display names, framework groups
    region_availability.md                                  ECR accounts per region
    SOURCE                                                  "<commit> <date>" (optional)

plus dlc-guard's overlay (``policy/data/overlay.yaml``): dependency end-of-support dates,
latest-only frameworks, advisories, registry facts the data does not carry.

The importer reads files; it is used offline (``dlc-guard catalog import``) and by the
operator's catalog refresh, never in the admission hot path. Each odd record it meets is
kept (with the fix it applied) in the returned ``warnings`` rather than dropped silently.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from policy.catalog.model import ACCELERATORS, SCHEMA
from policy.tags import parse_tag
from policy.version import InvalidVersion, parse_version

__all__ = ["ImportError_", "ImportResult", "import_upstream", "load_overlay"]


class ImportError_(ValueError):
    """The upstream directory cannot be imported; the message names the file and field."""


@dataclass
class ImportResult:
    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def load_overlay(path: Path | None = None) -> dict[str, Any]:
    if path is None:
        text = resources.files("policy").joinpath("data/overlay.yaml").read_text(encoding="utf-8")
        origin = "policy/data/overlay.yaml"
    else:
        text = path.read_text(encoding="utf-8")
        origin = str(path)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ImportError_(f"{origin}: expected a mapping at the top level")
    return data


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ImportError_(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ImportError_(f"{path}: cannot read: {exc.strerror}") from exc


_TABLE_ROW = re.compile(r"^\|\s*(?P<name>[^|]+?)\s*\|\s*(?P<code>[a-z]{2}(?:-[a-z]+)+-\d)\s*\|\s*(?P<acct>\d{12})\s*\|")


def parse_region_tables(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The two account tables of ``region_availability.md``: DLC and SageMaker algorithms."""
    dlc: dict[str, str] = {}
    algorithms: dict[str, str] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lower()
            if "algorithm" in heading:
                current = algorithms
            elif "deep learning containers" in heading:
                current = dlc
            else:
                current = None
            continue
        m = _TABLE_ROW.match(line)
        if m and current is not None:
            current[m.group("code")] = m.group("acct")
    return dlc, algorithms


def _date(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError as exc:
        raise ImportError_(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from exc


def _python(value: Any) -> str | None:
    if value is None:
        return None
    m = re.match(r"^py(\d)(\d*)$", str(value))
    if not m:
        return None
    return m.group(1) + ("." + m.group(2) if m.group(2) else "")


def _image_version(raw: dict[str, Any], first_tag: str, framework: str) -> tuple[str, str | None]:
    """The most precise version of one upstream record, and the token that carries it.

    The data names the support line (``2.9``) while the first tag carries the patch
    (``2.9.0-gpu-…``); TEI images name their wrapper first (``2.0.1-tei1.9.3-…``).
    """
    data_version = str(raw["version"])
    info = parse_tag(first_tag)
    token = framework.lower().replace(".", "").replace("-", "")
    if token in info.extras and info.extras[token].startswith(data_version.split("+")[0].split("-")[0]):
        return info.extras[token], token
    try:
        data_v = parse_version(data_version)
    except InvalidVersion:
        # "1.4-2-py312": a version followed by a variant
        data_v = parse_version(data_version.split("-py")[0])
        data_version = data_v.text
    tag_v = info.version
    if (
        tag_v is not None
        and tag_v.release[: len(data_v.release)] == data_v.release
        and len(tag_v.release) > len(data_v.release)
    ):
        return tag_v.text, None
    return data_version, None


def import_upstream(upstream: Path, overlay: dict[str, Any] | None = None) -> ImportResult:
    """Read an upstream data directory and return a catalog document (not yet validated)."""
    upstream = Path(upstream)
    data_dir = upstream / "data"
    if not data_dir.is_dir():
        raise ImportError_(f"{upstream}: no data/ directory (is this the upstream layout?)")
    overlay = load_overlay() if overlay is None else overlay
    warnings: list[str] = []

    glob = _yaml(upstream / "global.yml") if (upstream / "global.yml").exists() else {}
    display = ((glob or {}).get("display_names") or {}).get("repositories") or {}
    groups_raw = (glob or {}).get("framework_groups") or {}

    family_group: dict[str, str] = {}
    for group, members in groups_raw.items():
        if isinstance(members, dict):
            for sub in members.values():
                for fam in sub or []:
                    family_group[str(fam)] = str(group)
        else:
            for fam in members or []:
                family_group[str(fam)] = str(group)

    region_md = upstream / "region_availability.md"
    if not region_md.exists():
        raise ImportError_(f"{region_md}: missing (the ECR account tables come from it)")
    dlc_accounts, algo_accounts = parse_region_tables(region_md.read_text(encoding="utf-8"))
    if not dlc_accounts:
        raise ImportError_(f"{region_md}: no 'Deep Learning Containers' account table found")
    extra = overlay.get("extra_regions") or {}
    for kind, table in (("dlc", dlc_accounts), ("algorithms", algo_accounts)):
        for region, account in (extra.get(kind) or {}).items():
            region, account = str(region), str(account)
            if region not in table:
                table[region] = account
            elif table[region] != account:
                warnings.append(
                    f"overlay: extra_regions.{kind}.{region} is {account}, the region table says {table[region]}; "
                    "using the table's"
                )

    algorithm_families = set(overlay.get("algorithm_registry") or [])
    latest_only = set(overlay.get("latest_only") or [])
    families: dict[str, dict[str, Any]] = {}
    framework_lines: dict[str, dict[str, dict[str, Any]]] = {}

    records: list[tuple[Path, str, dict[str, Any]]] = []
    repos_of_dir: dict[str, set[str]] = {}
    frameworks_of_dir: dict[str, set[str]] = {}
    for path in sorted(data_dir.glob("*/*.yml")):
        raw = _yaml(path)
        where = f"{path.relative_to(upstream)}"
        if not isinstance(raw, dict):
            raise ImportError_(f"{where}: expected a mapping")
        records.append((path, where, raw))
        repos_of_dir.setdefault(path.parent.name, set()).add(str(raw.get("ecr_repository") or path.parent.name))
        frameworks_of_dir.setdefault(path.parent.name, set()).add(str(raw.get("framework")))
    if not records:
        raise ImportError_(f"{data_dir}: no <family>/*.yml records")

    for path, where, raw in records:
        dir_name = path.parent.name
        repository = str(raw.get("ecr_repository") or dir_name)
        # one family per (data directory, ECR repository): huggingface-tei serves tei and tei-cpu
        fam_name = dir_name if len(repos_of_dir[dir_name]) == 1 else f"{dir_name}/{repository}"
        if len(frameworks_of_dir[dir_name]) > 1:
            # data/base holds "Base Devel" and "Base Runtime": one family each
            fam_name = f"{fam_name}/{_slug(str(raw.get('framework')))}"
        for key in ("framework", "version", "accelerator", "platform", "tags"):
            if key not in raw:
                raise ImportError_(f"{where}: missing field {key!r}")
        tags = [str(t) for t in raw["tags"] or []]
        if not tags:
            raise ImportError_(f"{where}: 'tags' is empty")
        framework = str(raw["framework"])
        version, token = _image_version(raw, tags[0], framework)
        accelerator = str(raw["accelerator"])
        if accelerator not in ACCELERATORS:
            raise ImportError_(f"{where}: accelerator {accelerator!r} is not one of {sorted(ACCELERATORS)}")
        platform = str(raw["platform"])
        if platform == "default":
            platform = "ec2"
        tag_platform = parse_tag(tags[0]).platform
        if tag_platform is not None and tag_platform != platform:
            warnings.append(f"{where}: platform {platform!r} but its first tag says {tag_platform!r}; using the tag's")
            platform = tag_platform
        if platform not in ("ec2", "sagemaker"):
            raise ImportError_(f"{where}: platform {platform!r} is not ec2, sagemaker or default")

        info = parse_tag(tags[0])
        build = None
        builds = [parse_tag(t).build for t in tags]
        # "-v1" floats over every v1.x build; only "-v1.8" names one build
        precise = [b for b in builds if b is not None and (len(b) > 1 or len(tags) == 1)]
        if precise:
            build = ".".join(str(x) for x in max(precise))
        extras = {k: v for k, v in info.extras.items() if k != token}
        flavor = "-".join(info.words)
        python = _python(raw.get("python"))
        if python is None:
            python = _python_from_tags(tags)
            if python is None and raw.get("python"):
                warnings.append(f"{where}: python {raw.get('python')!r} not understood; left out")
        if "-py" in str(raw["version"]):
            python = _python(str(raw["version"]).rsplit("-", 1)[1]) or python
        image: dict[str, Any] = {
            "version": version,
            "accelerator": accelerator,
            "platform": platform,
            "python": python,
            "cuda": raw.get("cuda"),
            "os": raw.get("os"),
            "build": build,
            "flavor": flavor,
            "extras": extras,
            "tags": tags,
        }
        image = {k: v for k, v in image.items() if v not in (None, {}, "")}
        fam = families.setdefault(
            fam_name,
            {
                "repository": repository,
                "framework": framework,
                "display": display.get(fam_name, fam_name),
                "group": family_group.get(fam_name),
                "registry": "algorithms" if dir_name in algorithm_families else "dlc",
                "public": bool(raw.get("public_registry", False)),
                "lines": {},
                "images": [],
                "_platforms_untagged": [],
            },
        )
        if token:
            fam["version_token"] = token
        fam["public"] = fam["public"] or bool(raw.get("public_registry", False))
        fam["images"].append(image)
        if tag_platform is None:
            fam["_platforms_untagged"].append(platform)
        ga = _date(raw.get("ga"), f"{where}: ga")
        eop = _date(raw.get("eop"), f"{where}: eop")
        if ga or eop:
            line = parse_version(version).line
            slot = fam["lines"].setdefault(line, {})
            _merge_line(slot, ga, eop)
            fw_slot = framework_lines.setdefault(framework, {}).setdefault(line, {})
            _merge_line(fw_slot, ga, eop)

    legacy_path = upstream / "legacy_support.yml"
    if legacy_path.exists():
        legacy = _yaml(legacy_path) or {}
        for key, rows in legacy.items():
            framework = str(display.get(key, key))
            for i, row in enumerate(rows or []):
                where = f"legacy_support.yml: {key}[{i}]"
                if not isinstance(row, dict) or "version" not in row:
                    raise ImportError_(f"{where}: expected a mapping with 'version', 'ga', 'eop'")
                line = parse_version(str(row["version"])).line
                slot = framework_lines.setdefault(framework, {}).setdefault(line, {})
                _merge_line(slot, _date(row.get("ga"), f"{where}.ga"), _date(row.get("eop"), f"{where}.eop"))

    for fam in families.values():
        untagged = fam.pop("_platforms_untagged")
        fam["default_platform"] = max(set(untagged), key=untagged.count) if untagged else "sagemaker"

    fixed_accounts = {str(k): list(v) for k, v in (overlay.get("fixed_accounts") or {}).items()}
    source_text = (upstream / "SOURCE").read_text().split() if (upstream / "SOURCE").exists() else []
    frameworks = {
        name: {"latest_only": name in latest_only, "lines": framework_lines.get(name, {})}
        for name in sorted({f["framework"] for f in families.values()} | set(framework_lines))
    }
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "source": {
            "kind": "upstream",
            "location": "aws/deep-learning-containers",
            "commit": source_text[0] if source_text else None,
            "date": source_text[1] if len(source_text) > 1 else None,
        },
        "registries": {
            "dlc": dlc_accounts,
            "algorithms": algo_accounts,
            "public": ["public.ecr.aws/deep-learning-containers"],
            "fixed_accounts": fixed_accounts,
        },
        "dependencies": overlay.get("dependencies") or {},
        "frameworks": frameworks,
        "families": dict(sorted(families.items())),
        "advisories": overlay.get("advisories") or [],
        "retired": overlay.get("retired") or [],
    }
    warnings += _retired_but_released(document)
    return ImportResult(document, warnings)


def _retired_but_released(document: dict[str, Any]) -> list[str]:
    """Retired repositories whose release data now has a line newer than the retirement's."""
    out = []
    for entry in document["retired"]:
        last = entry.get("last_line") if isinstance(entry, dict) else None
        if last is None:
            continue
        for fam in document["families"].values():
            if fam["repository"] != entry.get("repository"):
                continue
            newer = sorted(
                {parse_version(i["version"]).line for i in fam["images"]} - {x for x in (str(last),)},
                key=lambda line: parse_version(line),
            )
            newer = [n for n in newer if parse_version(n) > parse_version(str(last))]
            if newer:
                out.append(
                    f"overlay: retired repository {entry['repository']} (last line {last}) has newer lines "
                    f"{', '.join(newer)} in the release data: they are judged as usual; review the entry"
                )
    return out


def _python_from_tags(tags: list[str]) -> str | None:
    for tag in tags:
        py = parse_tag(tag).python
        if py is not None:
            return py
    return None


def _merge_line(slot: dict[str, Any], ga: str | None, eop: str | None) -> None:
    """Lines of one family share dates; where records differ, keep the widest span."""
    if ga and (slot.get("ga") is None or ga < slot["ga"]):
        slot["ga"] = ga
    if eop and (slot.get("eop") is None or eop > slot["eop"]):
        slot["eop"] = eop


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
