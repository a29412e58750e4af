"""The catalog: dlc-guard's own schema, its validation and its in-memory indexes.

A catalog document is JSON (or YAML) of this shape (``schema: dlc-guard.io/catalog/v1``)::

    source:        {kind, location, commit, date}   (the upstream data's commit and its date)
    registries:    {dlc: {region: account}, algorithms: {region: account},
                    public: [host/namespace], fixed_accounts: {account: [family]}}
    dependencies:  {python: {"3.10": date}, os: {"ubuntu22.04": date}}
    frameworks:    {name: {latest_only: bool, lines: {"2.9": Line}}}
    families:      {name: {repository, framework, registry, public, default_platform,
                           version_token, group, lines: {"2.9": Line}, images: [Image]}}
    advisories:    [{id, code, message, verdict?, recommend_tag?, match: {...}}]
    retired:       [{repository, framework, reason, source, last_eop?, last_line?, successor?}]

    Line:   {ga: date|null, eop: date|null, upstream_eol: date|null}
    Image:  {version, accelerator, platform, python, cuda, os, build, extras, tags}

A *family* is one image line of one ECR repository as the upstream data names it
(``vllm-server`` and ``vllm-omni`` both live in the ``vllm`` repository).
:func:`load_catalog` checks every field and reports every problem with its path.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.tags import parse_tag
from policy.version import InvalidVersion, Version, parse_version

__all__ = [
    "SCHEMA",
    "Advisory",
    "Catalog",
    "CatalogError",
    "Family",
    "Framework",
    "Image",
    "Line",
    "Retired",
    "load_catalog",
]

SCHEMA = "dlc-guard.io/catalog/v1"
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_LINE_RE = re.compile(r"^(?:b?\d+)(?:\.\d+)?$")
ACCELERATORS = frozenset({"cpu", "gpu", "neuronx", "neuron"})
PLATFORMS = frozenset({"ec2", "sagemaker"})
VERDICT_LEVELS = ("unsupported", "unknown", "outdated", "expiring", "supported")


class CatalogError(ValueError):
    """A catalog that cannot be used. ``problems`` lists each one as ``path: message``."""

    def __init__(self, problems: list[str], origin: str = "catalog") -> None:
        self.problems = problems
        self.origin = origin
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{origin} is not a valid dlc-guard catalog:\n  {shown}{more}")


@dataclass(frozen=True, slots=True)
class Line:
    ga: dt.date | None
    eop: dt.date | None
    upstream_eol: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Image:
    family: str
    version: Version
    accelerator: str
    platform: str
    python: str | None
    cuda: str | None
    os: str | None
    build: tuple[int, ...] | None
    extras: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]
    flavor: str = ""
    line: str = field(init=False, compare=False)
    variant: tuple[str, str, str, tuple[str, ...]] = field(init=False, compare=False)
    """Images of one variant replace each other: same accelerator, platform, flavour
    (``devel``/``runtime``, ``server``…) and components (``lmi``/``tensorrtllm``…)."""
    order: tuple[Any, ...] = field(init=False, compare=False)
    """Newer images sort later: version, then component versions, then build."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "line", self.version.line)
        object.__setattr__(
            self, "variant", (self.accelerator, self.platform, self.flavor, tuple(k for k, _ in self.extras))
        )
        object.__setattr__(self, "order", (self.version.key, tuple(_num(v) for _, v in self.extras), self.build or ()))

    @property
    def tag(self) -> str:
        """The most specific tag (the upstream data lists it first)."""
        return self.tags[0]


def _num(text: str) -> tuple[int, ...]:
    try:
        return parse_version(text).release
    except InvalidVersion:
        return ()


@dataclass(frozen=True, slots=True)
class Framework:
    name: str
    latest_only: bool
    lines: Mapping[str, Line]


