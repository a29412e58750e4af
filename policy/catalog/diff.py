"""What changed between two catalogs: lines added or removed, dates moved, images published."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from policy.catalog.model import Catalog, Line

__all__ = ["Change", "diff_catalogs"]


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    """``line-added``, ``line-removed``, ``eop-moved``, ``ga-moved``, ``images-added``,
    ``images-removed``, ``family-added``, ``family-removed``, ``dependency-moved``."""
    subject: str
    old: str | None = None
    new: str | None = None

    def __str__(self) -> str:
        if self.old is not None and self.new is not None:
            return f"{self.kind:<17} {self.subject}: {self.old} -> {self.new}"
        value = self.new if self.new is not None else self.old
        return f"{self.kind:<17} {self.subject}" + (f": {value}" if value else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "old": self.old, "new": self.new}


def _d(value: dt.date | None) -> str:
    return value.isoformat() if value else "none"


def _lines(subject: str, old: dict[str, Line], new: dict[str, Line], out: list[Change]) -> None:
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        name = f"{subject} {key}"
        if a is None and b is not None:
            out.append(Change("line-added", name, None, f"GA {_d(b.ga)}, EOP {_d(b.eop)}"))
        elif b is None and a is not None:
            out.append(Change("line-removed", name, f"GA {_d(a.ga)}, EOP {_d(a.eop)}", None))
        elif a is not None and b is not None:
            if a.eop != b.eop:
                out.append(Change("eop-moved", name, _d(a.eop), _d(b.eop)))
            if a.ga != b.ga:
                out.append(Change("ga-moved", name, _d(a.ga), _d(b.ga)))


def diff_catalogs(old: Catalog, new: Catalog) -> list[Change]:
    out: list[Change] = []
    for name in sorted(old.frameworks.keys() | new.frameworks.keys()):
        a, b = old.frameworks.get(name), new.frameworks.get(name)
        _lines(name, dict(a.lines) if a else {}, dict(b.lines) if b else {}, out)
    for name in sorted(old.families.keys() | new.families.keys()):
        fa, fb = old.families.get(name), new.families.get(name)
        if fa is None and fb is not None:
            out.append(Change("family-added", name, None, f"{fb.repository} ({fb.framework})"))
            continue
        if fb is None and fa is not None:
            out.append(Change("family-removed", name, f"{fa.repository} ({fa.framework})", None))
            continue
        assert fa is not None and fb is not None
        _lines(f"{name} (family)", fa.lines, fb.lines, out)
        ta = {t for img in fa.images for t in img.tags}
        tb = {t for img in fb.images for t in img.tags}
        if tb - ta:
            out.append(Change("images-added", f"{fb.repository}", None, ", ".join(sorted(tb - ta))))
        if ta - tb:
            out.append(Change("images-removed", f"{fa.repository}", ", ".join(sorted(ta - tb)), None))
    for label, da, db in (("python", old.python_eos, new.python_eos), ("os", old.os_eos, new.os_eos)):
        for key in sorted(da.keys() | db.keys()):
            if da.get(key) != db.get(key):
                out.append(Change("dependency-moved", f"{label} {key}", _d(da.get(key)), _d(db.get(key))))
    return out
