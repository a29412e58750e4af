"""Framework versions as DLC tags spell them, ordered by ``packaging`` (PEP 440).

Shapes seen: ``2.9.0``, ``2.10``, ``0.22.1rc0``, ``0.19.1+amzn2023.6ef1efd5`` (local part),
``3.2-0`` (SageMaker algorithm package release: a PEP 440 post-release), ``b9522`` (llama.cpp
build), ``24.09``. All but the llama.cpp build are PEP 440 versions, and
:class:`packaging.version.Version` orders them: release numbers, pre-releases before the final
release, post-releases after it. What this module adds is thin:

- the spellings a DLC tag may use (narrower than PEP 440, so ``v2`` or ``1!2.0`` in a tag are
  not versions: the tag grammar depends on that);
- ``b9522`` read as build 9522;
- the local part carried but not ordered (``+amzn2023.…`` names a build, not a newer version);
- a release spelled shorter sorts first among equals (``2.10`` before ``2.10.0``: PEP 440 calls
  them equal, a floating tag and its pinned patch are not the same image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from packaging.version import InvalidVersion as _PackagingInvalid
from packaging.version import Version as Pep440

__all__ = ["InvalidVersion", "Version", "parse_version"]

_SPELLING = re.compile(
    r"^(?P<b>b)?(?P<release>\d+(?:\.\d+)*)"
    r"(?:(?:rc|a|b|alpha|beta|dev)\d+)?"
    r"(?:-(?P<pkg>\d+))?"
    r"(?:\+(?P<local>[A-Za-z0-9.]+))?$"
)


class InvalidVersion(ValueError):
    pass


@dataclass(frozen=True, slots=True, order=False)
class Version:
    text: str
    pep: Pep440 = field(repr=False)
    """The public part (a llama.cpp build as its number), for ordering."""
    local: str | None = field(default=None, compare=False)
    key: tuple[Pep440, int] = field(init=False, compare=False, repr=False)
    line: str = field(init=False, compare=False, repr=False)
    """The support line: ``major.minor`` (or the whole release when it has one part)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.pep, len(self.pep.release)))
        object.__setattr__(self, "line", ".".join(str(p) for p in self.release[:2]))

    @property
    def release(self) -> tuple[int, ...]:
        return self.pep.release

    @property
    def pkg(self) -> int | None:
        """The package release of ``3.2-0`` (PEP 440's post-release number)."""
        return self.pep.post

    @property
    def public(self) -> str:
        """The version without its local part."""
        return self.text.split("+", 1)[0]

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key

    def __le__(self, other: Version) -> bool:
        return self.key <= other.key

    def __gt__(self, other: Version) -> bool:
        return self.key > other.key

    def __ge__(self, other: Version) -> bool:
        return self.key >= other.key

    def __str__(self) -> str:
        return self.text


def parse_version(text: str) -> Version:
    m = _SPELLING.match(text)
    if m is None:
        raise InvalidVersion(f"{text!r} is not a version (expected e.g. 2.9.0, 3.2-0, 0.22.1rc0)")
    public = text.split("+", 1)[0].removeprefix("b") if m.group("b") else text.split("+", 1)[0]
    try:
        pep = Pep440(public)
    except _PackagingInvalid as exc:  # the spelling check above lets through only PEP 440 forms
        raise InvalidVersion(f"{text!r} is not a version: {exc}") from None
    return Version(text, pep, m.group("local"))
