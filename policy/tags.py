"""The tolerant grammar for DLC tags the catalog does not list.

A DLC tag is a ``-``-separated list of tokens. Each token is recognised on its own:

=================  ==========================================  ====================
token              examples                                    becomes
=================  ==========================================  ====================
version            ``2.9.0``, ``0.36.0``, ``b9522``, ``24.09``   ``version``
package release    ``0`` right after ``3.2``                   ``version`` ``3.2-0``
accelerator        ``cpu``, ``gpu``, ``neuronx``, ``cuda``       ``accelerator``
python             ``py312``, ``py3``                            ``python`` ``3.12``
cuda               ``cu130``                                   ``cuda``
os                 ``ubuntu22.04``, ``amzn2023``, ``al2``        ``os``
platform           ``ec2``, ``sagemaker``                      ``platform``
release (build)    ``v1``, ``v1.8``                            ``build``
component          ``transformers4.55.4``, ``sdk2.30.0``,      ``extras``
                   ``lmi28.0.0``, ``tei1.9.3``
word               ``server``, ``serve``, ``ml``, ``omni``     ``words``
=================  ==========================================  ====================

The ``stem`` is the tag without a trailing release token: tags that share a stem are
builds of one image line, so ``…-ec2-v1.8`` and ``…-ec2-v1.9`` compare by build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from policy.version import InvalidVersion, Version, parse_version

__all__ = ["TagInfo", "parse_tag"]

_VERSION_TOKEN = re.compile(r"^(?:\d+(?:\.\d+)+(?:rc\d+)?|b\d{3,}|\d+)$")
_PY = re.compile(r"^py(\d)(\d*)$")
_CUDA = re.compile(r"^cu(\d{2,3})$")
_OS = re.compile(r"^(ubuntu\d\d\.\d\d|amzn2023|amzn2|al2023|al2)$")
_BUILD = re.compile(r"^v(\d+(?:\.\d+)*)$")
_COMPONENT = re.compile(r"^([a-z][a-z_]*?)(\d+(?:\.\d+)+(?:rc\d+)?)$")
_ACCELERATORS = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "neuronx": "neuronx", "neuron": "neuron", "inf": "neuron"}
_PLATFORMS = {"ec2": "ec2", "sagemaker": "sagemaker"}
_OS_ALIASES = {"al2023": "amzn2023", "al2": "amzn2"}


@dataclass(frozen=True, slots=True)
class TagInfo:
    tag: str
    version: Version | None = None
    accelerator: str | None = None
    python: str | None = None
    cuda: str | None = None
    os: str | None = None
    platform: str | None = None
    build: tuple[int, ...] | None = None
    stem: str = ""
    extras: dict[str, str] = field(default_factory=dict)
    words: tuple[str, ...] = ()

    @property
    def build_text(self) -> str | None:
        return None if self.build is None else ".".join(str(b) for b in self.build)


def parse_tag(tag: str) -> TagInfo:
    """Read what a tag says about its image. Never raises: unknown tokens become words."""
    tokens = tag.split("-")
    version: Version | None = None
    accelerator = python = cuda = os_ = platform = None
    build: tuple[int, ...] | None = None
    extras: dict[str, str] = {}
    words: list[str] = []
    stem = tag
    i = 0
    n = len(tokens)
    while i < n:
        tok = tokens[i]
        low = tok.lower()
        if version is None and not words and not extras and accelerator is None and _VERSION_TOKEN.match(low):
            text = low
            # SageMaker algorithm images: "3.2-0", "1.4-2-py312" (a package release number)
            if i + 1 < n and tokens[i + 1].isdigit() and "." in low:
                text = f"{low}-{tokens[i + 1]}"
                i += 1
            try:
                version = parse_version(text)
            except InvalidVersion:
                words.append(low)
        elif low in _ACCELERATORS and accelerator is None:
            accelerator = _ACCELERATORS[low]
        elif (m := _PY.match(low)) is not None and python is None:
            python = m.group(1) + ("." + m.group(2) if m.group(2) else "")
        elif _CUDA.match(low) and cuda is None:
            cuda = low
            accelerator = accelerator or "gpu"
        elif _OS.match(low) and os_ is None:
            os_ = _OS_ALIASES.get(low, low)
        elif low in _PLATFORMS and platform is None:
            platform = _PLATFORMS[low]
        elif (m := _BUILD.match(low)) is not None and i == n - 1:
            build = tuple(int(p) for p in m.group(1).split("."))
            stem = "-".join(tokens[:-1])
        elif (m := _COMPONENT.match(low)) is not None:
            extras[m.group(1)] = m.group(2)
        else:
            words.append(low)
        i += 1
    return TagInfo(
        tag=tag,
        version=version,
        accelerator=accelerator,
        python=python,
        cuda=cuda,
        os=os_,
        platform=platform,
        build=build,
        stem=stem,
        extras=extras,
        words=tuple(words),
    )
