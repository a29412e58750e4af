"""OCI / Docker image references.

The grammar is the one of the CNCF distribution project (``reference.go``)::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ domain "/" ] path-component [ "/" path-component ]*
    domain      := host [ ":" port ]
    host        := domain-name | IPv4 | "[" IPv6 "]"
    path-comp   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag         := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex       (sha256 needs exactly 64 lowercase hex)

Docker's normalisation applies: a first component that contains neither ``.`` nor ``:``
and is not ``localhost`` is part of the path on ``docker.io``, and a one-component path
on Docker Hub gains ``library/``.

The fast path is one compiled regular expression; only a string that fails it is walked
again to say precisely what is wrong and where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_REGISTRY", "REFERENCE_MAX", "ImageReference", "InvalidReference", "parse_reference"]

DEFAULT_REGISTRY = "docker.io"
NAME_MAX = 255
TAG_MAX = 128
REFERENCE_MAX = NAME_MAX + 1 + TAG_MAX + 1 + len("sha512:") + 128
"""The longest string the grammar can accept: a name, a tag and a sha512 digest at their limits.
Anything longer is refused before any work (and never reaches a cache)."""

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST_ALGO = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*"
_DIGEST = rf"{_DIGEST_ALGO}:[0-9a-fA-F]{{32,}}"

_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*))"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_PATH_COMPONENT_RE = re.compile(rf"^{_PATH_COMPONENT}$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_DIGEST_ALGO_RE = re.compile(rf"^{_DIGEST_ALGO}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")


class InvalidReference(ValueError):
    """A string that is not a valid image reference; ``reason`` says why and where."""

    def __init__(self, reference: str, reason: str, position: int | None = None) -> None:
        self.reference = reference
        self.reason = reason
        self.position = position
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(f"invalid image reference {reference!r}: {reason}{where}")


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed, normalised image reference. Build one with :func:`parse_reference`."""

    registry: str
    """Registry host (and port), lower-cased; ``docker.io`` when the string names none."""
    path: str
    """Repository path inside the registry, e.g. ``deep-learning-containers/pytorch-training``."""
    tag: str | None
    digest: str | None
    original: str

    @property
    def repository(self) -> str:
        """The last path component: the repository's own name."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.path}"

    def with_tag(self, tag: str) -> str:
        """The same registry and repository with another tag (and no digest)."""
        return f"{self.name}:{tag}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def _split_domain(name: str) -> tuple[str | None, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return None, name


def _normalise(domain: str | None, path: str) -> tuple[str, str]:
    if domain is None:
        registry = DEFAULT_REGISTRY
    else:
        registry = domain.lower()
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return registry, path


def parse_reference(text: str) -> ImageReference:
    """Parse ``text`` or raise :class:`InvalidReference` saying exactly what is wrong."""
    if not isinstance(text, str):
        raise InvalidReference(repr(text)[:80], f"expected a string, got {type(text).__name__}")
    if len(text) > REFERENCE_MAX:
        raise InvalidReference(
            text[:64] + "…", f"reference is {len(text)} characters long (at most {REFERENCE_MAX} can be valid)"
        )
    m = _REFERENCE_RE.match(text)
    if m is None:
        _explain(text)
        raise InvalidReference(text, "does not match the reference grammar")  # pragma: no cover
    name = m.group("name")
    if len(name) > NAME_MAX:
        raise InvalidReference(text, f"repository name is {len(name)} characters long (at most {NAME_MAX})")
    domain, path = _split_domain(name)
    if domain is not None and "." not in domain and ":" not in domain and domain != "localhost":
        # Only an upper-case letter made Docker read this component as a host.
        raise InvalidReference(text, f"repository path component {domain!r} must be lowercase", 0)
    if domain != m.group("domain") and not all(_PATH_COMPONENT_RE.match(c) for c in path.split("/")):
        _explain(text)
    digest = m.group("digest")
    if digest is not None:
        _check_digest(text, digest, text.index("@") + 1)
    registry, path = _normalise(domain, path)
    return ImageReference(registry, path, m.group("tag"), digest, text)


def _check_digest(text: str, digest: str, pos: int) -> None:
    algo, _, hexpart = digest.partition(":")
    if algo == "sha256" and len(hexpart) != 64:
        raise InvalidReference(text, f"sha256 digest must have 64 hex digits, got {len(hexpart)}", pos)
    if algo == "sha512" and len(hexpart) != 128:
        raise InvalidReference(text, f"sha512 digest must have 128 hex digits, got {len(hexpart)}", pos)
    if algo in ("sha256", "sha512") and hexpart != hexpart.lower():
        raise InvalidReference(text, f"{algo} digest must be lowercase hex", pos + len(algo) + 1)


def _explain(text: str) -> None:
    """Walk a string the fast path rejected and raise the most precise error found."""
    if text == "":
        raise InvalidReference(text, "empty string")
    if text != text.strip():
        raise InvalidReference(text, "leading or trailing white space", 0 if text[0].isspace() else len(text) - 1)
    for i, ch in enumerate(text):
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) > 0x7E:
            raise InvalidReference(text, f"character {ch!r} is not allowed", i)
    rest, at, digest = text.partition("@")
    if at:
        _explain_digest(text, rest, digest)
    # separate a tag: the last ':' after the last '/'
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    name, tag = rest, None
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1 :]
    if tag is not None:
        _explain_tag(text, tag, len(name) + 1)
    if name == "":
        raise InvalidReference(text, "no repository name", 0)
    _explain_name(text, name)
    raise InvalidReference(text, "does not match the reference grammar")


def _explain_digest(text: str, rest: str, digest: str) -> None:
    if "@" in digest:
        raise InvalidReference(text, "more than one '@'", len(rest) + 1 + digest.index("@"))
    algo, sep, hexpart = digest.partition(":")
    dpos = len(rest) + 1
    if not sep:
        raise InvalidReference(text, "digest must be ALGORITHM:HEX, e.g. sha256:<64 hex digits>", dpos)
    if not _DIGEST_ALGO_RE.match(algo):
        raise InvalidReference(text, f"digest algorithm {algo!r} is not valid", dpos)
    if not hexpart or not _HEX_RE.match(hexpart):
        raise InvalidReference(text, "digest must be hexadecimal", dpos + len(algo) + 1)
    if len(hexpart) < 32:
        raise InvalidReference(text, "digest is shorter than 32 hex digits", dpos + len(algo) + 1)
    _check_digest(text, digest, dpos)


def _explain_tag(text: str, tag: str, tpos: int) -> None:
    if tag == "":
        raise InvalidReference(text, "empty tag after ':'", tpos)
    if len(tag) > TAG_MAX:
        raise InvalidReference(text, f"tag is {len(tag)} characters long (at most {TAG_MAX})", tpos)
    if not _TAG_RE.match(tag):
        bad = next((i for i, c in enumerate(tag) if not (c.isalnum() or c in "_.-")), 0)
        what = (
            "tag must start with a letter, digit or '_'"
            if bad == 0
            else f"character {tag[bad]!r} is not allowed in a tag"
        )
        raise InvalidReference(text, what, tpos + bad)


def _explain_name(text: str, name: str) -> None:
    domain, path = _split_domain(name)
    offset = 0
    if domain is not None:
        if not _DOMAIN_RE.match(domain):
            raise InvalidReference(text, f"registry host {domain!r} is not a valid host[:port]", 0)
        offset = len(domain) + 1
    for comp in path.split("/"):
        if comp == "":
            raise InvalidReference(text, "empty path component ('//' or a trailing '/')", offset)
        if not _PATH_COMPONENT_RE.match(comp):
            if comp != comp.lower():
                raise InvalidReference(text, f"repository path component {comp!r} must be lowercase", offset)
            raise InvalidReference(
                text,
                f"repository path component {comp!r} must be lowercase letters and digits "
                "separated by '.', '_', '__' or '-'",
                offset,
            )
        offset += len(comp) + 1
