"""Registry credentials: Docker config JSON (the format of imagePullSecrets) and ECR tokens.

ECR registries (``<account>.dkr.ecr.<region>.amazonaws.com``) take HTTP basic auth with user
``AWS`` and a 12-hour token from ``ecr:GetAuthorizationToken``, obtained here through the AWS
SDK's standard credential chain (environment, IRSA web identity, instance role, …). boto3 is
an optional dependency (``pip install 'dlc-guard[aws]'``): without it ECR lookups say so.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policy.registries import ecr_host

__all__ = ["Credentials", "EcrTokens", "parse_docker_config"]


log = logging.getLogger("dlc_guard.registry")


class AuthConfigError(ValueError):
    pass


def _host_of(key: str) -> str:
    key = re.sub(r"^https?://", "", key.strip())
    return key.split("/", 1)[0].lower()


def parse_docker_config(doc: Any, origin: str = "docker config") -> dict[str, tuple[str, str]]:
    """host → (user, password) from a ``.dockerconfigjson`` (``{"auths": {...}}``) or a legacy
    ``.dockercfg`` document (the mapping itself)."""
    if not isinstance(doc, Mapping):
        raise AuthConfigError(f"{origin}: expected a JSON object")
    auths = doc.get("auths", doc)
    if not isinstance(auths, Mapping):
        raise AuthConfigError(f"{origin}: 'auths' must be an object")
    out: dict[str, tuple[str, str]] = {}
    for key, entry in auths.items():
        if not isinstance(entry, Mapping):
            raise AuthConfigError(f"{origin}: auths[{key!r}] must be an object")
        user, password = entry.get("username"), entry.get("password")
        if not (isinstance(user, str) and isinstance(password, str)) and entry.get("auth"):
            try:
                user, _, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise AuthConfigError(f"{origin}: auths[{key!r}].auth is not base64 'user:password'") from exc
        if isinstance(user, str) and isinstance(password, str) and user:
            out[_host_of(str(key))] = (user, password)
    return out


class EcrTokens:
    """Authorization tokens per (region, account), cached until shortly before they expire."""

    def __init__(self, client_factory: Callable[[str], Any] | None = None, margin_seconds: float = 600) -> None:
        self._factory = client_factory
        self._margin = margin_seconds
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.error: str | None = None

    def _client(self, region: str) -> Any:
        if self._factory is not None:
            return self._factory(region)
        try:
            import boto3
        except ImportError:
            raise LookupError("ECR needs boto3 (pip install 'dlc-guard[aws]')") from None
        return boto3.client("ecr", region_name=region)

    def token(self, region: str, account: str) -> tuple[str, str] | None:
        with self._lock:
            hit = self._tokens.get((region, account))
            if hit is not None and hit[1] - self._margin > time.time():
                return ("AWS", hit[0])
        try:
            resp = self._client(region).get_authorization_token(registryIds=[account])
            data = resp["authorizationData"][0]
            user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            expires = data.get("expiresAt")
            until = expires.timestamp() if hasattr(expires, "timestamp") else time.time() + 3600
        except LookupError as exc:
            self.error = str(exc)
            return None
        except Exception as exc:  # botocore: no credentials, access denied, endpoint unreachable
            # AWS's text can name IAM roles and accounts: it goes to the log only; what reaches
            # verdicts (and kubectl warnings) is the class of the failure
            error = f"ECR token for {account} in {region} unavailable ({type(exc).__name__})"
            if error != self.error:
                log.warning("%s: %s", error, exc)
            self.error = error
            return None
        with self._lock:
            self._tokens[(region, account)] = (password, until)
        self.error = None
        return (user or "AWS", password)


class Credentials:
    """Who to be at a registry: Docker config entries first, then ECR tokens for ECR hosts."""

    def __init__(self, docker: Mapping[str, tuple[str, str]] | None = None, ecr: EcrTokens | None = None) -> None:
        self.docker = dict(docker or {})
        self.ecr = ecr

    @classmethod
    def from_documents(cls, docs: Sequence[tuple[str, Any]], ecr: EcrTokens | None = None) -> Credentials:
        merged: dict[str, tuple[str, str]] = {}
        for origin, doc in docs:
            merged.update(parse_docker_config(doc, origin))
        return cls(merged, ecr)

    def for_host(self, host: str) -> tuple[str, str] | None:
        host = host.lower()
        if host in self.docker:
            return self.docker[host]
        ecr = ecr_host(host)
        if ecr is not None and self.ecr is not None:
            account, region = ecr
            return self.ecr.token(region, account)
        return None

    def why_none(self, host: str) -> str:
        if ecr_host(host) and self.ecr is not None and self.ecr.error:
            return self.ecr.error
        return f"no credentials for {host}"
