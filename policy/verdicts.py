"""The verdict vocabulary: what judging one image gives (:class:`Result`, with its
:class:`Reason` list), how verdicts rank, and what a registry answer may still change.

Verdicts, most severe first: ``unsupported``, ``unknown``, ``outdated``, ``expiring``,
``supported``; and outside that scale ``invalid`` and ``not-dlc``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANACONDA_NOTICE",
    "NOTICES",
    "PENDING",
    "RANK",
    "SEVERITY",
    "Eop",
    "Reason",
    "Result",
    "iso_date",
    "pending",
    "worst",
]

SEVERITY = {"unsupported": 5, "unknown": 4, "outdated": 3, "expiring": 2, "supported": 1, "advisory": 0, "info": 0}
# invalid strings are at least as bad as unknown ones; not-dlc is outside the scale
RANK = {"invalid": 4, "unsupported": 5, "unknown": 4, "outdated": 3, "expiring": 2, "supported": 1, "not-dlc": 0}


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
            "ga": iso_date(self.ga),
            "eop": iso_date(self.eop),
            "python": self.python,
            "os": self.os,
            "accelerator": self.accelerator,
            "platform": self.platform,
            "reasons": [r.to_dict() for r in self.reasons],
            "recommendation": self.recommendation,
            "next_change": iso_date(self.next_change),
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


def iso_date(d: dt.date | None) -> str | None:
    return d.isoformat() if d is not None else None


def worst(results: Iterable[Result]) -> str | None:
    best: Result | None = None
    for r in results:
        if best is None or r.rank > best.rank:
            best = r
    return best.verdict if best is not None else None


@dataclass(frozen=True, slots=True)
class Eop:
    """A release line's dates and where they come from (``rule``: data, ga+365, …)."""

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
