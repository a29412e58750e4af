"""Identity + catalog + date -> verdict, reasons and a recommendation.

Verdicts, most severe first: ``unsupported``, ``unknown``, ``outdated``, ``expiring``,
``supported``; and outside that scale ``invalid`` and ``not-dlc``. Each rule adds a
:class:`Reason` with a stable ``code``; the verdict is the most severe reason's level.
Advisories add reasons at level ``advisory`` (or raise the verdict when the catalog says
so). Everything is computed from the catalog and ``as_of``: the same inputs give the same
answer on any day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from policy.catalog import Catalog, Family, Image, Line, Retired
from policy.digests import DigestBook
from policy.reference import REFERENCE_MAX, ImageReference, InvalidReference, parse_reference
from policy.registries import Location, Mirror, identify
from policy.resolve import Identity, Unresolved, resolve_tag
from policy.version import parse_version

__all__ = [
    "SEVERITY",
    "Engine",
    "Reason",
    "Result",
    "worst",
]

SEVERITY = {"unsupported": 5, "unknown": 4, "outdated": 3, "expiring": 2, "supported": 1, "advisory": 0, "info": 0}
# invalid strings are at least as bad as unknown ones; not-dlc is outside the scale
RANK = {"invalid": 4, "unsupported": 5, "unknown": 4, "outdated": 3, "expiring": 2, "supported": 1, "not-dlc": 0}
ONE_YEAR = dt.timedelta(days=365)
TWO_YEARS = dt.timedelta(days=730)
SIX_MONTHS = dt.timedelta(days=182)


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    severity: str
    """The verdict this reason implies, or ``advisory`` / ``info``."""
    message: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "facts": self.facts}


@dataclass(frozen=True, slots=True)
class Result:
    image: str
    verdict: str
    dlc: bool
    reasons: tuple[Reason, ...] = ()
    repository: str | None = None
    family: str | None = None
    framework: str | None = None
    version: str | None = None
    line: str | None = None
    ga: dt.date | None = None
    eop: dt.date | None = None
    python: str | None = None
    os: str | None = None
    accelerator: str | None = None
    platform: str | None = None
    recommendation: str | None = None
    next_change: dt.date | None = None
    """The next date on which this image's verdict changes by itself (or ``None``)."""

    @property
    def rank(self) -> int:
        return RANK[self.verdict]

    def reaches(self, level: str) -> bool:
        """Whether this verdict is at least as severe as ``level`` (a verdict name)."""
        if self.verdict == "not-dlc":
            return False
        return RANK[self.verdict] >= RANK[level]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "dlc": self.dlc,
            "repository": self.repository,
            "family": self.family,
            "framework": self.framework,
            "version": self.version,
            "line": self.line,
            "verdict": self.verdict,
            "ga": _iso(self.ga),
            "eop": _iso(self.eop),
            "python": self.python,
            "os": self.os,
            "accelerator": self.accelerator,
            "platform": self.platform,
            "reasons": [r.to_dict() for r in self.reasons],
            "recommendation": self.recommendation,
            "next_change": _iso(self.next_change),
        }

    @property
    def main_reason(self) -> Reason | None:
        """The reason that carries the verdict (else the first reason)."""
        main = [r for r in self.reasons if r.severity == self.verdict] or list(self.reasons)
        return main[0] if main else None

    @property
    def summary(self) -> str:
        """One line for people: the verdict's main reason."""
        main = self.main_reason
        return main.message if main is not None else self.verdict

    @property
    def notices(self) -> tuple[Reason, ...]:
        """Reasons that inform without judging (``ANACONDA_LICENSE``)."""
        return tuple(r for r in self.reasons if r.code in NOTICES)

    @property
    def main_code(self) -> str:
        """The main reason's code (the verdict in capitals when there is no reason)."""
        main = self.main_reason
        return main.code if main is not None else self.verdict.upper()


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d is not None else None


def worst(results: Iterable[Result]) -> str | None:
    best: Result | None = None
    for r in results:
        if best is None or r.rank > best.rank:
            best = r
    return best.verdict if best is not None else None


