"""Framework versions as DLC tags spell them.

Shapes seen: ``2.9.0``, ``2.10``, ``0.22.1rc0``, ``0.19.1+amzn2023.6ef1efd5`` (local part),
``3.2-0`` (SageMaker algorithm package release), ``b9522`` (llama.cpp build), ``24.09``.
A :class:`Version` orders like PEP 440 for the parts these share: release numbers, then
pre-releases before the final release, then the package release; the local part is
carried but does not order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["InvalidVersion", "Version", "parse_version"]

_VERSION_RE = re.compile(
    r"^(?P<b>b)?(?P<release>\d+(?:\.\d+)*)"
    r"(?:(?P<pre>rc|a|b|alpha|beta|dev)(?P<pren>\d+))?"
    r"(?:-(?P<pkg>\d+))?"
    r"(?:\+(?P<local>[A-Za-z0-9.]+))?$"
)
_PRE_ORDER = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "rc": 3}


class InvalidVersion(ValueError):
    pass


@dataclass(frozen=True, slots=True, order=False)
class Version:
    text: str
    release: tuple[int, ...]
    pre: tuple[int, int] | None = None
    pkg: int | None = None
    local: str | None = field(default=None, compare=False)
    key: tuple[tuple[int, ...], tuple[int, int], int] = field(init=False, compare=False, repr=False)
    line: str = field(init=False, compare=False, repr=False)
    """The support line: ``major.minor`` (or the whole release when it has one part)."""

    def __post_init__(self) -> None:
        pre = self.pre if self.pre is not None else (9, 0)
        object.__setattr__(self, "key", (self.release, pre, self.pkg if self.pkg is not None else -1))
        object.__setattr__(self, "line", ".".join(str(p) for p in self.release[:2]))

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
    m = _VERSION_RE.match(text)
    if m is None:
        raise InvalidVersion(f"{text!r} is not a version (expected e.g. 2.9.0, 3.2-0, 0.22.1rc0)")
    release = tuple(int(p) for p in m.group("release").split("."))
    pre = None
    if m.group("pre"):
        pre = (_PRE_ORDER[m.group("pre")], int(m.group("pren")))
    pkg = int(m.group("pkg")) if m.group("pkg") else None
    return Version(text, release, pre, pkg, m.group("local"))


def line_of(text: str) -> str:
    """``major.minor`` of a version string (``"2.9.1"`` -> ``"2.9"``)."""
    return parse_version(text).line