@dataclass(slots=True)
class Family:
    name: str
    repository: str
    framework: str
    registry: str
    public: bool
    default_platform: str
    version_token: str | None
    lines: dict[str, Line]
    images: list[Image]
    latest_only: bool = False
    group: str | None = None
    """The framework group whose support rows the family shares (upstream ``framework_groups``:
    pytorch-training and pytorch-inference…); the framework table is theirs. A family in no
    group and with no dates of its own (Neuron, Hugging Face…) only borrows the table."""
    by_tag: dict[str, Image] = field(default_factory=dict)
    by_stem: dict[str, list[tuple[tuple[int, ...], Image]]] = field(default_factory=dict)
    """Release stem -> its (build, image) pairs, oldest first."""


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    code: str
    message: str
    verdict: str | None
    recommend_tag: str | None
    frameworks: frozenset[str] | None
    families: frozenset[str] | None
    os_prefix: str | None
    min_line: Version | None
    max_line: Version | None
    tags: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Retired:
    """A DLC repository AWS no longer builds: its images are unsupported (after ``last_eop``,
    the last end of patch AWS published for it, when there is one)."""

    repository: str
    framework: str
    reason: str
    source: str
    last_eop: dt.date | None = None
    last_line: Version | None = None
    """The newest line the retirement covers (``None``: all); a newer line is judged as usual."""
    successor: str | None = None
    """A repository of the catalog that replaces it (the recommendation), if any."""


@dataclass(slots=True)
class Catalog:
    source: dict[str, Any]
    dlc_accounts: dict[str, str]
    algorithm_accounts: dict[str, str]
    public_prefixes: tuple[str, ...]
    fixed_accounts: dict[str, frozenset[str]]
    python_eos: dict[str, dt.date]
    os_eos: dict[str, dt.date]
    frameworks: dict[str, Framework]
    families: dict[str, Family]
    advisories: tuple[Advisory, ...]
    document: dict[str, Any]
    retired: dict[str, Retired] = field(default_factory=dict)
    """Retired repositories by name."""
    by_repository: dict[str, list[Family]] = field(default_factory=dict)
    accounts: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def age_days(self, today: dt.date) -> int | None:
        date = self.source.get("date")
        if not date:
            return None
        try:
            return (today - dt.date.fromisoformat(str(date))).days
        except ValueError:
            return None

    def repositories(self) -> list[str]:
        return sorted(self.by_repository)


# ---------------------------------------------------------------- validation helpers


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, required: bool = True) -> dict[str, Any]:
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {_kind(value)}")
            return {}
        return value

    def seq(self, value: Any, path: str, required: bool = True) -> list[Any]:
        if value is None and not required:
            return []
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {_kind(value)}")
            return []
        return value

    def string(self, value: Any, path: str, required: bool = True) -> str | None:
        if value is None:
            if required:
                self.fail(path, "is required")
            return None
        if not isinstance(value, str) or not value:
            self.fail(path, f"expected a non-empty string, got {_kind(value)}")
            return None
        return value

    def date(self, value: Any, path: str) -> dt.date | None:
        if value is None:
            return None
        if isinstance(value, dt.date):
            return value
        if not isinstance(value, str):
            self.fail(path, f"expected a date YYYY-MM-DD, got {_kind(value)}")
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(path, f"{value!r} is not a date (YYYY-MM-DD)")
            return None

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {_kind(value)}")
            return default
        return value

    def version(self, value: Any, path: str) -> Version | None:
        text = self.string(value, path)
        if text is None:
            return None
        try:
            return parse_version(text)
        except InvalidVersion as exc:
            self.fail(path, str(exc))
            return None

    def line(self, value: Any, path: str) -> Line | None:
        m = self.mapping(value, path)
        for key in m:
            if key not in ("ga", "eop", "upstream_eol", "source"):
                self.fail(f"{path}.{key}", "unknown field")
        ga = self.date(m.get("ga"), f"{path}.ga")
        eop = self.date(m.get("eop"), f"{path}.eop")
        upstream = self.date(m.get("upstream_eol"), f"{path}.upstream_eol")
        if ga and eop and eop < ga:
            self.fail(f"{path}.eop", f"end of patch {eop} is before GA {ga}")
        return Line(ga, eop, upstream)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _lines(c: _Checker, value: Any, path: str) -> dict[str, Line]:
    out: dict[str, Line] = {}
    for key, raw in c.mapping(value, path, required=False).items():
        if not isinstance(key, str) or not _LINE_RE.match(key):
            c.fail(f"{path}.{key}", "line must be MAJOR.MINOR, e.g. '2.9'")
            continue
        line = c.line(raw, f"{path}.{key}")
        if line is not None:
            out[key] = line
    return out


