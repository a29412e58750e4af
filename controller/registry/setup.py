"""Building a :class:`DigestResolver` from options (shared by the CLI, webhook and operator)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.registry.auth import AuthConfigError, Credentials, EcrTokens
from controller.registry.oci import RegistryClient
from controller.registry.resolver import DigestResolver, FileStore
from policy.digests import DigestBook

__all__ = ["AuthConfigError", "add_registry_options", "build_resolver", "default_cache_path", "resolver_from_args"]


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dlc-guard" / "digests.json"


def add_registry_options(p: argparse.ArgumentParser, default_on: bool = False) -> None:
    g = p.add_argument_group("digest-pinned images (registry lookups)")
    if not default_on:
        g.add_argument(
            "--resolve-digests",
            action="store_true",
            help="look up @sha256: references in their registry (DLC labels, or a tag pointing at the digest)",
        )
    g.add_argument(
        "--registry-auth",
        action="append",
        default=[],
        metavar="FILE",
        help="Docker config JSON with registry credentials (an imagePullSecret's .dockerconfigjson); repeatable",
    )
    g.add_argument("--registry-ca", metavar="FILE", help="CA bundle for registries (default: the system's)")
    g.add_argument(
        "--registry-timeout", type=float, default=5.0, metavar="SECONDS", help="per-request timeout (default 5)"
    )
    g.add_argument(
        "--digest-cache",
        metavar="FILE",
        help=f"where answers are kept between runs (default {default_cache_path()}; 'none' keeps nothing)",
    )


def build_resolver(
    auth_files: Sequence[str] = (),
    ca_file: str | None = None,
    timeout: float = 5.0,
    cache: str | None = None,
    book: DigestBook | None = None,
) -> DigestResolver:
    docs: list[tuple[str, Any]] = []
    for path in auth_files:
        try:
            docs.append((path, json.loads(Path(path).read_text(encoding="utf-8"))))
        except OSError as exc:
            raise AuthConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise AuthConfigError(f"{path}: not JSON: {exc}") from None
    credentials = Credentials.from_documents(docs, EcrTokens())
    if ca_file is not None and not Path(ca_file).is_file():
        raise AuthConfigError(f"{ca_file}: no such CA file")
    client = RegistryClient(credentials, ca_file=ca_file, timeout=timeout)
    store = None if cache in ("none", "") else FileStore(cache or default_cache_path())
    return DigestResolver(book or DigestBook(), client, store=store)


def resolver_from_args(args: argparse.Namespace) -> DigestResolver | None:
    if not getattr(args, "resolve_digests", True):
        return None
    return build_resolver(args.registry_auth, args.registry_ca, args.registry_timeout, args.digest_cache)
