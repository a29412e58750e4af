"""Build a catalog document from AWS's upstream release data.

The upstream layout (the ``aws/deep-learning-containers`` repository, or a mirror of it)::

    data/<family>/<version>-<accelerator>-<platform>.yml   one released image line
    legacy_support.yml                                      GA / EOP of older versions
    global.yml                                              display names, framework groups
    region_availability.md                                  ECR accounts per region
    SOURCE                                                  "<commit> <date>" (optional)

plus dlc-guard's overlay (``policy/data/overlay.yaml``): dependency end-of-support dates,
latest-only frameworks, advisories, registry facts the data does not carry.

This module reads no files: :func:`controller.upstream.read_upstream` parses the directory
into an :class:`Upstream`, and :func:`build_catalog` turns that into a catalog document. It is
used offline (``dlc-guard catalog import``) and by the catalog refresh, never in the admission
hot path. Each odd record it meets is kept (with the fix it applied) in the returned
``warnings`` rather than dropped silently.
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

__all__ = ["ImportError_", "ImportResult", "Upstream", "build_catalog", "load_overlay", "parse_region_tables"]


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


@dataclass(frozen=True, slots=True)
class Upstream:
    """The upstream data as parsed documents; :func:`controller.upstream.read_upstream` reads
    them from a directory in the upstream layout (this module reads no files)."""

    records: list[tuple[str, str, dict[str, Any]]]
    """``(where, directory, record)`` per ``data/<directory>/*.yml``, in path order."""
    region_tables: str
    """The text of ``region_availability.md`` (the ECR account tables)."""
    region_origin: str = "region_availability.md"
    global_doc: dict[str, Any] = field(default_factory=dict)
    """``global.yml``: display names and framework groups."""
    legacy: dict[str, Any] = field(default_factory=dict)
    """``legacy_support.yml``: dates of lines no longer released."""
    source: tuple[str, ...] = ()
    """``SOURCE``: the upstream commit and its date."""


def build_catalog(up: Upstream, overlay: dict[str, Any] | None = None) -> ImportResult:
    """The catalog document of the upstream data (not yet validated) and what looked wrong."""
    overlay = load_overlay() if overlay is None else overlay
    warnings: list[str] = []
    display = (up.global_doc.get("display_names") or {}).get("repositories") or {}
    dlc_accounts, algo_accounts = _accounts(up, overlay, warnings)
    families: dict[str, dict[str, Any]] = {}
    framework_lines: dict[str, dict[str, dict[str, Any]]] = {}
    names = _family_names(up.records)
    groups = _family_groups(up.global_doc.get("framework_groups") or {})
    algorithm_families = set(overlay.get("algorithm_registry") or [])
    for where, dir_name, raw in up.records:
        fam_name = names[(where, dir_name)]
        image, tagged_platform, token = _image(where, raw, warnings)
        fam = families.setdefault(
            fam_name,
            {
                "repository": str(raw.get("ecr_repository") or dir_name),
                "framework": str(raw["framework"]),
                "display": display.get(fam_name, fam_name),
                "group": groups.get(fam_name),
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
        if not tagged_platform:
            fam["_platforms_untagged"].append(image["platform"])
        ga, eop = _date(raw.get("ga"), f"{where}: ga"), _date(raw.get("eop"), f"{where}: eop")
        if ga or eop:
            line = parse_version(image["version"]).line
            _merge_line(fam["lines"].setdefault(line, {}), ga, eop)
            _merge_line(framework_lines.setdefault(fam["framework"], {}).setdefault(line, {}), ga, eop)
    _legacy_lines(up.legacy, display, framework_lines)
    for fam in families.values():
        untagged = fam.pop("_platforms_untagged")
        fam["default_platform"] = max(set(untagged), key=untagged.count) if untagged else "sagemaker"
    document = _document(up, overlay, dlc_accounts, algo_accounts, families, framework_lines)
    warnings += _retired_but_released(document)
    return ImportResult(document, warnings)


def _family_groups(groups_raw: dict[str, Any]) -> dict[str, str]:
    """global.yml's framework groups, by family (a group may nest sub-groups one level)."""
    family_group: dict[str, str] = {}
    for group, members in groups_raw.items():
        subs = members.values() if isinstance(members, dict) else [members]
        for sub in subs:
            for fam in sub or []:
                family_group[str(fam)] = str(group)
    return family_group


def _accounts(up: Upstream, overlay: dict[str, Any], warnings: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The ECR accounts by region: the upstream tables, plus the overlay's extra regions."""
    dlc_accounts, algo_accounts = parse_region_tables(up.region_tables)
    if not dlc_accounts:
        raise ImportError_(f"{up.region_origin}: no 'Deep Learning Containers' account table found")
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
    return dlc_accounts, algo_accounts


def _family_names(records: list[tuple[str, str, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    """One family per (data directory, ECR repository, framework): huggingface-tei serves tei
    and tei-cpu; data/base holds "Base Devel" and "Base Runtime"."""
    repos: dict[str, set[str]] = {}
    frameworks: dict[str, set[str]] = {}
    for _, dir_name, raw in records:
        repos.setdefault(dir_name, set()).add(str(raw.get("ecr_repository") or dir_name))
        frameworks.setdefault(dir_name, set()).add(str(raw.get("framework")))
    names = {}
    for where, dir_name, raw in records:
        repository = str(raw.get("ecr_repository") or dir_name)
        name = dir_name if len(repos[dir_name]) == 1 else f"{dir_name}/{repository}"
        if len(frameworks[dir_name]) > 1:
            name = f"{name}/{_slug(str(raw.get('framework')))}"
        names[(where, dir_name)] = name
    return names


def _image(where: str, raw: dict[str, Any], warnings: list[str]) -> tuple[dict[str, Any], bool, str | None]:
    """One release record as a catalog image; whether its first tag names its platform; the
    family's version token."""
    for key in ("framework", "version", "accelerator", "platform", "tags"):
        if key not in raw:
            raise ImportError_(f"{where}: missing field {key!r}")
    tags = [str(t) for t in raw["tags"] or []]
    if not tags:
        raise ImportError_(f"{where}: 'tags' is empty")
    version, token = _image_version(raw, tags[0], str(raw["framework"]))
    accelerator = str(raw["accelerator"])
    if accelerator not in ACCELERATORS:
        raise ImportError_(f"{where}: accelerator {accelerator!r} is not one of {sorted(ACCELERATORS)}")
    info = parse_tag(tags[0])
    platform = _platform(where, str(raw["platform"]), info.platform, warnings)
    builds = [parse_tag(t).build for t in tags]
    # "-v1" floats over every v1.x build; only "-v1.8" names one build
    precise = [b for b in builds if b is not None and (len(b) > 1 or len(tags) == 1)]
    image: dict[str, Any] = {
        "version": version,
        "accelerator": accelerator,
        "platform": platform,
        "python": _image_python(where, raw, tags, warnings),
        "cuda": raw.get("cuda"),
        "os": raw.get("os"),
        "build": ".".join(str(x) for x in max(precise)) if precise else None,
        "flavor": "-".join(info.words),
        "extras": {k: v for k, v in info.extras.items() if k != token},
        "tags": tags,
    }
    return {k: v for k, v in image.items() if v not in (None, {}, "")}, info.platform is not None, token


def _platform(where: str, platform: str, tag_platform: str | None, warnings: list[str]) -> str:
    if platform == "default":
        platform = "ec2"
    if tag_platform is not None and tag_platform != platform:
        warnings.append(f"{where}: platform {platform!r} but its first tag says {tag_platform!r}; using the tag's")
        platform = tag_platform
    if platform not in ("ec2", "sagemaker"):
        raise ImportError_(f"{where}: platform {platform!r} is not ec2, sagemaker or default")
    return platform


def _image_python(where: str, raw: dict[str, Any], tags: list[str], warnings: list[str]) -> str | None:
    python = _python(raw.get("python"))
    if python is None:
        python = _python_from_tags(tags)
        if python is None and raw.get("python"):
            warnings.append(f"{where}: python {raw.get('python')!r} not understood; left out")
    if "-py" in str(raw["version"]):
        python = _python(str(raw["version"]).rsplit("-", 1)[1]) or python
    return python


def _legacy_lines(legacy: dict[str, Any], display: dict[str, Any], lines: dict[str, dict[str, Any]]) -> None:
    for key, rows in legacy.items():
        framework = str(display.get(key, key))
        for i, row in enumerate(rows or []):
            where = f"legacy_support.yml: {key}[{i}]"
            if not isinstance(row, dict) or "version" not in row:
                raise ImportError_(f"{where}: expected a mapping with 'version', 'ga', 'eop'")
            line = parse_version(str(row["version"])).line
            slot = lines.setdefault(framework, {}).setdefault(line, {})
            _merge_line(slot, _date(row.get("ga"), f"{where}.ga"), _date(row.get("eop"), f"{where}.eop"))


def _document(
    up: Upstream,
    overlay: dict[str, Any],
    dlc_accounts: dict[str, str],
    algo_accounts: dict[str, str],
    families: dict[str, dict[str, Any]],
    framework_lines: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    latest_only = set(overlay.get("latest_only") or [])
    frameworks = {
        name: {"latest_only": name in latest_only, "lines": framework_lines.get(name, {})}
        for name in sorted({f["framework"] for f in families.values()} | set(framework_lines))
    }
    return {
        "schema": SCHEMA,
        "source": {
            "kind": "upstream",
            "location": "aws/deep-learning-containers",
            "commit": up.source[0] if up.source else None,
            "date": up.source[1] if len(up.source) > 1 else None,
        },
        "registries": {
            "dlc": dlc_accounts,
            "algorithms": algo_accounts,
            "public": ["public.ecr.aws/deep-learning-containers"],
            "fixed_accounts": {str(k): list(v) for k, v in (overlay.get("fixed_accounts") or {}).items()},
        },
        "dependencies": overlay.get("dependencies") or {},
        "frameworks": frameworks,
        "families": dict(sorted(families.items())),
        "advisories": overlay.get("advisories") or [],
        "retired": overlay.get("retired") or [],
    }


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
