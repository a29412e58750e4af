"""Which image to move to: the newest image of the same variant that is still maintained.

A rule may point at an image (the newest patch, build or release); it is taken when it is
still maintained on the engine's date, else the newest maintained image of the variant. An
image is never recommended in place of itself or of an older one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policy.catalog import Family, Image
from policy.resolve import Identity

if TYPE_CHECKING:
    from policy.evaluate import Engine

__all__ = ["candidates", "healthy", "newest_healthy", "recommend"]


def candidates(ident: Identity) -> list[Image]:
    """The family's images that could replace this one: the same variant, else the same
    accelerator, platform and flavour, else the same accelerator and flavour."""
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


def healthy(engine: Engine, fam: Family, img: Image) -> bool:
    """Whether ``img`` is still maintained on the engine's date: its line's end of patch, its
    Python and OS, and no advisory that makes it unsupported."""
    eop = engine.line_dates(fam, img.line)
    if eop is not None and eop.eop is not None and engine.as_of > eop.eop:
        return False
    if eop is None and not fam.latest_only and engine.framework_has_dates(fam):
        return False
    for table, key in ((engine.catalog.python_eos, img.python), (engine.catalog.os_eos, img.os)):
        d = table.get(key) if key else None
        if d is not None and engine.as_of > d:
            return False
    return not any(
        a.verdict == "unsupported" and engine.advisory_matches(a, fam, img.version, img.os, img.tags)
        for a in engine.catalog.advisories
    )


def newest_healthy(engine: Engine, fam: Family, images: list[Image]) -> Image | None:
    for img in sorted(images, key=lambda i: i.order, reverse=True):
        if healthy(engine, fam, img):
            return img
    return None


def recommend(
    engine: Engine, ident: Identity, tag: str | None, pointed: Image | None
) -> tuple[Image | None, str | None]:
    """The maintained image found (``None``: the variant has none) and the tag to recommend
    (``None`` when that image is this one, or older)."""
    fam = ident.family
    found = pointed if pointed is not None and healthy(engine, fam, pointed) else None
    if found is None:
        found = newest_healthy(engine, fam, candidates(ident))
    if found is not None and found is not ident.image and found.tag != tag and found.order >= ident.order:
        return found, found.tag
    return found, None