def _accounts(c: _Checker, value: Any, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for region, account in c.mapping(value, path).items():
        if not _REGION_RE.match(str(region)):
            c.fail(f"{path}.{region}", "not an AWS region code (e.g. us-west-2)")
        elif not isinstance(account, str) or not _ACCOUNT_RE.match(account):
            c.fail(f"{path}.{region}", f"account must be 12 digits, got {account!r}")
        else:
            out[region] = account
    return out


def _image(c: _Checker, family: str, raw: Any, path: str) -> Image | None:
    m = c.mapping(raw, path)
    if not m:
        return None
    known = {"version", "accelerator", "platform", "python", "cuda", "os", "build", "flavor", "extras", "tags"}
    for key in m:
        if key not in known:
            c.fail(f"{path}.{key}", "unknown field")
    version = c.version(m.get("version"), f"{path}.version")
    accelerator = c.string(m.get("accelerator"), f"{path}.accelerator")
    if accelerator is not None and accelerator not in ACCELERATORS:
        c.fail(f"{path}.accelerator", f"{accelerator!r} is not one of {sorted(ACCELERATORS)}")
    platform = c.string(m.get("platform"), f"{path}.platform")
    if platform is not None and platform not in PLATFORMS:
        c.fail(f"{path}.platform", f"{platform!r} is not one of {sorted(PLATFORMS)}")
    python = c.string(m.get("python"), f"{path}.python", required=False)
    if python is not None and not re.match(r"^\d(\.\d+)?$", python):
        c.fail(f"{path}.python", f"{python!r} is not a Python version such as '3.12'")
    cuda = c.string(m.get("cuda"), f"{path}.cuda", required=False)
    os_ = c.string(m.get("os"), f"{path}.os", required=False)
    build = _build(c, m.get("build"), f"{path}.build")
    extras_raw = c.mapping(m.get("extras"), f"{path}.extras", required=False)
    extras = tuple(sorted((str(k), str(v)) for k, v in extras_raw.items()))
    clean_tags = _tags(c, m.get("tags"), f"{path}.tags")
    if version is None or accelerator is None or platform is None or not clean_tags:
        return None
    flavor = c.string(m.get("flavor"), f"{path}.flavor", required=False) or ""
    return Image(family, version, accelerator, platform, python, cuda, os_, build, extras, tuple(clean_tags), flavor)


def _build(c: _Checker, raw: Any, path: str) -> tuple[int, ...] | None:
    text = c.string(raw, path, required=False)
    if text is None:
        return None
    if re.match(r"^\d+(\.\d+)*$", text):
        return tuple(int(p) for p in text.split("."))
    c.fail(path, f"{text!r} is not a release number such as '1.8'")
    return None


def _tags(c: _Checker, raw: Any, path: str) -> list[str]:
    tags = c.seq(raw, path)
    if not tags:
        c.fail(path, "an image needs at least one tag")
    clean: list[str] = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not re.match(r"^[\w][\w.-]{0,127}$", tag):
            c.fail(f"{path}[{i}]", f"{tag!r} is not a valid tag")
        else:
            clean.append(tag)
    return clean


def _advisory(c: _Checker, raw: Any, path: str) -> Advisory | None:
    m = c.mapping(raw, path)
    ident = c.string(m.get("id"), f"{path}.id")
    code = c.string(m.get("code"), f"{path}.code")
    message = c.string(m.get("message"), f"{path}.message")
    verdict = c.string(m.get("verdict"), f"{path}.verdict", required=False)
    if verdict is not None and verdict not in VERDICT_LEVELS:
        c.fail(f"{path}.verdict", f"{verdict!r} is not one of {list(VERDICT_LEVELS)}")
    recommend = c.string(m.get("recommend_tag"), f"{path}.recommend_tag", required=False)
    match = c.mapping(m.get("match"), f"{path}.match")
    for key in match:
        if key not in ("frameworks", "families", "os_prefix", "min_line", "max_line", "tags"):
            c.fail(f"{path}.match.{key}", "unknown field")

    def names(key: str) -> frozenset[str] | None:
        if key not in match:
            return None
        items = c.seq(match[key], f"{path}.match.{key}")
        return frozenset(str(x) for x in items)

    min_line = c.version(match["min_line"], f"{path}.match.min_line") if "min_line" in match else None
    max_line = c.version(match["max_line"], f"{path}.match.max_line") if "max_line" in match else None
    os_prefix = c.string(match.get("os_prefix"), f"{path}.match.os_prefix", required=False)
    if not match:
        c.fail(f"{path}.match", "an advisory must match something")
    if ident is None or code is None or message is None:
        return None
    return Advisory(
        ident,
        code,
        " ".join(message.split()),
        verdict,
        recommend,
        names("frameworks"),
        names("families"),
        os_prefix,
        min_line,
        max_line,
        names("tags"),
    )


def _retired(c: _Checker, raw: Any, path: str) -> Retired | None:
    m = c.mapping(raw, path)
    for key in m:
        if key not in ("repository", "framework", "reason", "source", "last_eop", "last_line", "successor"):
            c.fail(f"{path}.{key}", "unknown field")
    repo = c.string(m.get("repository"), f"{path}.repository")
    if repo is not None and not _REPO_RE.match(repo):
        c.fail(f"{path}.repository", f"{repo!r} is not a valid repository name")
    framework = c.string(m.get("framework"), f"{path}.framework")
    reason = c.string(m.get("reason"), f"{path}.reason")
    source = c.string(m.get("source"), f"{path}.source")
    last_eop = c.date(m.get("last_eop"), f"{path}.last_eop")
    last_line = c.version(m["last_line"], f"{path}.last_line") if m.get("last_line") is not None else None
    successor = c.string(m.get("successor"), f"{path}.successor", required=False)
    if repo is None or framework is None or reason is None or source is None:
        return None
    text = " ".join(reason.split())
    return Retired(repo, framework, text, " ".join(source.split()), last_eop, last_line, successor)


def load_catalog(document: Any, origin: str = "catalog") -> Catalog:
    """Validate a catalog document and build its indexes; raise :class:`CatalogError`."""
    c = _Checker()
    doc = c.mapping(document, "(document)")
    if not doc:
        raise CatalogError(c.problems or ["(document): the catalog is empty"], origin)
    if doc.get("schema") != SCHEMA:
        c.fail("schema", f"expected {SCHEMA!r}, got {doc.get('schema')!r}")
    source = c.mapping(doc.get("source"), "source", required=False)
    regs = c.mapping(doc.get("registries"), "registries")
    dlc_accounts = _accounts(c, regs.get("dlc"), "registries.dlc")
    algorithm_accounts = _accounts(c, regs.get("algorithms", {}), "registries.algorithms")
    public = tuple(str(p).rstrip("/") for p in c.seq(regs.get("public"), "registries.public", required=False))
    fixed = _fixed_accounts(c, regs.get("fixed_accounts"))
    deps = c.mapping(doc.get("dependencies"), "dependencies")
    python_eos, os_eos = _python_dates(c, deps.get("python")), _os_dates(c, deps.get("os"))
    frameworks = _frameworks(c, doc.get("frameworks"))
    families = _families(c, doc)
    advisories = tuple(
        a
        for i, raw in enumerate(c.seq(doc.get("advisories"), "advisories", required=False))
        if (a := _advisory(c, raw, f"advisories[{i}]")) is not None
    )
    for fam in families.values():
        fw = frameworks.get(fam.framework)
        fam.latest_only = fw.latest_only if fw else False
    for account, fams in fixed.items():
        for f in fams - set(families):
            c.fail(f"registries.fixed_accounts.{account}", f"names unknown family {f!r}")
    retired = _retired_all(c, doc.get("retired"), {f.repository for f in families.values()})
    if c.problems:
        raise CatalogError(c.problems, origin)
    catalog = Catalog(
        source=dict(source),
        dlc_accounts=dlc_accounts,
        algorithm_accounts=algorithm_accounts,
        public_prefixes=public,
        fixed_accounts=fixed,
        python_eos=python_eos,
        os_eos=os_eos,
        frameworks=frameworks,
        families=families,
        advisories=advisories,
        document=doc,
        retired=retired,
    )
    _index(catalog)
    return catalog


def _fixed_accounts(c: _Checker, raw: Any) -> dict[str, frozenset[str]]:
    fixed: dict[str, frozenset[str]] = {}
    for account, fams in c.mapping(raw, "registries.fixed_accounts", required=False).items():
        if not _ACCOUNT_RE.match(str(account)):
            c.fail(f"registries.fixed_accounts.{account}", "account must be 12 digits")
        fixed[str(account)] = frozenset(str(f) for f in c.seq(fams, f"registries.fixed_accounts.{account}"))
    return fixed


def _python_dates(c: _Checker, raw: Any) -> dict[str, dt.date]:
    out: dict[str, dt.date] = {}
    for ver, date in c.mapping(raw, "dependencies.python").items():
        if not re.match(r"^\d\.\d+$", str(ver)):
            c.fail(f"dependencies.python.{ver}", "Python version must be MAJOR.MINOR")
        d = c.date(date, f"dependencies.python.{ver}")
        if d is not None:
            out[str(ver)] = d
    return out


def _os_dates(c: _Checker, raw: Any) -> dict[str, dt.date]:
    out: dict[str, dt.date] = {}
    for name, date in c.mapping(raw, "dependencies.os").items():
        d = c.date(date, f"dependencies.os.{name}")
        if d is not None:
            out[str(name)] = d
    return out


def _frameworks(c: _Checker, raw: Any) -> dict[str, Framework]:
    frameworks: dict[str, Framework] = {}
    for name, item in c.mapping(raw, "frameworks", required=False).items():
        fm = c.mapping(item, f"frameworks.{name}")
        frameworks[name] = Framework(
            name,
            c.boolean(fm.get("latest_only"), f"frameworks.{name}.latest_only", False),
            _lines(c, fm.get("lines"), f"frameworks.{name}.lines"),
        )
    return frameworks


def _families(c: _Checker, doc: Mapping[str, Any]) -> dict[str, Family]:
    families: dict[str, Family] = {}
    fams_raw = c.mapping(doc.get("families"), "families")
    if not fams_raw and "families" in doc:
        c.fail("families", "the catalog has no image families")
    for name, raw in fams_raw.items():
        fam = _family(c, name, raw, f"families.{name}")
        if fam is not None:
            families[name] = fam
    return families


def _family(c: _Checker, name: str, raw: Any, p: str) -> Family | None:
    fm = c.mapping(raw, p)
    repo = c.string(fm.get("repository"), f"{p}.repository")
    if repo is not None and not _REPO_RE.match(repo):
        c.fail(f"{p}.repository", f"{repo!r} is not a valid repository name")
    framework = c.string(fm.get("framework"), f"{p}.framework")
    registry = c.string(fm.get("registry"), f"{p}.registry") or "dlc"
    if registry not in ("dlc", "algorithms"):
        c.fail(f"{p}.registry", f"{registry!r} must be 'dlc' or 'algorithms'")
    default_platform = c.string(fm.get("default_platform"), f"{p}.default_platform", required=False) or "sagemaker"
    if default_platform not in PLATFORMS:
        c.fail(f"{p}.default_platform", f"{default_platform!r} is not one of {sorted(PLATFORMS)}")
    images = [
        img
        for i, r in enumerate(c.seq(fm.get("images"), f"{p}.images"))
        if (img := _image(c, name, r, f"{p}.images[{i}]")) is not None
    ]
    if not images and isinstance(fm.get("images"), list):
        c.fail(f"{p}.images", "a family needs at least one image")
    if repo is None or framework is None:
        return None
    return Family(
        name=name,
        repository=repo,
        framework=framework,
        registry=registry,
        public=c.boolean(fm.get("public"), f"{p}.public", False),
        default_platform=default_platform,
        version_token=c.string(fm.get("version_token"), f"{p}.version_token", required=False),
        lines=_lines(c, fm.get("lines"), f"{p}.lines"),
        images=sorted(images, key=lambda im: im.order),
        group=c.string(fm.get("group"), f"{p}.group", required=False),
    )


def _retired_all(c: _Checker, raw: Any, repositories: set[str]) -> dict[str, Retired]:
    retired: dict[str, Retired] = {}
    for i, item in enumerate(c.seq(raw, "retired", required=False)):
        r = _retired(c, item, f"retired[{i}]")
        if r is None:
            continue
        if r.repository in retired:
            c.fail(f"retired[{i}].repository", f"{r.repository!r} is listed twice")
        if r.successor is not None and r.successor not in repositories:
            c.fail(f"retired[{i}].successor", f"{r.successor!r} is not a repository of the catalog")
        retired[r.repository] = r
    return retired


def _index(catalog: Catalog) -> None:
    for fam in catalog.families.values():
        catalog.by_repository.setdefault(fam.repository, []).append(fam)
        # images are sorted oldest first, so a floating tag ends up on its newest image
        for img in fam.images:
            for tag in img.tags:
                fam.by_tag[tag] = img
                info = parse_tag(tag)
                if info.build is not None:
                    fam.by_stem.setdefault(info.stem, []).append((info.build, img))
        for builds in fam.by_stem.values():
            builds.sort(key=lambda bi: (bi[0], bi[1].order))
    for region, account in catalog.dlc_accounts.items():
        catalog.accounts.setdefault(account, set()).add(("dlc", region))
    for region, account in catalog.algorithm_accounts.items():
        catalog.accounts.setdefault(account, set()).add(("algorithms", region))