@dataclass(frozen=True, slots=True)
class _Eop:
    ga: dt.date | None
    eop: dt.date | None
    source: str
    rule: str


ANACONDA_NOTICE = (
    "no longer actively maintained: AWS moved its maintained DLCs from the Anaconda channel to conda-forge, "
    "and whoever keeps installing from the Anaconda repository in such an image must comply with its licence "
    "terms where they apply (or move to a supported DLC, or install from conda-forge)"
)
"""The seed's answer to "Do I need a commercial license to use the Anaconda Repository?", in one sentence."""
NOTICES = frozenset({"ANACONDA_LICENSE"})
"""Reason codes that inform without judging (shown apart from the verdict's reasons)."""
PENDING = frozenset({"DIGEST_UNRESOLVED", "DIGEST_UNVERIFIED"})
"""Reason codes of verdicts that a later registry answer can change."""


def pending(result: Result) -> bool:
    """Whether a registry answer about the image's digest may still change ``result``."""
    return any(r.code in PENDING for r in result.reasons)


class Engine:
    """Evaluates references against one catalog on one date. Results are cached per string.

    The cache is bounded (``cache_size`` entries, cleared when full): references repeat
    heavily in real clusters, and a cached answer costs one dictionary lookup.
    """

    def __init__(
        self,
        catalog: Catalog,
        as_of: dt.date,
        warn_days: int = 60,
        mirrors: tuple[Mirror, ...] = (),
        cache_size: int = 65536,
        digests: DigestBook | None = None,
        anaconda_notice: bool = True,
    ) -> None:
        if warn_days < 0:
            raise ValueError("warn_days must be zero or more")
        self.catalog = catalog
        self.as_of = as_of
        self.warn_days = warn_days
        self.warn_until = as_of + dt.timedelta(days=warn_days)
        self.mirrors = mirrors
        self.cache_size = cache_size
        self.digests = digests
        """Answers for digest-only references, filled by a registry resolver (outside the core)."""
        self.anaconda_notice = anaconda_notice
        """Add ``ANACONDA_LICENSE`` to images no longer actively maintained (the policy can turn it off)."""
        self._cache: dict[str, Result] = {}
        self._judgements: dict[tuple[object, ...], Result] = {}

    # ------------------------------------------------------------------ entry point

    def evaluate(self, text: str) -> Result:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        if len(text) > REFERENCE_MAX:  # refused at once, and never kept: unique huge strings cost nothing
            return self._evaluate(text)
        result = self._evaluate(text)
        if pending(result):
            return result  # a registry answer may still come: judge it afresh next time
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[text] = result
        return result

    def evaluate_many(self, texts: Iterable[str]) -> list[Result]:
        return [self.evaluate(t) for t in texts]

    def _evaluate(self, text: str) -> Result:
        try:
            ref = parse_reference(text)
        except InvalidReference as exc:
            return Result(
                text if len(text) <= REFERENCE_MAX else exc.reference,
                "invalid",
                False,
                (Reason("INVALID_REFERENCE", "invalid", exc.reason, {"position": exc.position}),),
            )
        loc = identify(ref, self.catalog, self.mirrors)
        if loc is None:
            return Result(
                text, "not-dlc", False, (Reason("NOT_DLC", "info", "not an AWS Deep Learning Containers registry"),)
            )
        if not loc.families:
            retired = self.catalog.retired.get(loc.repository)
            if retired is not None:
                return self._retired(text, ref, loc, retired)
            return Result(
                text,
                "unknown",
                True,
                (
                    Reason(
                        "REPOSITORY_UNKNOWN",
                        "unknown",
                        f"repository {loc.repository!r} is not in the catalog",
                        {"repository": loc.repository},
                    ),
                ),
                repository=loc.repository,
            )
        tag = ref.tag
        if ref.digest is not None:
            # the runtime pulls the digest, whatever the tag says: the digest decides
            known = self.digests.get(ref.digest) if self.digests is not None else None
            if known is None and tag is not None:
                return self._unverified(text, ref, loc, tag)
            if known is None:
                failed = self.digests.failure(ref.digest) if self.digests is not None else None
                why = f"digest lookup failed: {failed}" if failed else None
                return replace(
                    self._unresolved(
                        text,
                        ref,
                        loc,
                        Unresolved(
                            "DIGEST_UNRESOLVED",
                            why or "pinned by digest only; the version needs a registry lookup",
                        ),
                    ),
                    image=text,
                )
            tag = known.tag
        return self._by_tag(text, ref, loc, tag)

    def _retired(self, text: str, ref: ImageReference, loc: Location, retired: Retired) -> Result:
        """A repository AWS no longer builds, absent from the release data: unsupported, with
        the successor's newest maintained image as the recommendation when there is one."""
        rec = None
        for fam in self.catalog.by_repository.get(retired.successor or "", []):
            pick = self._newest_healthy(fam, fam.images)
            if pick is not None:
                path = ref.path.rsplit("/", 1)[0] + "/" if "/" in ref.path else ""
                rec = f"{ref.registry}/{path}{fam.repository}:{pick.tag}"
                break
        return Result(
            text,
            "unsupported",
            True,
            (self._retired_reason(retired), *self._notices("unsupported")),
            repository=loc.repository,
            framework=retired.framework,
            eop=retired.last_eop,
            recommendation=rec,
        )

    def _notices(self, verdict: str) -> tuple[Reason, ...]:
        """Notices for an image of this verdict: the seed's Anaconda answer for images that are
        no longer actively maintained (superseded, or past their end of support)."""
        if not self.anaconda_notice or verdict not in ("unsupported", "outdated"):
            return ()
        return (Reason("ANACONDA_LICENSE", "info", ANACONDA_NOTICE, {"channel": "anaconda"}),)

    @staticmethod
    def _retired_reason(retired: Retired) -> Reason:
        facts: dict[str, Any] = {"repository": retired.repository, "source": retired.source}
        if retired.last_eop is not None:
            facts["last_eop"] = retired.last_eop.isoformat()
        if retired.successor is not None:
            facts["successor"] = retired.successor
        return Reason("FRAMEWORK_RETIRED", "unsupported", f"{retired.repository} is retired: {retired.reason}", facts)

    def _retired_line(self, fam: Family, line: str) -> Retired | None:
        """The retirement covering this family's ``line``, if any (whatever the date)."""
        retired = self.catalog.retired.get(fam.repository)
        if retired is None:
            return None
        if retired.last_line is not None and parse_version(line) > retired.last_line:
            return None
        return retired

    def _by_tag(self, text: str, ref: ImageReference, loc: Location, tag: str | None) -> Result:
        key = (loc.repository, tuple(f.name for f in loc.families), tag, ref.digest is None)
        template = self._judgements.get(key)
        if template is None:
            template = self._judge_key(ref, loc, tag)
            if len(self._judgements) >= self.cache_size:
                self._judgements.clear()
            self._judgements[key] = template
        # a judgement depends on repository and tag only; the reference adds the registry
        rec = template.recommendation
        return replace(template, image=text, recommendation=ref.with_tag(rec) if rec else None)

    def _unverified(self, text: str, ref: ImageReference, loc: Location, tag: str) -> Result:
        """``name:tag@digest`` whose digest no registry has answered for. The tag is only a
        claim: an old image pushed under a supported tag, or a tag moved since, runs the digest.
        Never better than ``unknown``; an unsupported tag stays unsupported (the claim itself is
        the old image)."""
        claim = self._by_tag(text, ref, loc, tag)
        assert ref.digest is not None
        why = Reason(
            "DIGEST_UNVERIFIED",
            "unknown",
            f"pinned to {ref.digest[:19]}…: the tag {tag!r} ({claim.verdict}) is not proof of what the digest is; "
            "its version needs a registry lookup",
            {"digest": ref.digest, "tag": tag, "tagVerdict": claim.verdict},
        )
        if claim.rank > RANK["unknown"]:
            return replace(claim, reasons=(*claim.reasons, replace(why, severity="info")))
        return Result(
            text,
            "unknown",
            True,
            (why,),
            repository=claim.repository,
            family=claim.family,
            framework=claim.framework,
        )

    def _judge_key(self, ref: ImageReference, loc: Location, tag: str | None) -> Result:
        text = ""
        if tag is None:
            return self._unresolved(
                text, ref, loc, Unresolved("TAG_LATEST", "no tag: Docker pulls 'latest', whose version cannot be known")
            )
        if tag != ref.tag:
            ref = replace(ref, tag=tag)  # a digest the registry resolved: judged by its tag
        ident = resolve_tag(loc.families, tag)
        if isinstance(ident, Unresolved):
            return self._unresolved(text, ref, loc, ident)
        return self._judge(text, ref, loc, ident)

    def _unresolved(self, text: str, ref: ImageReference, loc: Location, why: Unresolved) -> Result:
        fam = why.family or (loc.families[0] if len(loc.families) == 1 else None)
        rec = None
        if fam is not None and why.code == "TAG_LATEST":
            pick = self._newest_healthy(fam, fam.images)
            rec = pick.tag if pick is not None else None
        return Result(
            text,
            "unknown",
            True,
            (Reason(why.code, "unknown", why.message),),
            repository=loc.repository,
            family=fam.name if fam else None,
            framework=fam.framework if fam else None,
            recommendation=rec,
        )

    # ------------------------------------------------------------------ dates

    def _line(self, fam: Family, line: str) -> _Eop | None:
        own = fam.lines.get(line)
        if own is not None:
            return self._eop_of(own, fam.framework, line, f"{fam.name} {line}")
        fw = self.catalog.frameworks.get(fam.framework)
        borrowed = fw.lines.get(line) if fw is not None else None
        if borrowed is None:
            return None
        if (
            fam.group is None
            and not fam.lines
            and fam.images
            and line == fam.images[-1].line  # the catalog keeps a family's images oldest first
            and self._retired_line(fam, line) is None
        ):
            # A family with no dates of its own (Neuron, Hugging Face…), on the newest line AWS
            # has released in it: "current" is "the newest framework version that AWS makes
            # available", so the line is maintained while the family is; the framework table's
            # date applies to this family once a newer line of it exists.
            return _Eop(None, None, f"{fam.name} {line}", "family-current")
        return self._eop_of(borrowed, fam.framework, line, f"{fam.framework} {line} (framework table)")

    def _eop_of(self, line: Line, framework: str, key: str, source: str) -> _Eop:
        if line.eop is not None:
            return _Eop(line.ga, line.eop, source, "data")
        if line.ga is None:
            return _Eop(None, None, source, "none")
        fw = self.catalog.frameworks.get(framework)
        if fw is not None and _is_last_of_major(key, fw.lines):
            # major-version exception: two years from release, or six months after upstream
            # drops it, whichever is earlier
            eop = line.ga + TWO_YEARS
            if line.upstream_eol is not None:
                eop = min(eop, line.upstream_eol + SIX_MONTHS)
            return _Eop(line.ga, eop, source, "major-version-exception")
        return _Eop(line.ga, line.ga + ONE_YEAR, source, "ga+365")

    def _healthy(self, fam: Family, img: Image) -> bool:
        """Whether an image is still maintained on ``as_of`` (used to pick a recommendation)."""
        eop = self._line(fam, img.line)
        if eop is not None and eop.eop is not None and self.as_of > eop.eop:
            return False
        if eop is None and not fam.latest_only and self._framework_has_dates(fam):
            return False
        for table, key in ((self.catalog.python_eos, img.python), (self.catalog.os_eos, img.os)):
            d = table.get(key) if key else None
            if d is not None and self.as_of > d:
                return False
        return not any(
            a.verdict == "unsupported" and self._advisory_matches(a, fam, img.version, img.os, img.tags)
            for a in self.catalog.advisories
        )

    def _framework_has_dates(self, fam: Family) -> bool:
        fw = self.catalog.frameworks.get(fam.framework)
        return bool(fam.lines) or bool(fw and fw.lines)

    def _newest_healthy(self, fam: Family, images: Iterable[Image]) -> Image | None:
        for img in sorted(images, key=lambda i: i.order, reverse=True):
            if self._healthy(fam, img):
                return img
        return None

    # ------------------------------------------------------------------ rules

    def _candidates(self, ident: Identity) -> list[Image]:
        fam = ident.family
        same = [i for i in fam.images if i.variant == ident.variant]
        if not same:
            same = [
                i
                for i in fam.images
                if i.accelerator == ident.accelerator and i.platform == ident.platform and i.flavor == ident.flavor
            ]
        if not same:
            same = [i for i in fam.images if i.accelerator == ident.accelerator and i.flavor == ident.flavor]
        return same

    def _judge(self, text: str, ref: ImageReference, loc: Location, ident: Identity) -> Result:
        fam = ident.family
        version = ident.version
        line_key = version.line
        reasons: list[Reason] = []
        cands = self._candidates(ident)
        dates = self._line(fam, line_key)
        next_dates: list[dt.date] = []
        rec_img: Image | None = None

        if ident.how == "grammar":
            reasons.append(
                Reason(
                    "RESOLVED_BY_GRAMMAR",
                    "info",
                    f"tag is not in the catalog; read as {fam.framework} {version}",
                    {"tag": ref.tag},
                )
            )

        newest = max(cands, key=lambda i: i.order) if cands else None
        beyond = newest is not None and ident.image is None and version > newest.version and version.line != newest.line
        if beyond and dates is None and newest is not None:
            return Result(
                text,
                "unknown",
                True,
                (
                    Reason(
                        "NEWER_THAN_CATALOG",
                        "unknown",
                        f"{fam.framework} {version} is newer than any {fam.name} image the catalog knows "
                        f"(newest {newest.version}); refresh the catalog",
                        {"newest": str(newest.version)},
                    ),
                ),
                repository=loc.repository,
                family=fam.name,
                framework=fam.framework,
                version=str(version),
                line=line_key,
            )

        # --- end of patch
        if dates is None:
            fw = self.catalog.frameworks.get(fam.framework)
            older = _next_line_above({**(fw.lines if fw else {}), **fam.lines}, line_key)
            if fam.latest_only:
                pass
            elif older is not None and older[1].eop is not None and self.as_of > older[1].eop:
                reasons.append(
                    Reason(
                        "EOP_PASSED",
                        "unsupported",
                        f"{fam.framework} {line_key} is older than {older[0]}, whose end of patch already passed "
                        f"({older[1].eop})",
                        {"line": line_key, "older_than": older[0], "eop": older[1].eop.isoformat()},
                    )
                )
            elif self._framework_has_dates(fam):
                return Result(
                    text,
                    "unknown",
                    True,
                    (
                        Reason(
                            "VERSION_UNKNOWN",
                            "unknown",
                            f"{fam.framework} {line_key} is in no support table of the catalog",
                            {"line": line_key},
                        ),
                    ),
                    repository=loc.repository,
                    family=fam.name,
                    framework=fam.framework,
                    version=str(version),
                    line=line_key,
                )
            else:
                reasons.append(
                    Reason(
                        "EOP_UNPUBLISHED",
                        "info",
                        f"AWS publishes no end-of-patch date for {fam.framework}; judged on releases and dependencies",
                    )
                )
        elif dates.rule == "family-current":
            fw_line = self.catalog.frameworks[fam.framework].lines[line_key]
            table_eop = self._eop_of(fw_line, fam.framework, line_key, "").eop
            reasons.append(
                Reason(
                    "EOP_FAMILY_CURRENT",
                    "info",
                    f"{fam.name} has no end-of-patch dates of its own and {line_key} is the newest {fam.framework} "
                    f"line AWS releases in it: maintained while AWS releases it; the {fam.framework} table's date "
                    f"({table_eop}) applies once a newer {fam.name} line exists",
                    {"line": line_key, "framework_eop": _iso(table_eop), "source": dates.source, "rule": dates.rule},
                )
            )
        elif dates.eop is not None:
            facts = {"eop": dates.eop.isoformat(), "ga": _iso(dates.ga), "source": dates.source, "rule": dates.rule}
            whose = ""
            if fam.group is None and dates.source.endswith("(framework table)"):
                whose = f" (the {fam.framework} table's date: {fam.name} has none of its own)"
            if self.as_of > dates.eop:
                reasons.append(
                    Reason(
                        "EOP_PASSED",
                        "unsupported",
                        f"end of patch for {fam.framework} {line_key} was {dates.eop}{whose}",
                        facts,
                    )
                )
            elif dates.eop <= self.warn_until:
                days = (dates.eop - self.as_of).days
                reasons.append(
                    Reason(
                        "EOP_SOON",
                        "expiring",
                        f"end of patch for {fam.framework} {line_key} is {dates.eop} (in {days} days){whose}",
                        facts,
                    )
                )
                next_dates.append(dates.eop + dt.timedelta(days=1))
            else:
                next_dates.append(dates.eop - dt.timedelta(days=self.warn_days))
            if dates.rule == "major-version-exception":
                reasons.append(
                    Reason(
                        "MAJOR_VERSION_EXCEPTION",
                        "info",
                        f"last {fam.framework} {version.release[0]}.x line: supported two years from release "
                        "or six months after upstream drops it",
                        facts,
                    )
                )

        # --- dependencies
        for kind, table, key in (
            ("PYTHON", self.catalog.python_eos, ident.python),
            ("OS", self.catalog.os_eos, ident.os),
        ):
            if not key or key not in table:
                continue
            eos = table[key]
            label = f"Python {key}" if kind == "PYTHON" else key
            facts = {kind.lower(): key, "end_of_support": eos.isoformat()}
            if self.as_of > eos:
                reasons.append(Reason(f"{kind}_EOS", "unsupported", f"{label} reached end of support on {eos}", facts))
            elif eos <= self.warn_until:
                reasons.append(
                    Reason(f"{kind}_EOS_SOON", "expiring", f"{label} reaches end of support on {eos}", facts)
                )
                next_dates.append(eos + dt.timedelta(days=1))
            else:
                next_dates.append(eos - dt.timedelta(days=self.warn_days))

        # --- releases
        my_order = ident.order
        if fam.latest_only and newest is not None:
            if my_order < newest.order and not (ident.image is None and ident.version > newest.version):
                reasons.append(
                    Reason(
                        "NOT_LATEST",
                        "unsupported",
                        f"only the newest {fam.framework} release is supported; "
                        f"newest is {newest.version} ({newest.tag})",
                        {"newest": str(newest.version), "newest_tag": newest.tag},
                    )
                )
                rec_img = newest
        else:
            same_line = [i for i in cands if i.line == line_key]
            newer_patch = [i for i in same_line if i.version > version]
            newer_build = [i for i in same_line if i.version.key == version.key and i.order > my_order]
            if newer_patch:
                top = max(newer_patch, key=lambda i: i.order)
                reasons.append(
                    Reason(
                        "NEWER_PATCH",
                        "outdated",
                        f"{fam.framework} {version} is superseded by {top.version} ({top.tag}) and no longer patched",
                        {"newer": str(top.version), "newer_tag": top.tag},
                    )
                )
                rec_img = top
            elif newer_build:
                top = max(newer_build, key=lambda i: i.order)
                reasons.append(
                    Reason(
                        "NEWER_BUILD",
                        "outdated",
                        f"a newer image of {fam.framework} {version} exists ({top.tag}); "
                        "this build is no longer patched",
                        {"newer_tag": top.tag},
                    )
                )
                rec_img = top
            elif dates is None and newest is not None and newest.line != line_key and newest.version > version:
                reasons.append(
                    Reason(
                        "NEWER_LINE_AVAILABLE",
                        "advisory",
                        f"a newer {fam.framework} line exists ({newest.version}, {newest.tag})",
                        {"newer": str(newest.version), "newer_tag": newest.tag},
                    )
                )
                rec_img = newest
            elif (
                ident.image is None
                and ident.build is not None
                and len(ident.build) > 1
                and not any(i.build for i in same_line)
            ):
                reasons.append(
                    Reason(
                        "BUILD_UNVERIFIED",
                        "info",
                        f"the catalog does not list release builds of {fam.framework} {line_key}; "
                        "a newer build may exist (floating tags always point to it)",
                    )
                )

        # --- retired repositories (still in the release data, no release after their last line)
        retired = self._retired_line(fam, line_key)
        if retired is not None and (retired.last_eop is None or self.as_of > retired.last_eop):
            reasons.append(self._retired_reason(retired))

        # --- advisories
        for adv in self.catalog.advisories:
            if self._advisory_matches(adv, fam, version, ident.os, (ref.tag,) if ref.tag else ()):
                reasons.append(Reason(adv.code, adv.verdict or "advisory", adv.message, {"advisory": adv.id}))
                target = fam.by_tag.get(adv.recommend_tag) if adv.recommend_tag else None
                if target is not None and self._healthy(fam, target):
                    return self._finish(text, ref, loc, ident, dates, reasons, next_dates, target.tag)

        return self._finish(text, ref, loc, ident, dates, reasons, next_dates, None, rec_img)

    def _advisory_matches(self, adv: Any, fam: Family, version: Any, os_: str | None, tags: Iterable[str]) -> bool:
        if adv.frameworks is not None and fam.framework not in adv.frameworks:
            return False
        if adv.families is not None and fam.name not in adv.families:
            return False
        if adv.os_prefix is not None and not (os_ or "").startswith(adv.os_prefix):
            return False
        if adv.min_line is not None or adv.max_line is not None:
            line = parse_version(version.line)
            if adv.min_line is not None and line < adv.min_line:
                return False
            if adv.max_line is not None and line > adv.max_line:
                return False
        return not (adv.tags is not None and not (set(tags) & adv.tags))

    def _finish(
        self,
        text: str,
        ref: ImageReference,
        loc: Location,
        ident: Identity,
        dates: _Eop | None,
        reasons: list[Reason],
        next_dates: list[dt.date],
        recommendation: str | None,
        rec_img: Image | None = None,
    ) -> Result:
        verdict = "supported"
        for r in reasons:
            if SEVERITY.get(r.severity, 0) > SEVERITY[verdict]:
                verdict = r.severity
        fam = ident.family
        if recommendation is None and (verdict != "supported" or rec_img is not None):
            if rec_img is not None and not self._healthy(fam, rec_img):
                rec_img = None
            if rec_img is None:
                rec_img = self._newest_healthy(fam, self._candidates(ident))
            if (
                rec_img is not None
                and rec_img is not ident.image
                and rec_img.tag != ref.tag
                and rec_img.order >= ident.order
            ):
                recommendation = rec_img.tag
            elif rec_img is None and verdict == "unsupported":
                reasons.append(
                    Reason(
                        "NO_SUPPORTED_IMAGE", "info", f"the catalog lists no supported {fam.name} image of this variant"
                    )
                )
        future = [d for d in next_dates if d > self.as_of]
        return Result(
            image=text,
            verdict=verdict,
            dlc=True,
            reasons=(*reasons, *self._notices(verdict)),
            repository=loc.repository,
            family=fam.name,
            framework=fam.framework,
            version=str(ident.version),
            line=ident.version.line,
            ga=dates.ga if dates else None,
            eop=dates.eop if dates else None,
            python=ident.python,
            os=ident.os,
            accelerator=ident.accelerator,
            platform=ident.platform,
            recommendation=recommendation,
            next_change=min(future) if future and verdict != "unsupported" else None,
        )


def _line_key(line: str) -> tuple[int, ...]:
    try:
        return parse_version(line).release
    except ValueError:
        return ()


def _is_last_of_major(key: str, lines: Any) -> bool:
    mine = _line_key(key)
    if not mine:
        return False
    same_major = [_line_key(k) for k in lines if _line_key(k)[:1] == mine[:1]]
    newer_major = any(_line_key(k)[:1] > mine[:1] for k in lines)
    return newer_major and mine == max(same_major)


def _next_line_above(lines: Any, key: str) -> tuple[str, Line] | None:
    """The nearest catalogued line newer than ``key`` (its end of patch bounds ``key``'s)."""
    mine = _line_key(key)
    above = sorted((_line_key(k), k) for k in lines if mine and _line_key(k) > mine)
    return (above[0][1], lines[above[0][1]]) if above else None
