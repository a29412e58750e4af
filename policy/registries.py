"""Which registries and repositories hold AWS Deep Learning Containers.

Accounts come from the catalog (its ``registries`` section), mirrors from the policy:
nothing here names an account or a region.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from policy.catalog import Catalog, Family
from policy.reference import ImageReference

__all__ = ["DEFAULT_PULL_THROUGH", "Location", "Mirror", "canonical_name", "ecr_host", "identify"]

_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr(?:\.ecr(?:-fips)?|-ecr)\.(?P<region>[a-z]{2,4}(?:-[a-z]+)+-\d)"
    # the commercial, China, dual-stack, ISO (us-iso, us-isob, us-isof, eu-isoe) and European
    # Sovereign Cloud partitions' domains
    r"\.(?:amazonaws\.com(?:\.cn)?|on\.aws|c2s\.ic\.gov|sc2s\.sgov\.gov|csp\.hci\.ic\.gov|cloud\.adc-e\.uk"
    r"|amazonaws\.eu)$"
)


def ecr_host(host: str) -> tuple[str, str] | None:
    """``(account, region)`` of an ECR registry host, in any partition and dual-stack; ``None``
    for any other host. One pattern for judging images and for fetching ECR tokens."""
    m = _ECR_HOST.match(_without_default_port(host.lower()))
    return (m.group("account"), m.group("region")) if m is not None else None


def _without_default_port(host: str) -> str:
    """``public.ecr.aws:443`` is ``public.ecr.aws``: registries speak HTTPS, whose port is 443."""
    return host[:-4] if host.endswith(":443") else host


def canonical_name(ref: ImageReference) -> str:
    """``host/path`` with the host's default port removed (hosts are already lower case)."""
    return f"{_without_default_port(ref.registry)}/{ref.path}"


@dataclass(frozen=True, slots=True)
class Mirror:
    """A registry path that holds copies of DLC repositories.

    ``prefix`` is ``host[:port][/path]``: ``registry.corp.example/mirror/dlc`` makes
    ``registry.corp.example/mirror/dlc/pytorch-training:…`` a DLC image.

    With ``pull_through`` the prefix is a glob of the repository prefix of an ECR pull-through
    cache rule for the public gallery, in any account and region: ``ecr-public`` makes
    ``<account>.dkr.ecr.<region>.amazonaws.com/ecr-public/deep-learning-containers/vllm:…`` the
    gallery's ``vllm`` repository.
    """

    prefix: str
    pull_through: bool = False

    def repository_of(self, ref: ImageReference) -> str | None:
        if self.pull_through:
            return None
        head, sep, path = self.prefix.rstrip("/").lower().partition("/")
        prefix = _without_default_port(head) + sep + path
        name = canonical_name(ref)
        if name.startswith(prefix + "/"):
            return name[len(prefix) + 1 :]
        return None

    def cached_repository(self, ecr_path: str, public_paths: tuple[str, ...]) -> str | None:
        """The gallery repository an ECR pull-through cache path holds, or ``None``."""
        if not self.pull_through:
            return None
        for public in public_paths:
            marker = f"/{public}/"
            at = ecr_path.rfind(marker)
            if at > 0 and fnmatch.fnmatchcase(ecr_path[:at], self.prefix):
                repo = ecr_path[at + len(marker) :]
                return repo if "/" not in repo else None
        return None


DEFAULT_PULL_THROUGH = (Mirror("*", pull_through=True),)
"""ECR pull-through caches of the public gallery under any prefix (the policy's default)."""


@dataclass(frozen=True, slots=True)
class Location:
    kind: str
    """``ecr`` (a regional DLC or SageMaker algorithm account), ``ecr-public``, ``mirror`` or
    ``pull-through`` (an ECR pull-through cache of the public gallery)."""
    repository: str
    account: str | None
    region: str | None
    families: tuple[Family, ...]
    """The catalog's families for this repository; empty when the repository is unknown."""


def identify(ref: ImageReference, catalog: Catalog, mirrors: tuple[Mirror, ...] = ()) -> Location | None:
    """Return where a DLC reference points, or ``None`` when it is not a DLC registry."""
    host = _without_default_port(ref.registry)
    name = f"{host}/{ref.path}"
    ecr = ecr_host(host)
    if ecr is not None:
        account, region = ecr
        repo = ref.path
        families = tuple(catalog.by_repository.get(repo, ()))
        kinds = {kind for kind, _ in catalog.accounts.get(account, ())}
        if "dlc" in kinds:
            families = tuple(f for f in families if f.registry == "dlc")
            return Location("ecr", repo, account, region, families)
        if "algorithms" in kinds:
            families = tuple(f for f in families if f.registry == "algorithms")
            # the algorithm registry serves many SageMaker algorithms; only some are DLCs
            return Location("ecr", repo, account, region, families) if families else None
        fixed = catalog.fixed_accounts.get(account)
        if fixed:
            families = tuple(f for f in families if f.name in fixed)
            return Location("ecr", repo, account, region, families) if families else None
        public_paths = tuple(p.lower().partition("/")[2] for p in catalog.public_prefixes)
        for mirror in mirrors:
            cached = mirror.cached_repository(ref.path, public_paths)
            if cached is not None:
                return Location("pull-through", cached, account, region, tuple(catalog.by_repository.get(cached, ())))
        return None
    for prefix in catalog.public_prefixes:
        host_path = prefix.lower()
        if name.startswith(host_path + "/"):
            repo = name[len(host_path) + 1 :]
            return Location("ecr-public", repo, None, None, tuple(catalog.by_repository.get(repo, ())))
    for mirror in mirrors:
        mirrored = mirror.repository_of(ref)
        if mirrored is not None and mirrored in catalog.by_repository:
            return Location("mirror", mirrored, None, None, tuple(catalog.by_repository[mirrored]))
    return None
