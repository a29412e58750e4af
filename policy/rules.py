"""The support policy as rules: one function each, applied in the order of :data:`RULES`.

Each rule reads the :class:`Case` (the image's identity, the catalog, the date) and adds to the
:class:`Tally`: reasons, the dates on which the verdict will move by itself, and an image to
recommend. A rule that settles the verdict on its own (the version is beyond the catalog, or in
no support table) sets ``Tally.final``, and the rules after it are not asked. The verdict is
the most severe reason's; the engine then picks the recommendation (:mod:`policy.recommend`).

A new rule is one function here and one line in :data:`RULES`, the way the seed's policy reads:

1. end of patch (the framework's or the family's dates; GA + 365 days; the major-version
   exception; the newest line of a family without dates of its own);
2. Python and OS end of support;
3. releases: only the newest release of latest-only frameworks; superseded patches and builds;
4. retired repositories;
5. advisories from the catalog.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from policy.catalog import Family, Image, Line
from policy.reference import ImageReference
from policy.registries import Location
from policy.resolve import Identity
from policy.verdicts import Eop, Reason, Result, iso_date
from policy.version import Version, parse_version

if TYPE_CHECKING:
    from policy.evaluate import Engine

__all__ = ["RULES", "Case", "Rule", "Tally", "line_key"]


@dataclass(slots=True)
class Case:
    """What the rules read about one image (built once per judgement)."""

    engine: Engine
    text: str
    ref: ImageReference
    loc: Location
    ident: Identity
    candidates: list[Image]
    """The family's images of the same variant (the ones that could replace this one)."""
    dates: Eop | None
    """The line's dates, from the family or the framework table (``None``: in neither)."""

    @property
    def fam(self) -> Family:
        return self.ident.family

    @property
    def version(self) -> Version:
        return self.ident.version

    @property
    def line(self) -> str:
        return self.ident.version.line

    @property
    def as_of(self) -> dt.date:
        return self.engine.as_of

    @property
    def newest(self) -> Image | None:
        return max(self.candidates, key=lambda i: i.order) if self.candidates else None

    def result(self, verdict: str, reason: Reason) -> Result:
        """A verdict settled by one reason (no recommendation, no dates)."""
        return Result(
            self.text,
            verdict,
            True,
            (reason,),
            repository=self.loc.repository,
            family=self.fam.name,
            framework=self.fam.framework,
            version=str(self.version),
            line=self.line,
        )


@dataclass(slots=True)
class Tally:
    reasons: list[Reason] = field(default_factory=list)
    next_dates: list[dt.date] = field(default_factory=list)
    """Dates on which the verdict changes by itself (the engine keeps the first one ahead)."""
    recommend: Image | None = None
    """The image a rule points to (the engine checks it is still maintained)."""
    recommend_tag: str | None = None
    """A tag a rule names outright (an advisory's), taken as it is."""
    final: Result | None = None
    """Set by a rule that settles the verdict alone."""

    def add(self, reason: Reason, recommend: Image | None = None) -> None:
        """A reason, and the image it points to when it names one."""
        self.reasons.append(reason)
        if recommend is not None:
            self.recommend = recommend

    def expires(self, when: dt.date, warn_days: int, warning: bool) -> None:
        """The verdict moves the day after ``when`` (already warning) or when the warning starts."""
        self.next_dates.append(when + dt.timedelta(days=1) if warning else when - dt.timedelta(days=warn_days))


Rule = Callable[[Case, Tally], None]


def read_by_grammar(case: Case, tally: Tally) -> None:
    if case.ident.how == "grammar":
        tally.reasons.append(
            Reason(
                "RESOLVED_BY_GRAMMAR",
                "info",
                f"tag is not in the catalog; read as {case.fam.framework} {case.version}",
                {"tag": case.ref.tag},
            )
        )


def newer_than_catalog(case: Case, tally: Tally) -> None:
    """A version on a line the catalog has no dates for, newer than every image it knows."""
    newest, ident = case.newest, case.ident
    if newest is None or ident.image is not None or case.dates is not None:
        return
    if case.version > newest.version and case.line != newest.line:
        tally.final = case.result(
            "unknown",
            Reason(
                "NEWER_THAN_CATALOG",
                "unknown",
                f"{case.fam.framework} {case.version} is newer than any {case.fam.name} image the catalog knows "
                f"(newest {newest.version}); refresh the catalog",
                {"newest": str(newest.version)},
            ),
        )


