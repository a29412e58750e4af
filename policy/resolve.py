"""Tag -> identity: which family, framework version and image variant a tag names.

Order of attempts:

1. **Exact**: the catalog lists the tag (a floating tag lands on the newest image that
   carries it, because families keep their images oldest first).
2. **Release stem**: ``<stem>-vX.Y`` where the catalog knows other builds of ``<stem>``:
   ``-v1`` floats to the newest ``v1.x``; an unlisted ``v1.2`` is placed among the builds
   it sits between.
3. **Grammar**: :func:`policy.tags.parse_tag` reads version, accelerator, python, os,
   platform and components from the tokens; the family is the one of the repository whose
   flavour (``server``, ``omni``, ``devel``…) the tag carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policy.catalog import Family, Image
from policy.catalog.model import _num
from policy.tags import TagInfo, parse_tag
from policy.version import Version, parse_version

__all__ = ["Identity", "Unresolved", "resolve_tag"]


@dataclass(frozen=True, slots=True)
class Identity:
    family: Family
    version: Version
    accelerator: str | None
    platform: str
    python: str | None
    os: str | None
    flavor: str
    extras: tuple[tuple[str, str], ...]
    build: tuple[int, ...] | None
    image: Image | None
    """The catalog image when the tag is listed (or a stem resolves to one)."""
    how: str
    """``exact``, ``stem`` or ``grammar``."""
    variant: tuple[str | None, str, str, tuple[str, ...]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "variant", (self.accelerator, self.platform, self.flavor, tuple(k for k, _ in self.extras))
        )

    @property
    def order(self) -> tuple[object, ...]:
        if self.image is not None:
            return self.image.order
        return (self.version.key, tuple(_num(v) for _, v in self.extras), self.build or ())


@dataclass(frozen=True, slots=True)
class Unresolved:
    code: str
    message: str
    family: Family | None = None


def _from_image(img: Image, fam: Family, how: str) -> Identity:
    return Identity(
        family=fam,
        version=img.version,
        accelerator=img.accelerator,
        platform=img.platform,
        python=img.python,
        os=img.os,
        flavor=img.flavor,
        extras=img.extras,
        build=img.build,
        image=img,
        how=how,
    )


def resolve_tag(families: tuple[Family, ...], tag: str) -> Identity | Unresolved:
    # 1. exact
    best: tuple[Image, Family] | None = None
    for fam in families:
        img = fam.by_tag.get(tag)
        if img is not None and (best is None or img.order > best[0].order):
            best = (img, fam)
    if best is not None:
        return _from_image(best[0], best[1], "exact")
    if tag == "latest":
        return Unresolved("TAG_LATEST", "'latest' floats to whatever was pushed last; the version cannot be known")
    info = parse_tag(tag)
    # 2. release stem
    if info.build is not None:
        stem_hit = _by_stem(families, info)
        if stem_hit is not None:
            return stem_hit
    # 3. grammar
    return _by_grammar(families, info)


def _by_stem(families: tuple[Family, ...], info: TagInfo) -> Identity | Unresolved | None:
    assert info.build is not None
    for fam in families:
        known = fam.by_stem.get(info.stem)
        if not known:
            continue
        if len(info.build) == 1:
            # "-v2": the newest v2.x
            major = [bi for bi in known if bi[0][0] == info.build[0]]
            if major:
                return _from_image(major[-1][1], fam, "stem")
            if info.build[0] > known[-1][0][0]:
                return Unresolved(
                    "NEWER_THAN_CATALOG",
                    f"release v{info.build_text} of {info.stem!r} is newer than the catalog knows "
                    f"(newest v{_b(known[-1][0])}); refresh the catalog",
                    fam,
                )
        newest_build = known[-1][0]
        if info.build > newest_build:
            return Unresolved(
                "NEWER_THAN_CATALOG",
                f"release v{info.build_text} of {info.stem!r} is newer than the catalog knows "
                f"(newest v{_b(newest_build)}); refresh the catalog",
                fam,
            )
        below = [img for b, img in known if b <= info.build]
        base = below[-1] if below else known[0][1]
        ident = _from_image(base, fam, "stem")
        # an unlisted build between listed ones: same line as its neighbour, its own build
        return Identity(
            family=fam,
            version=base.version,
            accelerator=ident.accelerator,
            platform=ident.platform,
            python=ident.python,
            os=ident.os,
            flavor=ident.flavor,
            extras=ident.extras,
            build=info.build,
            image=None,
            how="stem",
        )
    return None


def _b(build: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in build)


def _pick_family(families: tuple[Family, ...], info: TagInfo) -> Family | None:
    flavor = "-".join(info.words)
    same = [f for f in families if any(img.flavor == flavor for img in f.images)]
    if same:
        return same[0]
    if info.words:
        return None
    return families[0] if len(families) == 1 else None


def _by_grammar(families: tuple[Family, ...], info: TagInfo) -> Identity | Unresolved:
    fam = _pick_family(families, info)
    if fam is None:
        return Unresolved("TAG_UNRECOGNISED", f"tag {info.tag!r} matches no image line of this repository")
    version = info.version
    extras = dict(info.extras)
    if fam.version_token is not None:
        token_version = extras.pop(fam.version_token, None)
        if token_version is None:
            return Unresolved("TAG_UNRECOGNISED", f"tag {info.tag!r} carries no {fam.version_token} version", fam)
        version = parse_version(token_version)
    if version is None:
        return Unresolved("TAG_UNRECOGNISED", f"tag {info.tag!r} carries no framework version", fam)
    accelerators = {img.accelerator for img in fam.images}
    accelerator = info.accelerator or (next(iter(accelerators)) if len(accelerators) == 1 else None)
    return Identity(
        family=fam,
        version=version,
        accelerator=accelerator,
        platform=info.platform or fam.default_platform,
        python=info.python,
        os=info.os,
        flavor="-".join(info.words),
        extras=tuple(sorted(extras.items())),
        build=info.build,
        image=None,
        how="grammar",
    )
