"""Which registries and repositories hold AWS Deep Learning Containers.

Accounts come from the catalog (its ``registries`` section), mirrors from the policy:
nothing here names an account or a region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policy.catalog import Catalog, Family
from policy.reference import ImageReference

__all__ = ["Location", "Mirror", "identify"]

_ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr(?:\.ecr(?:-fips)?|-ecr)\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.(?:amazonaws\.com(?:\.cn)?|on\.aws)$"
)


@dataclass(frozen=True, slots=True)
class Mirror:
    """A private registry path that holds copies of DLC repositories.

    ``prefix`` is ``host[:port][/path]``: ``registry.corp.example/mirror/dlc`` makes
    ``registry.corp.example/mirror/dlc/pytorch-training:…`` a DLC image.
    """

    prefix: str

    def repository_of(self, ref: ImageReference) -> str | None:
        prefix = self.prefix.rstrip("/").lower()
        name = ref.name
        if name.startswith(prefix + "/"):
            return name[len(prefix) + 1 :]
        return None


@dataclass(frozen=True, slots=True)
class Location:
    kind: str
    """``ecr`` (a regional DLC or SageMaker algorithm account), ``ecr-public`` or ``mirror``."""
    repository: str
    account: str | None
    region: str | None
    families: tuple[Family, ...]
    """The catalog's families for this repository; empty when the repository is unknown."""


def identify(ref: ImageReference, catalog: Catalog, mirrors: tuple[Mirror, ...] = ()) -> Location | None:
    """Return where a DLC reference points, or ``None`` when it is not a DLC registry."""
    m = _ECR_HOST.match(ref.registry)
    if m is not None:
        account, region = m.group("account"), m.group("region")
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
        return None
    for prefix in catalog.public_prefixes:
        host_path = prefix.lower()
        if ref.name.startswith(host_path + "/"):
            repo = ref.name[len(host_path) + 1 :]
            return Location("ecr-public", repo, None, None, tuple(catalog.by_repository.get(repo, ())))
    for mirror in mirrors:
        mirrored = mirror.repository_of(ref)
        if mirrored is not None and mirrored in catalog.by_repository:
            return Location("mirror", mirrored, None, None, tuple(catalog.by_repository[mirrored]))
    return None