def end_of_patch(case: Case, tally: Tally) -> None:
    if case.dates is None:
        _without_dates(case, tally)
    elif case.dates.rule == "family-current":
        _family_current(case, tally)
    elif case.dates.eop is not None:
        _dated(case, tally, case.dates)


def _without_dates(case: Case, tally: Tally) -> None:
    fam, line, engine = case.fam, case.line, case.engine
    fw = engine.catalog.frameworks.get(fam.framework)
    older = _next_line_above({**(fw.lines if fw else {}), **fam.lines}, line)
    if fam.latest_only:
        return
    if older is not None and older[1].eop is not None and case.as_of > older[1].eop:
        tally.reasons.append(
            Reason(
                "EOP_PASSED",
                "unsupported",
                f"{fam.framework} {line} is older than {older[0]}, whose end of patch already passed ({older[1].eop})",
                {"line": line, "older_than": older[0], "eop": older[1].eop.isoformat()},
            )
        )
    elif engine.framework_has_dates(fam):
        tally.final = case.result(
            "unknown",
            Reason(
                "VERSION_UNKNOWN",
                "unknown",
                f"{fam.framework} {line} is in no support table of the catalog",
                {"line": line},
            ),
        )
    else:
        tally.reasons.append(
            Reason(
                "EOP_UNPUBLISHED",
                "info",
                f"AWS publishes no end-of-patch date for {fam.framework}; judged on releases and dependencies",
            )
        )


def _family_current(case: Case, tally: Tally) -> None:
    fam, line, dates = case.fam, case.line, case.dates
    assert dates is not None
    fw_line = case.engine.catalog.frameworks[fam.framework].lines[line]
    table_eop = case.engine.eop_of(fw_line, fam.framework, line, "").eop
    tally.reasons.append(
        Reason(
            "EOP_FAMILY_CURRENT",
            "info",
            f"{fam.name} has no end-of-patch dates of its own and {line} is the newest {fam.framework} "
            f"line AWS releases in it: maintained while AWS releases it; the {fam.framework} table's date "
            f"({table_eop}) applies once a newer {fam.name} line exists",
            {"line": line, "framework_eop": iso_date(table_eop), "source": dates.source, "rule": dates.rule},
        )
    )


def _dated(case: Case, tally: Tally, dates: Eop) -> None:
    fam, line, engine = case.fam, case.line, case.engine
    assert dates.eop is not None
    facts = {"eop": dates.eop.isoformat(), "ga": iso_date(dates.ga), "source": dates.source, "rule": dates.rule}
    whose = ""
    if fam.group is None and dates.source.endswith("(framework table)"):
        whose = f" (the {fam.framework} table's date: {fam.name} has none of its own)"
    if case.as_of > dates.eop:
        tally.reasons.append(
            Reason(
                "EOP_PASSED", "unsupported", f"end of patch for {fam.framework} {line} was {dates.eop}{whose}", facts
            )
        )
    elif dates.eop <= engine.warn_until:
        days = (dates.eop - case.as_of).days
        tally.reasons.append(
            Reason(
                "EOP_SOON",
                "expiring",
                f"end of patch for {fam.framework} {line} is {dates.eop} (in {days} days){whose}",
                facts,
            )
        )
        tally.expires(dates.eop, engine.warn_days, warning=True)
    else:
        tally.expires(dates.eop, engine.warn_days, warning=False)
    if dates.rule == "major-version-exception":
        tally.reasons.append(
            Reason(
                "MAJOR_VERSION_EXCEPTION",
                "info",
                f"last {fam.framework} {case.version.release[0]}.x line: supported two years from release "
                "or six months after upstream drops it",
                facts,
            )
        )


def dependencies(case: Case, tally: Tally) -> None:
    """Python and the OS: unsupported past their end of support, expiring before it."""
    engine, ident = case.engine, case.ident
    for kind, table, key in (
        ("PYTHON", engine.catalog.python_eos, ident.python),
        ("OS", engine.catalog.os_eos, ident.os),
    ):
        if not key or key not in table:
            continue
        eos = table[key]
        label = f"Python {key}" if kind == "PYTHON" else key
        facts = {kind.lower(): key, "end_of_support": eos.isoformat()}
        if case.as_of > eos:
            tally.reasons.append(
                Reason(f"{kind}_EOS", "unsupported", f"{label} reached end of support on {eos}", facts)
            )
        elif eos <= engine.warn_until:
            tally.reasons.append(
                Reason(f"{kind}_EOS_SOON", "expiring", f"{label} reaches end of support on {eos}", facts)
            )
            tally.expires(eos, engine.warn_days, warning=True)
        else:
            tally.expires(eos, engine.warn_days, warning=False)


