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
from dataclasses import replace
from typing import Any

from policy.catalog import Catalog, Family, Image, Line, Retired
from policy.digests import DigestBook
from policy.recommend import candidates, healthy, newest_healthy, recommend
from policy.reference import REFERENCE_MAX, ImageReference, InvalidReference, parse_reference
from policy.registries import Location, Mirror, identify
from policy.resolve import Identity, Unresolved, resolve_tag
from policy.rules import RULES, Case, Tally, line_key
from policy.verdicts import (
    ANACONDA_NOTICE,
    NOTICES,
    PENDING,
    RANK,
    SEVERITY,
    Eop,
    Reason,
    Result,
    pending,
    worst,
)
from policy.version import parse_version

__all__ = [
    "NOTICES",
    "PENDING",
    "RANK",
    "SEVERITY",
    "Engine",
    "Reason",
    "Result",
    "pending",
    "worst",
]

ONE_YEAR = dt.timedelta(days=365)
TWO_YEARS = dt.timedelta(days=730)
SIX_MONTHS = dt.timedelta(days=182)


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
            pick = newest_healthy(self, fam, list(fam.images))
            if pick is not None:
                path = ref.path.rsplit("/", 1)[0] + "/" if "/" in ref.path else ""
                rec = f"{ref.registry}/{path}{fam.repository}:{pick.tag}"
                break
        return Result(
            text,
            "unsupported",
            True,
            (self.retired_reason(retired), *self._notices("unsupported")),
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
    def retired_reason(retired: Retired) -> Reason:
        facts: dict[str, Any] = {"repository": retired.repository, "source": retired.source}
        if retired.last_eop is not None:
            facts["last_eop"] = retired.last_eop.isoformat()
        if retired.successor is not None:
            facts["successor"] = retired.successor
        return Reason("FRAMEWORK_RETIRED", "unsupported", f"{retired.repository} is retired: {retired.reason}", facts)

    def retired_line(self, fam: Family, line: str) -> Retired | None:
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
            pick = newest_healthy(self, fam, list(fam.images))
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

    def line_dates(self, fam: Family, line: str) -> Eop | None:
        own = fam.lines.get(line)
        if own is not None:
            return self.eop_of(own, fam.framework, line, f"{fam.name} {line}")
        fw = self.catalog.frameworks.get(fam.framework)
        borrowed = fw.lines.get(line) if fw is not None else None
        if borrowed is None:
            return None
        if (
            fam.group is None
            and not fam.lines
            and fam.images
            and line == fam.images[-1].line  # the catalog keeps a family's images oldest first
            and self.retired_line(fam, line) is None
        ):
            # A family with no dates of its own (Neuron, Hugging Face…), on the newest line AWS
            # has released in it: "current" is "the newest framework version that AWS makes
            # available", so the line is maintained while the family is; the framework table's
            # date applies to this family once a newer line of it exists.
            return Eop(None, None, f"{fam.name} {line}", "family-current")
        return self.eop_of(borrowed, fam.framework, line, f"{fam.framework} {line} (framework table)")

    def eop_of(self, line: Line, framework: str, key: str, source: str) -> Eop:
        if line.eop is not None:
            return Eop(line.ga, line.eop, source, "data")
        if line.ga is None:
            return Eop(None, None, source, "none")
        fw = self.catalog.frameworks.get(framework)
        if fw is not None and _is_last_of_major(key, fw.lines):
            # major-version exception: two years from release, or six months after upstream
            # drops it, whichever is earlier
            eop = line.ga + TWO_YEARS
            if line.upstream_eol is not None:
                eop = min(eop, line.upstream_eol + SIX_MONTHS)
            return Eop(line.ga, eop, source, "major-version-exception")
        return Eop(line.ga, line.ga + ONE_YEAR, source, "ga+365")

    def healthy(self, fam: Family, img: Image) -> bool:
        """Whether an image is still maintained on ``as_of`` (:func:`policy.recommend.healthy`)."""
        return healthy(self, fam, img)

    def framework_has_dates(self, fam: Family) -> bool:
        fw = self.catalog.frameworks.get(fam.framework)
        return bool(fam.lines) or bool(fw and fw.lines)

    def _judge(self, text: str, ref: ImageReference, loc: Location, ident: Identity) -> Result:
        """The rules of :mod:`policy.rules`, in their order, then the verdict and recommendation."""
        case = Case(self, text, ref, loc, ident, candidates(ident), self.line_dates(ident.family, ident.version.line))
        tally = Tally()
        for rule in RULES:
            rule(case, tally)
            if tally.final is not None:
                return tally.final
        return self._finish(
            text, ref, loc, ident, case.dates, tally.reasons, tally.next_dates, tally.recommend_tag, tally.recommend
        )

    def advisory_matches(self, adv: Any, fam: Family, version: Any, os_: str | None, tags: Iterable[str]) -> bool:
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
        dates: Eop | None,
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
            found, recommendation = recommend(self, ident, ref.tag, rec_img)
            if found is None and verdict == "unsupported":
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


def _is_last_of_major(key: str, lines: Any) -> bool:
    mine = line_key(key)
    if not mine:
        return False
    same_major = [line_key(k) for k in lines if line_key(k)[:1] == mine[:1]]
    newer_major = any(line_key(k)[:1] > mine[:1] for k in lines)
    return newer_major and mine == max(same_major)
