"""What a digest-pinned DLC image is, once a registry has said so. Pure data, no I/O.

A reference such as ``…/pytorch-training@sha256:…`` names no version. The registry knows: the
image's config carries DLC labels (``framework``, ``framework_version``, ``dlc_major_version``,
``dlc_minor_version``, ``device_type``, ``python_version``, ``cuda_version``, ``os_version``,
…), or a tag of the repository points at the digest. :class:`DigestIdentity` records the
answer as a tag, the engine's own currency: a tag found in the registry is used as it is, and
labels are written as the tag they describe, which the tolerant tag grammar then reads.

:class:`DigestBook` keeps those answers (a digest never changes, so neither does its answer),
bounded, least recently used first out, together with the latest failure for each digest still
unknown, so that an ``unknown`` verdict can say why.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DIGEST_RE", "DigestBook", "DigestIdentity", "tag_from_labels"]

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_PLATFORMS = ("sagemaker", "ec2")


@dataclass(frozen=True, slots=True)
class DigestIdentity:
    tag: str
    """The tag the image is judged by."""
    source: str
    """``tag`` (a repository tag points at the digest) or ``labels`` (written from its labels)."""
    labels: tuple[tuple[str, str], ...] = ()
    """The DLC labels read from the image config (empty when found by tag)."""

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "source": self.source, "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DigestIdentity:
        tag, source = raw.get("tag"), raw.get("source")
        labels = raw.get("labels") or {}
        if not isinstance(tag, str) or not tag or source not in ("tag", "labels") or not isinstance(labels, Mapping):
            raise ValueError(f"not a digest identity: {dict(raw)!r}")
        return cls(tag, str(source), tuple(sorted((str(k), str(v)) for k, v in labels.items())))


def _clean(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value or None


def tag_from_labels(labels: Mapping[str, str], framework: str | None = None) -> str | None:
    """The tag a DLC image's labels describe, e.g. ``2.6.0-gpu-py312-cu126-ubuntu22.04-ec2``,
    or ``None`` when the labels are not DLC labels (no ``framework_version``) or name another
    framework than ``framework`` (the repository's, when known)."""
    version = _clean(labels.get("framework_version"))
    if version is None or not re.fullmatch(r"\d+(\.\d+)*", version):
        return None
    named = _clean(labels.get("framework"))
    if framework is not None and named is not None and named.replace("-", "") != framework.lower().replace("-", ""):
        return None
    parts = [version]
    device = _clean(labels.get("device_type"))
    if device:
        parts.append(device)
    python = _clean(labels.get("python_version"))
    if python:
        parts.append(python if python.startswith("py") else "py" + python.replace(".", ""))
    cuda = _clean(labels.get("cuda_version"))
    if cuda and device == "gpu":
        parts.append(cuda if cuda.startswith("cu") else "cu" + cuda.replace(".", ""))
    os_version = _clean(labels.get("os_version"))
    if os_version:
        parts.append(os_version)
    platform = _clean(labels.get("platform")) or _clean(labels.get("dlc_platform"))
    major, minor = _clean(labels.get("dlc_major_version")), _clean(labels.get("dlc_minor_version"))
    if platform in _PLATFORMS:
        parts.append(platform)
    if platform == "sagemaker" and major and major.isdigit():
        parts.append(f"v{major}.{minor}" if minor and minor.isdigit() else f"v{major}")
    return "-".join(parts)


class DigestBook:
    """digest → identity, bounded (least recently used out), safe to share between threads."""

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._known: OrderedDict[str, DigestIdentity] = OrderedDict()
        self._failures: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.version = 0
        """Bumped on every new answer: a cache of judgements made without it is stale."""

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, digest: object) -> bool:
        return digest in self._known

    def get(self, digest: str) -> DigestIdentity | None:
        with self._lock:
            hit = self._known.get(digest)
            if hit is not None:
                self._known.move_to_end(digest)
            return hit

    def failure(self, digest: str) -> str | None:
        return self._failures.get(digest)

    def put(self, digest: str, identity: DigestIdentity) -> None:
        with self._lock:
            if self._known.get(digest) == identity:
                return
            self._known[digest] = identity
            self._known.move_to_end(digest)
            self._failures.pop(digest, None)
            while len(self._known) > self.size:
                self._known.popitem(last=False)
            self.version += 1

    def fail(self, digest: str, reason: str) -> None:
        with self._lock:
            self._failures[digest] = reason
            self._failures.move_to_end(digest)
            while len(self._failures) > self.size:
                self._failures.popitem(last=False)

    def items(self) -> Iterator[tuple[str, DigestIdentity]]:
        with self._lock:
            return iter(list(self._known.items()))

    # -- persistence (the caller does the I/O) -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"digests": {d: i.to_dict() for d, i in self.items()}}

    def load(self, raw: Mapping[str, Any]) -> list[str]:
        """Add the entries of ``to_dict()`` output; returns the problems of entries skipped."""
        problems: list[str] = []
        entries = raw.get("digests") if isinstance(raw, Mapping) else None
        if not isinstance(entries, Mapping):
            return ["(document): expected {'digests': {...}}"]
        for digest, value in entries.items():
            if not isinstance(digest, str) or not DIGEST_RE.match(digest):
                problems.append(f"{digest!r}: not a sha256 digest")
                continue
            try:
                self.put(digest, DigestIdentity.from_dict(value if isinstance(value, Mapping) else {}))
            except ValueError as exc:
                problems.append(f"{digest}: {exc}")
        return problems