def releases(case: Case, tally: Tally) -> None:
    """Latest-only frameworks: the newest release alone; others: the newest patch and build."""
    if case.fam.latest_only and case.newest is not None:
        _latest_only(case, tally, case.newest)
    else:
        _superseded(case, tally)


def _latest_only(case: Case, tally: Tally, newest: Image) -> None:
    ident = case.ident
    if ident.order < newest.order and not (ident.image is None and ident.version > newest.version):
        text = f"only the newest {case.fam.framework} release is supported; newest is {newest.version} ({newest.tag})"
        tally.add(
            Reason("NOT_LATEST", "unsupported", text, {"newest": str(newest.version), "newest_tag": newest.tag}), newest
        )


def _superseded(case: Case, tally: Tally) -> None:
    fam, version, line, ident = case.fam, case.version, case.line, case.ident
    same_line = [i for i in case.candidates if i.line == line]
    newer_patch = [i for i in same_line if i.version > version]
    newer_build = [i for i in same_line if i.version.key == version.key and i.order > ident.order]
    newest = case.newest
    if newer_patch:
        top = max(newer_patch, key=lambda i: i.order)
        text = f"{fam.framework} {version} is superseded by {top.version} ({top.tag}) and no longer patched"
        tally.add(Reason("NEWER_PATCH", "outdated", text, {"newer": str(top.version), "newer_tag": top.tag}), top)
    elif newer_build:
        top = max(newer_build, key=lambda i: i.order)
        text = f"a newer image of {fam.framework} {version} exists ({top.tag}); this build is no longer patched"
        tally.add(Reason("NEWER_BUILD", "outdated", text, {"newer_tag": top.tag}), top)
    elif case.dates is None and newest is not None and newest.line != line and newest.version > version:
        text = f"a newer {fam.framework} line exists ({newest.version}, {newest.tag})"
        facts = {"newer": str(newest.version), "newer_tag": newest.tag}
        tally.add(Reason("NEWER_LINE_AVAILABLE", "advisory", text, facts), newest)
    elif (
        ident.image is None and ident.build is not None and len(ident.build) > 1 and not any(i.build for i in same_line)
    ):
        tally.reasons.append(
            Reason(
                "BUILD_UNVERIFIED",
                "info",
                f"the catalog does not list release builds of {fam.framework} {line}; "
                "a newer build may exist (floating tags always point to it)",
            )
        )


def retired_repository(case: Case, tally: Tally) -> None:
    """Still in the release data, but no release after its last line."""
    retired = case.engine.retired_line(case.fam, case.line)
    if retired is not None and (retired.last_eop is None or case.as_of > retired.last_eop):
        tally.reasons.append(case.engine.retired_reason(retired))


def advisories(case: Case, tally: Tally) -> None:
    engine, fam = case.engine, case.fam
    for adv in engine.catalog.advisories:
        if engine.advisory_matches(adv, fam, case.version, case.ident.os, (case.ref.tag,) if case.ref.tag else ()):
            tally.reasons.append(Reason(adv.code, adv.verdict or "advisory", adv.message, {"advisory": adv.id}))
            target = fam.by_tag.get(adv.recommend_tag) if adv.recommend_tag else None
            if target is not None and engine.healthy(fam, target):
                tally.recommend_tag = target.tag
                return


RULES: tuple[Rule, ...] = (
    read_by_grammar,
    newer_than_catalog,
    end_of_patch,
    dependencies,
    releases,
    retired_repository,
    advisories,
)
"""In order: a rule that sets ``Tally.final`` ends the judgement there."""


def line_key(line: str) -> tuple[int, ...]:
    """A line's release numbers (``"2.10"`` -> ``(2, 10)``; ``()`` when it is not a version)."""
    try:
        return parse_version(line).release
    except ValueError:
        return ()


def _next_line_above(lines: Mapping[str, Line], key: str) -> tuple[str, Line] | None:
    """The nearest catalogued line newer than ``key`` (its end of patch bounds ``key``'s)."""
    mine = line_key(key)
    above = sorted((line_key(k), k) for k in lines if mine and line_key(k) > mine)
    return (above[0][1], lines[above[0][1]]) if above else None
